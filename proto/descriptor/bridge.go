package descriptor

import (
	"slices"

	"go.yaml.in/yaml/v3"
)

// Bridge is one entry of the bridges: section (DESIGN §7): a source that
// writes external events to Stream, or a sink that sends Stream's events
// out. Exactly one of Source and Sink is set.
type Bridge struct {
	// Name names the bridge within the deployment, ^[a-z][a-z0-9-]{0,62}$.
	// It is the last segment of a webhook's URL and part of the bridge's
	// transactional id and checkpoint key.
	Name string `json:"name"`
	// Stream is the stream a source writes or a sink reads.
	Stream string `json:"stream"`
	// Source, if set, maps external events onto Stream.
	Source *BridgeSource `json:"source,omitempty"`
	// Sink, if set, sends Stream's events out.
	Sink *BridgeSink `json:"sink,omitempty"`
}

// BridgeSource is what a source bridge reads; exactly one field is set.
type BridgeSource struct {
	// VCenter reads a vCenter's event history.
	VCenter *VCenterSource `json:"vcenter,omitempty"`
	// Webhook accepts HTTP posts on /v1/webhooks/<deployment>/<bridge>.
	Webhook *WebhookSource `json:"webhook,omitempty"`
	// Kafka mirrors a topic of another Kafka cluster.
	Kafka *KafkaSource `json:"kafka,omitempty"`
}

// KafkaSource mirrors one topic of another Kafka cluster into the
// stream, exactly once: records and the source offsets they cover commit
// in one transaction of this cluster.
type KafkaSource struct {
	// Brokers are the other cluster's seed brokers, host:port.
	Brokers []string `json:"brokers"`
	// Topic is the topic read there.
	Topic string `json:"topic"`
	// Offset is where a mirror without a checkpoint starts: first
	// (default) or latest.
	Offset string `json:"offset"`
	// TLS dials the other cluster over TLS; Insecure skips verifying its
	// certificate (tests only).
	TLS      bool `json:"tls,omitempty"`
	Insecure bool `json:"insecure,omitempty"`
	// SASLMechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty for
	// none. Username and PasswordFrom (a secretEnv name) log in.
	SASLMechanism string `json:"saslMechanism,omitempty"`
	Username      string `json:"username,omitempty"`
	PasswordFrom  string `json:"passwordFrom,omitempty"`
	// CheckpointTopic, on a sink only, makes it exactly once: the records
	// and the stream positions they cover commit in one transaction of
	// the other cluster, the positions on this topic there (which must
	// exist, compacted). Empty: at-least-once, positions in the sink's
	// consumer group here.
	CheckpointTopic string `json:"checkpointTopic,omitempty"`
}

// VCenterSource reads the events of one vCenter (or ESXi host), or of
// several (VCenters), through an EventHistoryCollector on each one's root
// folder.
type VCenterSource struct {
	// URL is the SDK endpoint, like https://vc.example.com/sdk. It is the
	// CloudEvents source of every event. Empty when VCenters is set.
	URL string `json:"url,omitempty"`
	// Insecure skips TLS certificate verification (vcsim, lab vCenters).
	Insecure bool `json:"insecure,omitempty"`
	// Username logs in.
	Username string `json:"username,omitempty"`
	// PasswordFrom names the secretEnv entry holding the password, so the
	// password is stored sealed like every secret (docs/security.md).
	PasswordFrom string `json:"passwordFrom,omitempty"`
	// VCenters, instead of URL, Insecure, Username and PasswordFrom, lists
	// several vCenters read by this one bridge into its stream, each with
	// a checkpoint of its own keyed by its About.InstanceUuid.
	VCenters []VCenterEndpoint `json:"vcenters,omitempty"`
	// Types, if set, passes only events whose class (like
	// VmPoweredOnEvent) or EventTypeId is listed.
	Types []string `json:"types,omitempty"`
	// PageSize is how many events one read returns, at most. Default 1000.
	PageSize int `json:"pageSize"`
	// Poll is the wait after an empty page. Default 1s.
	Poll Duration `json:"poll"`
}

// VCenterEndpoint is one vCenter of a VCenterSource's list.
type VCenterEndpoint struct {
	URL          string `json:"url"`
	Insecure     bool   `json:"insecure,omitempty"`
	Username     string `json:"username"`
	PasswordFrom string `json:"passwordFrom"`
}

// Endpoints are the vCenters the source reads: VCenters, or the one given
// by URL.
func (v *VCenterSource) Endpoints() []VCenterEndpoint {
	if len(v.VCenters) > 0 {
		return v.VCenters
	}
	return []VCenterEndpoint{{URL: v.URL, Insecure: v.Insecure, Username: v.Username, PasswordFrom: v.PasswordFrom}}
}

// WebhookSource accepts events posted over HTTP.
type WebhookSource struct {
	// Type is the CloudEvents type given to a plain JSON body (a body
	// that is not a CloudEvent). Default "butter.webhook".
	Type string `json:"type"`
	// TokenFrom names the secretEnv entry holding a bearer token callers
	// must send (Authorization: Bearer <token>).
	TokenFrom string `json:"tokenFrom,omitempty"`
	// SecretFrom names the secretEnv entry holding the HMAC-SHA256 key
	// callers sign the body with, sent as sha256=<hex> in
	// SignatureHeader.
	SecretFrom string `json:"secretFrom,omitempty"`
	// SignatureHeader carries the signature. Default X-Hub-Signature-256.
	SignatureHeader string `json:"signatureHeader"`
	// MaxBody is the largest body accepted; larger gets 413. Default 1 MiB.
	MaxBody ByteSize `json:"maxBody"`
}

// BridgeSink is where a sink bridge sends events; exactly one field is set.
type BridgeSink struct {
	// HTTP posts each event to a URL in CloudEvents binary mode.
	HTTP *HTTPSink `json:"http,omitempty"`
	// Kafka writes each record to a topic of another Kafka cluster.
	Kafka *KafkaSink `json:"kafka,omitempty"`
}

// KafkaSink mirrors the stream to one topic of another Kafka cluster:
// keys, values, headers and timestamps kept, in order per key. It has the
// fields of KafkaSource, read the other way: Topic is written there, and
// Offset is where a sink without committed positions starts reading the
// stream here (first, the default, or latest).
type KafkaSink KafkaSource

// HTTPSink posts a stream's events to an endpoint, in order per partition.
type HTTPSink struct {
	// URL receives the events; http or https.
	URL string `json:"url"`
	// Retries is how many times a failed post is retried before the event
	// goes to DeadLetter. Default 5.
	Retries int `json:"retries"`
	// Backoff is the first wait between attempts; it doubles, with
	// jitter, up to MaxBackoff. Default 200ms.
	Backoff Duration `json:"backoff"`
	// MaxBackoff caps the wait. Default 30s.
	MaxBackoff Duration `json:"maxBackoff"`
	// Timeout bounds one post. Default 30s.
	Timeout Duration `json:"timeout"`
	// DeadLetter receives events that failed every attempt. Default
	// "<deployment>-<bridge>-dlq".
	DeadLetter string `json:"deadLetter"`
	// AllowPrivate lets URL reach loopback, private, link-local and other
	// non-public addresses (proto/egress). Default false: such a URL is
	// refused, so a descriptor cannot make the bridge post into the
	// network it runs in (cloud metadata endpoints included).
	AllowPrivate bool `json:"allowPrivate,omitempty"`
	// RateLimit caps the posts per second of one bridge replica, all
	// partitions together (retries count). Default 0: no cap.
	RateLimit int `json:"rateLimit,omitempty"`
}

// Source kinds, for messages and metrics.
const (
	BridgeVCenter = "vcenter"
	BridgeWebhook = "webhook"
	BridgeKafka   = "kafka"
	BridgeHTTP    = "http"
	// BridgeKafkaSink is a sink.kafka bridge (BridgeKafka is the source).
	BridgeKafkaSink = "kafka-sink"
)

// Kind names what the bridge is: vcenter, webhook, kafka, http or
// kafka-sink.
func (b *Bridge) Kind() string {
	switch {
	case b.Source != nil && b.Source.VCenter != nil:
		return BridgeVCenter
	case b.Source != nil && b.Source.Webhook != nil:
		return BridgeWebhook
	case b.Source != nil && b.Source.Kafka != nil:
		return BridgeKafka
	case b.Sink != nil && b.Sink.HTTP != nil:
		return BridgeHTTP
	case b.Sink != nil && b.Sink.Kafka != nil:
		return BridgeKafkaSink
	}
	return ""
}

// Starts of a Kafka mirror without a checkpoint.
const (
	OffsetFirstName  = "first"
	OffsetLatestName = "latest"
)

// Bridge defaults.
const (
	DefaultVCenterPageSize   = 1000
	DefaultWebhookType       = "butter.webhook"
	DefaultSignatureHeader   = "X-Hub-Signature-256"
	DefaultSinkRetries       = 5
	MaxVCenterPageSize       = 1000 // vSphere caps a page at 1000 events
	DefaultVCenterPoll       = Duration(1e9)
	DefaultBridgeMaxBodySize = ByteSize(1 << 20)
)

// BridgeDeadLetterStream is the default dead-letter stream of a sink.
func BridgeDeadLetterStream(deployment, bridge string) string {
	return deployment + "-" + bridge + "-dlq"
}

// bridges decodes the bridges list.
func (d *decoder) bridges(path string, n *yaml.Node) []Bridge {
	if n.Kind != yaml.SequenceNode {
		d.expected(n, path, "a list")
		return nil
	}
	d.fixColumns(n)
	return list(d, path, n, func(p string, v, _ *yaml.Node, b *Bridge) {
		d.object(p, v, []field{
			{"name", func(p string, v *yaml.Node) { b.Name, _ = d.str(p, v) }},
			{"stream", func(p string, v *yaml.Node) { b.Stream, _ = d.str(p, v) }},
			{"source", func(p string, v *yaml.Node) {
				s := &BridgeSource{}
				if d.object(p, v, []field{
					{"vcenter", func(p string, v *yaml.Node) { s.VCenter = d.vcenter(p, v) }},
					{"webhook", func(p string, v *yaml.Node) { s.Webhook = d.webhook(p, v) }},
					{"kafka", func(p string, v *yaml.Node) { s.Kafka = d.kafkaSource(p, v) }},
				}) {
					b.Source = s
				}
			}},
			{"sink", func(p string, v *yaml.Node) {
				s := &BridgeSink{}
				if d.object(p, v, []field{
					{"http", func(p string, v *yaml.Node) { s.HTTP = d.httpSink(p, v) }},
					{"kafka", func(p string, v *yaml.Node) {
						if k := d.kafkaSource(p, v); k != nil {
							s.Kafka = (*KafkaSink)(k)
						}
					}},
				}) {
					b.Sink = s
				}
			}},
		})
	})
}

func (d *decoder) vcenter(path string, n *yaml.Node) *VCenterSource {
	s := &VCenterSource{}
	if !d.object(path, n, []field{
		{"url", func(p string, v *yaml.Node) { s.URL, _ = d.str(p, v) }},
		{"insecure", func(p string, v *yaml.Node) { s.Insecure, _ = d.boolean(p, v) }},
		{"username", func(p string, v *yaml.Node) { s.Username, _ = d.str(p, v) }},
		{"password", func(p string, v *yaml.Node) {
			d.fail(v, p, "a password is never written in a descriptor: put it in secretEnv (which the deployer seals) and name that entry with passwordFrom")
		}},
		{"passwordFrom", func(p string, v *yaml.Node) { s.PasswordFrom, _ = d.str(p, v) }},
		{"types", func(p string, v *yaml.Node) { s.Types, _ = d.strList(p, v) }},
		{"pageSize", func(p string, v *yaml.Node) { s.PageSize, _ = d.integer(p, v) }},
		{"poll", func(p string, v *yaml.Node) { s.Poll, _ = d.duration(p, v) }},
		{"vcenters", func(p string, v *yaml.Node) { s.VCenters = d.vcenterList(p, v) }},
	}) {
		return nil
	}
	return s
}

func (d *decoder) vcenterList(path string, n *yaml.Node) []VCenterEndpoint {
	return list(d, path, n, func(p string, v, _ *yaml.Node, e *VCenterEndpoint) {
		d.object(p, v, []field{
			{"url", func(p string, v *yaml.Node) { e.URL, _ = d.str(p, v) }},
			{"insecure", func(p string, v *yaml.Node) { e.Insecure, _ = d.boolean(p, v) }},
			{"username", func(p string, v *yaml.Node) { e.Username, _ = d.str(p, v) }},
			{"password", func(p string, v *yaml.Node) {
				d.fail(v, p, "a password is never written in a descriptor: put it in secretEnv (which the deployer seals) and name that entry with passwordFrom")
			}},
			{"passwordFrom", func(p string, v *yaml.Node) { e.PasswordFrom, _ = d.str(p, v) }},
		})
	})
}

func (d *decoder) webhook(path string, n *yaml.Node) *WebhookSource {
	s := &WebhookSource{}
	if !d.object(path, n, []field{
		{"type", func(p string, v *yaml.Node) { s.Type, _ = d.str(p, v) }},
		{"tokenFrom", func(p string, v *yaml.Node) { s.TokenFrom, _ = d.str(p, v) }},
		{"secretFrom", func(p string, v *yaml.Node) { s.SecretFrom, _ = d.str(p, v) }},
		{"signatureHeader", func(p string, v *yaml.Node) { s.SignatureHeader, _ = d.str(p, v) }},
		{"maxBody", func(p string, v *yaml.Node) { s.MaxBody, _ = d.byteSize(p, v) }},
	}) {
		return nil
	}
	return s
}

func (d *decoder) kafkaSource(path string, n *yaml.Node) *KafkaSource {
	s := &KafkaSource{}
	if !d.object(path, n, []field{
		{"brokers", func(p string, v *yaml.Node) { s.Brokers, _ = d.strList(p, v) }},
		{"topic", func(p string, v *yaml.Node) { s.Topic, _ = d.str(p, v) }},
		{"offset", func(p string, v *yaml.Node) { s.Offset, _ = d.str(p, v) }},
		{"tls", func(p string, v *yaml.Node) { s.TLS, _ = d.boolean(p, v) }},
		{"insecure", func(p string, v *yaml.Node) { s.Insecure, _ = d.boolean(p, v) }},
		{"saslMechanism", func(p string, v *yaml.Node) { s.SASLMechanism, _ = d.str(p, v) }},
		{"username", func(p string, v *yaml.Node) { s.Username, _ = d.str(p, v) }},
		{"password", func(p string, v *yaml.Node) {
			d.fail(v, p, "a password is never written in a descriptor: put it in secretEnv (which the deployer seals) and name that entry with passwordFrom")
		}},
		{"passwordFrom", func(p string, v *yaml.Node) { s.PasswordFrom, _ = d.str(p, v) }},
		{"checkpointTopic", func(p string, v *yaml.Node) { s.CheckpointTopic, _ = d.str(p, v) }},
	}) {
		return nil
	}
	return s
}

func (d *decoder) httpSink(path string, n *yaml.Node) *HTTPSink {
	s := &HTTPSink{}
	if !d.object(path, n, []field{
		{"url", func(p string, v *yaml.Node) { s.URL, _ = d.str(p, v) }},
		{"retries", func(p string, v *yaml.Node) { s.Retries, _ = d.integer(p, v) }},
		{"backoff", func(p string, v *yaml.Node) { s.Backoff, _ = d.duration(p, v) }},
		{"maxBackoff", func(p string, v *yaml.Node) { s.MaxBackoff, _ = d.duration(p, v) }},
		{"timeout", func(p string, v *yaml.Node) { s.Timeout, _ = d.duration(p, v) }},
		{"deadLetter", func(p string, v *yaml.Node) { s.DeadLetter, _ = d.str(p, v) }},
		{"allowPrivate", func(p string, v *yaml.Node) { s.AllowPrivate, _ = d.boolean(p, v) }},
		{"rateLimit", func(p string, v *yaml.Node) { s.RateLimit, _ = d.integer(p, v) }},
	}) {
		return nil
	}
	return s
}

// bridges checks the bridges: section.
func (c checker) bridges(desc *Descriptor) {
	names := map[string]int{}
	for i := range desc.Bridges {
		b := &desc.Bridges[i]
		p := index("bridges", i)
		switch {
		case !c.present(p + ".name"):
			c.report(p+".name", "required: name the bridge, like vcenter")
		case !namePattern.MatchString(b.Name):
			c.report(p+".name", "%s", badName(b.Name))
		default:
			if j, dup := names[b.Name]; dup {
				c.report(p+".name", "%q is already the name of bridges[%d]", b.Name, j)
			}
			names[b.Name] = i
		}
		if !c.present(p + ".stream") {
			c.report(p+".stream", "required: the stream the bridge writes (a source) or reads (a sink)")
		} else if b.Sink != nil {
			c.readable(p+".stream", b.Stream)
		} else {
			c.writable(p+".stream", b.Stream)
		}
		switch {
		case c.present(p+".source") && c.present(p+".sink"):
			c.report(p, "has both source and sink: a bridge is one or the other; make two bridges")
		case c.present(p + ".source"):
			c.bridgeSource(desc, p+".source", b.Source)
		case c.present(p + ".sink"):
			c.bridgeSink(desc, p+".sink", b.Sink)
		default:
			c.report(p, "needs a source (vcenter, webhook or kafka) or a sink (http or kafka)")
		}
	}
}

func (c checker) bridgeSource(desc *Descriptor, p string, s *BridgeSource) {
	if s == nil {
		return
	}
	n := 0
	for _, set := range []bool{s.VCenter != nil, s.Webhook != nil, s.Kafka != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		c.report(p, "needs exactly one of vcenter, webhook and kafka")
		return
	}
	if s.Kafka != nil {
		c.kafkaPeer(desc, p+".kafka", s.Kafka, "the topic to mirror")
		if c.present(p + ".kafka.checkpointTopic") {
			c.report(p+".kafka.checkpointTopic", "is for a sink: a kafka source keeps its positions here, exactly once already")
		}
	}
	if v := s.VCenter; v != nil {
		vp := p + ".vcenter"
		if len(v.VCenters) > 0 {
			for _, f := range []string{"url", "insecure", "username", "passwordFrom"} {
				if c.present(vp + "." + f) {
					c.report(vp+"."+f, "set it on each entry of vcenters, or drop vcenters for a single vCenter")
				}
			}
			urls := map[string]int{}
			for i, e := range v.VCenters {
				ep := index(vp+".vcenters", i)
				c.vcenterEndpoint(desc, ep, e)
				if j, dup := urls[e.URL]; dup && e.URL != "" {
					c.report(ep+".url", "%q is already vcenters[%d]", e.URL, j)
				}
				urls[e.URL] = i
			}
		} else {
			c.vcenterEndpoint(desc, vp, v.Endpoints()[0])
		}
		if c.present(vp+".pageSize") && (v.PageSize < 1 || v.PageSize > MaxVCenterPageSize) {
			c.report(vp+".pageSize", "%d is out of range: use 1 to %d", v.PageSize, MaxVCenterPageSize)
		}
		if c.present(vp+".poll") && v.Poll <= 0 {
			c.report(vp+".poll", "must be positive")
		}
	}
	if w := s.Webhook; w != nil {
		wp := p + ".webhook"
		if c.present(wp + ".tokenFrom") {
			c.secretRef(desc, wp+".tokenFrom", w.TokenFrom)
		}
		if c.present(wp + ".secretFrom") {
			c.secretRef(desc, wp+".secretFrom", w.SecretFrom)
		}
		if c.present(wp+".maxBody") && w.MaxBody <= 0 {
			c.report(wp+".maxBody", "must be positive")
		}
	}
}

// vcenterEndpoint checks one vCenter's url, username and passwordFrom at
// path vp.
func (c checker) vcenterEndpoint(desc *Descriptor, vp string, e VCenterEndpoint) {
	if !c.present(vp + ".url") {
		c.report(vp+".url", "required: the SDK endpoint, like https://vc.example.com/sdk")
	} else {
		c.httpURL(vp+".url", e.URL)
	}
	if !c.present(vp + ".username") {
		c.report(vp+".username", "required: the user the bridge logs in as")
	}
	if !c.present(vp + ".passwordFrom") {
		c.report(vp+".passwordFrom", "required: the secretEnv entry holding the password")
	} else {
		c.secretRef(desc, vp+".passwordFrom", e.PasswordFrom)
	}
}

// kafkaPeer checks the other cluster of a Kafka source or sink at kp.
func (c checker) kafkaPeer(desc *Descriptor, kp string, k *KafkaSource, topic string) {
	if len(k.Brokers) == 0 {
		c.report(kp+".brokers", "required: the other cluster's seed brokers, like [kafka-1:9092]")
	}
	if !c.present(kp + ".topic") {
		c.report(kp+".topic", "required: %s", topic)
	}
	if c.present(kp+".offset") && k.Offset != OffsetFirstName && k.Offset != OffsetLatestName {
		c.report(kp+".offset", "%q is not a start: use first or latest", k.Offset)
	}
	switch k.SASLMechanism {
	case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		c.report(kp+".saslMechanism", "%q is not a SASL mechanism: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", k.SASLMechanism)
	}
	if k.SASLMechanism != "" && (k.Username == "" || k.PasswordFrom == "") {
		c.report(kp, "saslMechanism needs username and passwordFrom")
	}
	if c.present(kp + ".passwordFrom") {
		c.secretRef(desc, kp+".passwordFrom", k.PasswordFrom)
	}
}

// secretRef checks that name is an entry of secretEnv.
func (c checker) secretRef(desc *Descriptor, p, name string) {
	if _, ok := desc.SecretEnv[name]; !ok {
		keys := make([]string, 0, len(desc.SecretEnv))
		for k := range desc.SecretEnv {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if len(keys) == 0 {
			c.report(p, "%q is not in secretEnv: add it there (secretEnv: {%s: ...})", name, name)
			return
		}
		c.report(p, "%q is not in secretEnv, which has %s", name, orList(keys))
	}
}

func (c checker) bridgeSink(desc *Descriptor, p string, s *BridgeSink) {
	if s == nil {
		return
	}
	if (s.HTTP == nil) == (s.Kafka == nil) {
		c.report(p, "needs exactly one of http and kafka")
		return
	}
	if s.Kafka != nil {
		c.kafkaPeer(desc, p+".kafka", (*KafkaSource)(s.Kafka), "the topic written on the other cluster")
		return
	}
	hp := p + ".http"
	if !c.present(hp + ".url") {
		c.report(hp+".url", "required: the endpoint events are posted to")
	} else {
		c.httpURL(hp+".url", s.HTTP.URL)
	}
	if s.HTTP.Retries < 0 {
		c.report(hp+".retries", "must not be negative")
	}
	if s.HTTP.RateLimit < 0 {
		c.report(hp+".rateLimit", "must not be negative: posts per second, 0 for no limit")
	}
	for _, f := range []struct {
		name string
		v    Duration
	}{{"backoff", s.HTTP.Backoff}, {"maxBackoff", s.HTTP.MaxBackoff}, {"timeout", s.HTTP.Timeout}} {
		if c.present(hp+"."+f.name) && f.v <= 0 {
			c.report(hp+"."+f.name, "must be positive")
		}
	}
	if c.present(hp + ".deadLetter") {
		c.writable(hp+".deadLetter", s.HTTP.DeadLetter)
	}
}

// bridgeDefaults fills in what the bridges: section left out.
// retriesSet reports whether bridges[i] set its sink's retries (0 is a
// real choice: no retry).
func bridgeDefaults(desc *Descriptor, retriesSet func(i int) bool) {
	for i := range desc.Bridges {
		b := &desc.Bridges[i]
		if b.Source != nil && b.Source.VCenter != nil {
			v := b.Source.VCenter
			v.PageSize = or(v.PageSize, DefaultVCenterPageSize)
			v.Poll = or(v.Poll, DefaultVCenterPoll)
		}
		if b.Source != nil && b.Source.Kafka != nil {
			b.Source.Kafka.Offset = or(b.Source.Kafka.Offset, OffsetFirstName)
		}
		if b.Sink != nil && b.Sink.Kafka != nil {
			b.Sink.Kafka.Offset = or(b.Sink.Kafka.Offset, OffsetFirstName)
		}
		if b.Source != nil && b.Source.Webhook != nil {
			w := b.Source.Webhook
			w.Type = or(w.Type, DefaultWebhookType)
			w.SignatureHeader = or(w.SignatureHeader, DefaultSignatureHeader)
			w.MaxBody = or(w.MaxBody, DefaultBridgeMaxBodySize)
		}
		if b.Sink != nil && b.Sink.HTTP != nil {
			h := b.Sink.HTTP
			if !retriesSet(i) {
				h.Retries = DefaultSinkRetries
			}
			h.Backoff = or(h.Backoff, Duration(200e6))
			h.MaxBackoff = or(h.MaxBackoff, Duration(30e9))
			h.Timeout = or(h.Timeout, Duration(30e9))
			h.DeadLetter = or(h.DeadLetter, BridgeDeadLetterStream(desc.Name, b.Name))
		}
	}
}
