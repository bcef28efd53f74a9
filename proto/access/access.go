// Package access says who may do what on the platform's Kafka cluster
// (DESIGN §8a): a principal per platform service and per deployment, and
// the ACLs each needs, as one table that the embedded broker applies and
// docs/security.md lists for operators of an existing cluster.
//
// The rule for internal topics is that only their owner writes them: a
// function can write its own streams, the replies, logs and heartbeats of
// functions, and nothing else; the gateway cannot write the deployments or
// the API keys it trusts. Services that write user streams by design (the
// gateway its route streams, the timer its tick streams) get every topic
// but an explicit deny on each internal topic they do not own, because a
// deny beats an allow in Kafka's authorizer.
package access

import (
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/topics"
)

// Mechanism is the SASL mechanism of every platform principal.
const Mechanism = "SCRAM-SHA-256"

// Platform users. The admin is the embedded broker's superuser, written to
// <data>/client.properties for operators and the CLI; every service logs in
// as its own user.
const (
	AdminUser    = "butter-admin"
	DeployerUser = "butter-deployer"
	GatewayUser  = "butter-gateway"
	TimerUser    = "butter-timer"
	LoadmonUser  = "butter-loadmon"
	TracerUser   = "butter-tracer"
	BridgeUser   = "butter-bridge"
)

// FunctionUser is the user every instance of a deployment logs in as.
func FunctionUser(deployment string) string { return "butter-fn." + deployment }

// Principal is the ACL principal of a user.
func Principal(user string) string { return "User:" + user }

// Grant is one ACL: operations on a resource, allowed or denied.
type Grant struct {
	Resource kmsg.ACLResourceType
	// Name is the resource name; "*" with a literal pattern is every
	// resource of the type.
	Name    string
	Pattern kmsg.ACLResourcePatternType
	Ops     []kmsg.ACLOperation
	Deny    bool
}

var (
	read  = []kmsg.ACLOperation{kmsg.ACLOperationRead, kmsg.ACLOperationDescribe}
	write = []kmsg.ACLOperation{kmsg.ACLOperationWrite, kmsg.ACLOperationDescribe}
	all   = []kmsg.ACLOperation{kmsg.ACLOperationAll}
)

func topic(name string, ops ...kmsg.ACLOperation) Grant {
	return Grant{Resource: kmsg.ACLResourceTypeTopic, Name: name, Pattern: kmsg.ACLResourcePatternTypeLiteral, Ops: ops}
}

func prefixed(rt kmsg.ACLResourceType, name string, ops ...kmsg.ACLOperation) Grant {
	return Grant{Resource: rt, Name: name, Pattern: kmsg.ACLResourcePatternTypePrefixed, Ops: ops}
}

func cluster(ops ...kmsg.ACLOperation) Grant {
	return Grant{Resource: kmsg.ACLResourceTypeCluster, Name: "kafka-cluster", Pattern: kmsg.ACLResourcePatternTypeLiteral, Ops: ops}
}

// owners says which users write each internal topic. Functions write
// logs, heartbeats and replies through their own grants (Function).
var owners = map[string][]string{
	topics.Deployments: {DeployerUser},
	topics.APIKeys:     {DeployerUser},
	topics.Events:      {DeployerUser, GatewayUser, LoadmonUser, BridgeUser},
	topics.Traces:      {DeployerUser, GatewayUser, TimerUser, TracerUser, BridgeUser},
	topics.Checkpoints: {BridgeUser},
	topics.Requests:    {GatewayUser},
	topics.Timers:      {TimerUser},
	topics.Scale:       {LoadmonUser},
}

// readers says which users read each internal topic.
var readers = map[string][]string{
	topics.Deployments: {GatewayUser, TimerUser, LoadmonUser, BridgeUser},
	topics.Checkpoints: {BridgeUser},
	topics.Heartbeats:  {LoadmonUser},
	topics.Scale:       {LoadmonUser},
	topics.APIKeys:     {GatewayUser},
	topics.Requests:    {GatewayUser},
	topics.Replies:     {GatewayUser},
	topics.Timers:      {TimerUser},
}

// Service returns the grants of a platform service user under namespace
// ns. The deployer manages principals and streams, so it holds the cluster
// (which in Kafka means it could grant itself anything: it is trusted as
// the admin is); it is still denied writes to topics it does not own, so a
// bug cannot forge a function's replies or the timer's state.
func Service(ns topics.Namespace, user string) []Grant {
	g := []Grant{cluster(kmsg.ACLOperationIdempotentWrite, kmsg.ACLOperationDescribe)}
	switch user {
	case DeployerUser:
		g = append(g,
			cluster(all...),
			topic("*", all...),
			Grant{Resource: kmsg.ACLResourceTypeGroup, Name: "*", Pattern: kmsg.ACLResourcePatternTypeLiteral, Ops: all},
		)
	case GatewayUser, TimerUser, BridgeUser:
		// Route and tick streams are user streams named by descriptors,
		// and so are the streams bridges write (sources) and read (sinks).
		g = append(g, topic("*", kmsg.ACLOperationWrite, kmsg.ACLOperationDescribe))
	}
	switch user {
	case TracerUser:
		// It indexes every internal topic and the lineage of every user
		// stream, and describes function groups for their lag; it writes
		// only its own spans (owners).
		g = append(g, topic("*", read...),
			prefixed(kmsg.ACLResourceTypeGroup, strings.TrimSuffix(ns.ConsumerGroup("", ""), "."), kmsg.ACLOperationDescribe),
		)
	case LoadmonUser:
		// Lag: every function group's committed offsets (Describe on the
		// groups) against its streams' end offsets (Describe on topics);
		// its own group shares the deciding among replicas.
		g = append(g, topic("*", kmsg.ACLOperationDescribe),
			prefixed(kmsg.ACLResourceTypeGroup, strings.TrimSuffix(ns.ConsumerGroup("", ""), "."), kmsg.ACLOperationDescribe),
			prefixed(kmsg.ACLResourceTypeGroup, ns.Topic("butter-loadmon"), read...),
		)
	case BridgeUser:
		// Sinks read their streams in the bridge's groups; sources write
		// through transactions (events and checkpoint together); the
		// bridge makes its streams, which the deployer does not know.
		g = append(g, topic("*", kmsg.ACLOperationRead, kmsg.ACLOperationCreate),
			prefixed(kmsg.ACLResourceTypeGroup, ns.Topic("butter-bridge"), read...),
			prefixed(kmsg.ACLResourceTypeTransactionalId, ns.Topic("butter-bridge"), write...),
		)
	case TimerUser:
		// The timer makes a deleted tick stream again.
		g = append(g, topic("*", kmsg.ACLOperationCreate),
			prefixed(kmsg.ACLResourceTypeGroup, ns.Topic("butter-timer"), read...),
			prefixed(kmsg.ACLResourceTypeTransactionalId, ns.Topic("butter-timer"), write...),
		)
	}
	for _, s := range topics.Internal() {
		t := ns.Topic(s.Name)
		switch {
		case slices.Contains(owners[s.Name], user):
			g = append(g, topic(t, write...))
		case user == DeployerUser || user == GatewayUser || user == TimerUser || user == BridgeUser:
			g = append(g, Grant{Resource: kmsg.ACLResourceTypeTopic, Name: t, Pattern: kmsg.ACLResourcePatternTypeLiteral,
				Ops: []kmsg.ACLOperation{kmsg.ACLOperationWrite}, Deny: true})
		}
		if slices.Contains(readers[s.Name], user) {
			g = append(g, topic(t, read...))
		}
	}
	// Only the owner creates internal topics; the broker and the deployer
	// (through the cluster grant) make them at start.
	if user != DeployerUser {
		g = append(g, Grant{Resource: kmsg.ACLResourceTypeTopic, Name: ns.Topic(topics.InternalPrefix),
			Pattern: kmsg.ACLResourcePatternTypePrefixed, Ops: []kmsg.ACLOperation{kmsg.ACLOperationCreate}, Deny: true})
	}
	return g
}

// Services are the platform service users `butter up` creates.
func Services() []string {
	return []string{DeployerUser, GatewayUser, TimerUser, LoadmonUser, TracerUser, BridgeUser}
}

// Function returns the grants of a deployment's principal: read its bound
// streams, write its out, emits and dead-letter streams and the replies,
// logs, heartbeats and spans every function writes, read the replies
// (context.request), and use its own consumer groups and transactional
// ids (both start with the deployment's group prefix).
func Function(ns topics.Namespace, d *descriptor.Descriptor) []Grant {
	g := []Grant{cluster(kmsg.ACLOperationIdempotentWrite)}
	type key struct {
		name string
		op   kmsg.ACLOperation
	}
	seen := map[key]bool{}
	add := func(name string, ops ...kmsg.ACLOperation) {
		key := key{name, ops[0]}
		if name == "" || seen[key] {
			return
		}
		seen[key] = true
		g = append(g, topic(ns.Topic(name), ops...))
	}
	for i := range d.Functions {
		f := &d.Functions[i]
		for _, in := range f.Inputs() {
			add(in.Name, read...)
		}
		add(f.Bindings.Out, write...)
		for _, e := range f.Bindings.Emits {
			add(e, write...)
		}
		add(f.Delivery.DeadLetter, write...)
	}
	for _, t := range []string{topics.Replies, topics.Logs, topics.Heartbeats, topics.Traces} {
		add(t, write...)
	}
	add(topics.Replies, read...)
	prefix := GroupPrefix(ns, d.Name)
	g = append(g,
		prefixed(kmsg.ACLResourceTypeGroup, prefix, read...),
		prefixed(kmsg.ACLResourceTypeTransactionalId, prefix, write...),
	)
	return g
}

// GroupPrefix is what every consumer group and transactional id of a
// deployment starts with. The trailing dot keeps deployment "a" out of
// the groups of deployment "a-b".
func GroupPrefix(ns topics.Namespace, deployment string) string {
	return ns.ConsumerGroup(deployment, "")
}
