package kfake

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// butter patch: Kafka's checks on a topic to create, which kfake did not
// make. A name Kafka refuses could not always be persisted: a 300-byte
// name made every later start fail on "file name too long" until the
// operator edited topics.json by hand.

// maxTopicNameLen is Kafka's limit (Topic.MAX_NAME_LENGTH): 249 leaves
// room for "-<partition>" in a 255-byte directory name.
const maxTopicNameLen = 249

// maxTopicPartitions bounds the partitions of one topic. Kafka has no
// such bound, but a topic is allocated whole here: one CreateTopics with
// 2^31-1 partitions would take the process down.
const maxTopicPartitions = 10000

var tooManyPartitions = fmt.Sprintf("a topic may have at most %d partitions", maxTopicPartitions)

// topicNameProblem says why Kafka refuses t as a topic name
// (org.apache.kafka.common.internals.Topic.validate), "" if it does not.
func topicNameProblem(t string) string {
	switch {
	case t == "":
		return "topic name is illegal, it can't be empty"
	case t == "." || t == "..":
		return `topic name cannot be "." or ".."`
	case len(t) > maxTopicNameLen:
		return fmt.Sprintf("topic name is illegal, it can't be longer than %d characters (it has %d)", maxTopicNameLen, len(t))
	}
	for i := 0; i < len(t); i++ {
		switch c := t[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Sprintf("topic name %q is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'", t)
		}
	}
	return ""
}

// createTopicProblem checks a topic to create as Kafka's CreateTopics
// does before anything else: its name, and partition and replica counts
// that are -1 (the default) or positive; and our partition bound. It returns the error and its
// message, or nil.
func createTopicProblem(rt *kmsg.CreateTopicsRequestTopic) (*kerr.Error, string) {
	if msg := topicNameProblem(rt.Topic); msg != "" {
		return kerr.InvalidTopicException, msg
	}
	if rt.NumPartitions > maxTopicPartitions || len(rt.ReplicaAssignment) > maxTopicPartitions {
		return kerr.InvalidPartitions, tooManyPartitions
	}
	if len(rt.ReplicaAssignment) > 0 {
		return nil, "" // counts come from the assignment, checked later
	}
	if rt.NumPartitions == 0 || rt.NumPartitions < -1 {
		return kerr.InvalidPartitions, "number of partitions must be larger than 0, or -1 to use the default value"
	}
	if rt.ReplicationFactor == 0 || rt.ReplicationFactor < -1 {
		return kerr.InvalidReplicationFactor, "replication factor must be larger than 0, or -1 to use the default value"
	}
	return nil, ""
}
