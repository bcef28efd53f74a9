package kfake

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestCreateTopicsRefusesWhatKafkaRefuses: names and counts Kafka's
// CreateTopics refuses are refused per topic, with a message, and the
// valid topics of the same request are created.
func TestCreateTopicsRefusesWhatKafkaRefuses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := NewCluster(NumBrokers(1), AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	type want struct {
		err   error
		parts int32
		repl  int16
	}
	cases := map[string]want{
		strings.Repeat("a", 249): {nil, 1, 1},
		"ok.name_-1":             {nil, -1, -1},
		strings.Repeat("a", 250): {kerr.InvalidTopicException, 1, 1},
		"":                       {kerr.InvalidTopicException, 1, 1},
		".":                      {kerr.InvalidTopicException, 1, 1},
		"..":                     {kerr.InvalidTopicException, 1, 1},
		"a/b":                    {kerr.InvalidTopicException, 1, 1},
		"nul\x00":                {kerr.InvalidTopicException, 1, 1},
		"space x":                {kerr.InvalidTopicException, 1, 1},
		"é":                      {kerr.InvalidTopicException, 1, 1},
		"neg-parts":              {kerr.InvalidPartitions, -2, 1},
		"zero-repl":              {kerr.InvalidReplicationFactor, 1, 0},
		"too-many-parts":         {kerr.InvalidPartitions, maxTopicPartitions + 1, 1},
		"most-parts":             {nil, maxTopicPartitions, 1},
	}
	req := kmsg.NewPtrCreateTopicsRequest()
	for name, w := range cases {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, w.parts, w.repl
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != len(cases) {
		t.Fatalf("%d topics answered, want %d", len(resp.Topics), len(cases))
	}
	for _, rt := range resp.Topics {
		w := cases[rt.Topic]
		got := kerr.ErrorForCode(rt.ErrorCode)
		if !errors.Is(got, w.err) && got != w.err {
			t.Errorf("create %.20q: %v, want %v", rt.Topic, got, w.err)
		}
		if w.err != nil && (rt.ErrorMessage == nil || *rt.ErrorMessage == "") {
			t.Errorf("create %.20q: refused with no message", rt.Topic)
		}
	}
	if err := c.CreateTopic("a/b", 1, nil); !errors.Is(err, kerr.InvalidTopicException) {
		t.Errorf("Cluster.CreateTopic(a/b) = %v, want INVALID_TOPIC_EXCEPTION", err)
	}

	cp := kmsg.NewPtrCreatePartitionsRequest()
	cpt := kmsg.NewCreatePartitionsRequestTopic()
	cpt.Topic, cpt.Count = "ok.name_-1", maxTopicPartitions+1
	cp.Topics = append(cp.Topics, cpt)
	cpresp, err := cp.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if got := kerr.ErrorForCode(cpresp.Topics[0].ErrorCode); got != kerr.InvalidPartitions {
		t.Errorf("CreatePartitions to %d: %v, want INVALID_PARTITIONS", cpt.Count, got)
	}

	// Auto-creation refuses the same names.
	meta := kmsg.NewPtrMetadataRequest()
	meta.AllowAutoTopicCreation = true
	for _, name := range []string{"a/b", "auto-ok"} {
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(name)
		meta.Topics = append(meta.Topics, mt)
	}
	mresp, err := meta.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, mt := range mresp.Topics {
		want := error(nil)
		if *mt.Topic == "a/b" {
			want = kerr.InvalidTopicException
		}
		if got := kerr.ErrorForCode(mt.ErrorCode); got != want {
			t.Errorf("metadata auto-create %q: %v, want %v", *mt.Topic, got, want)
		}
	}
}

// TestAutoCreatedTopicIsPersisted: a topic made by a metadata request is
// in topics.json at once, as one made by CreateTopics is, so a crash
// before the next clean shutdown does not lose it.
func TestAutoCreatedTopicIsPersisted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	c, err := NewCluster(NumBrokers(1), AllowAutoTopicCreation(), DataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	meta := kmsg.NewPtrMetadataRequest()
	meta.AllowAutoTopicCreation = true
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("auto")
	meta.Topics = append(meta.Topics, mt)
	if _, err := meta.RequestWith(ctx, cl); err != nil {
		t.Fatal(err)
	}
	var pt persistTopics
	if _, err := readJSONFile(c.fs, filepath.Join(dir, "topics.json"), &pt); err != nil {
		t.Fatal(err)
	}
	for _, tp := range pt.Topics {
		if tp.Name == "auto" {
			return
		}
	}
	t.Fatalf("auto-created topic not in topics.json: %+v", pt.Topics)
}
