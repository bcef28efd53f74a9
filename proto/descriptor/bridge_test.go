package descriptor

import (
	"encoding/json"
	"testing"
	"time"
)

func TestBridges(t *testing.T) {
	d := mustParse(t, `
name: vc
platform: node
secretEnv: { VC_PASSWORD: pass, HOOK_KEY: k }
functions: [{ fn: a.js:b, bindings: { streams: [vc-events] } }]
bridges:
  - name: vcenter
    source:
      vcenter: {url: "https://127.0.0.1:8989/sdk", insecure: true, username: user, passwordFrom: VC_PASSWORD, types: [VmPoweredOnEvent]}
    stream: vc-events
  - name: hooks
    source:
      webhook: {secretFrom: HOOK_KEY}
    stream: hook-events
  - name: notify
    stream: vc-events
    sink:
      http: {url: "http://127.0.0.1:9999/in", retries: 0}
  - name: mirror
    source:
      kafka: {brokers: ["other:9092"], topic: orders, saslMechanism: SCRAM-SHA-256, username: u, passwordFrom: VC_PASSWORD}
    stream: orders-copy
  - name: out
    stream: vc-events
    sink:
      kafka: {brokers: ["other:9092"], topic: vc-copy, tls: true, checkpointTopic: butter-checkpoints}
  - name: vcs
    source:
      vcenter:
        vcenters:
          - {url: "https://vc1/sdk", username: a, passwordFrom: VC_PASSWORD}
          - {url: "https://vc2/sdk", username: b, passwordFrom: VC_PASSWORD, insecure: true}
    stream: vc-events
  - name: local
    stream: vc-events
    sink:
      http: {url: "http://127.0.0.1:9999/in", allowPrivate: true, rateLimit: 50}
`)
	if len(d.Bridges) != 7 {
		t.Fatalf("bridges = %+v", d.Bridges)
	}
	v := d.Bridges[0].Source.VCenter
	if d.Bridges[0].Kind() != BridgeVCenter || v.URL != "https://127.0.0.1:8989/sdk" || !v.Insecure || v.PasswordFrom != "VC_PASSWORD" ||
		v.PageSize != DefaultVCenterPageSize || v.Poll != DefaultVCenterPoll || v.Types[0] != "VmPoweredOnEvent" {
		t.Errorf("vcenter = %+v", v)
	}
	w := d.Bridges[1].Source.Webhook
	if d.Bridges[1].Kind() != BridgeWebhook || w.Type != DefaultWebhookType || w.SignatureHeader != "X-Hub-Signature-256" || w.SecretFrom != "HOOK_KEY" || w.MaxBody != 1<<20 {
		t.Errorf("webhook = %+v", w)
	}
	h := d.Bridges[2].Sink.HTTP
	if d.Bridges[2].Kind() != BridgeHTTP || h.Retries != 0 || h.DeadLetter != "vc-notify-dlq" || time.Duration(h.Backoff) != 200*time.Millisecond {
		t.Errorf("sink = %+v", h)
	}
	if k := d.Bridges[3].Source.Kafka; d.Bridges[3].Kind() != BridgeKafka || k.Offset != "first" || k.Topic != "orders" || k.Brokers[0] != "other:9092" {
		t.Errorf("kafka = %+v", k)
	}
	if k := d.Bridges[4].Sink.Kafka; d.Bridges[4].Kind() != BridgeKafkaSink || k.Offset != "first" || k.Topic != "vc-copy" || !k.TLS || k.CheckpointTopic != "butter-checkpoints" {
		t.Errorf("kafka sink = %+v", k)
	}
	if e := d.Bridges[5].Source.VCenter.Endpoints(); len(e) != 2 || e[1].URL != "https://vc2/sdk" || !e[1].Insecure || e[0].Username != "a" {
		t.Errorf("vcenters = %+v", e)
	}
	if e := v.Endpoints(); len(e) != 1 || e[0].URL != v.URL || e[0].PasswordFrom != "VC_PASSWORD" {
		t.Errorf("one vcenter's endpoints = %+v", e)
	}
	if h := d.Bridges[6].Sink.HTTP; !h.AllowPrivate || h.RateLimit != 50 || h.AllowPrivate == d.Bridges[2].Sink.HTTP.AllowPrivate {
		t.Errorf("allowPrivate = %+v", h)
	}
	// The stored JSON form parses back to the same bridges.
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	d2 := mustParse(t, string(b))
	if d2.Bridges[2].Sink.HTTP.Retries != 0 || d2.Bridges[0].Source.VCenter.URL != v.URL ||
		len(d2.Bridges[5].Source.VCenter.VCenters) != 2 || d2.Bridges[4].Sink.Kafka.Topic != "vc-copy" || !d2.Bridges[6].Sink.HTTP.AllowPrivate {
		t.Errorf("round trip: %+v", d2.Bridges)
	}
	d3 := mustParse(t, "name: a\nplatform: node\nfunctions: [{ fn: a.js:b, bindings: { streams: [s] } }]\nbridges: [{name: n, stream: s, sink: {http: {url: 'http://x/'}}}]\n")
	if d3.Bridges[0].Sink.HTTP.Retries != DefaultSinkRetries {
		t.Errorf("default retries = %d", d3.Bridges[0].Sink.HTTP.Retries)
	}
}

func TestBridgeProblems(t *testing.T) {
	diffLines(t, problemsOf(t, `name: vc
platform: node
secretEnv: { A: b }
functions: [{ fn: a.js:b, bindings: { streams: [s] } }]
bridges:
  - name: vcenter
    source:
      vcenter: {url: "ftp://x", username: u, password: p}
    stream: _butter.events
  - name: vcenter
    stream: s
  - name: Bad
    stream: s
    source: {webhook: {tokenFrom: NOPE}}
    sink: {http: {url: "http://x/"}}
  - stream: s
    sink: {http: {retries: -1, colour: red, rateLimit: -2}}
  - name: w
    stream: s
    source: {webhook: {}, vcenter: {}}
  - name: k
    stream: s
    source: {kafka: {topic: t, offset: 5, saslMechanism: GSSAPI}}
  - name: vcs
    stream: s
    source: {vcenter: {url: "https://a/sdk", vcenters: [{url: "https://a/sdk", username: u, passwordFrom: A}, {url: "https://a/sdk", passwordFrom: B}]}}
  - name: ks
    stream: s
    sink: {kafka: {brokers: [x:9092]}, http: {url: "http://x/"}}
  - name: ks2
    stream: s
    sink: {kafka: {brokers: [x:9092], offset: middle}}
  - name: ks3
    stream: s
    source: {kafka: {brokers: [x:9092], topic: t, checkpointTopic: c}}
`), []string{
		`t.yaml:8:16 bridges[0].source.vcenter.passwordFrom: required: the secretEnv entry holding the password`,
		`t.yaml:8:22 bridges[0].source.vcenter.url: "ftp://x" is not an http(s) URL`,
		`t.yaml:8:56 bridges[0].source.vcenter.password: a password is never written in a descriptor: put it in secretEnv (which the deployer seals) and name that entry with passwordFrom`,
		`t.yaml:9:13 bridges[0].stream: "_butter.events" is an internal stream: functions may read it but not write to it`,
		`t.yaml:10:5 bridges[1]: needs a source (vcenter, webhook or kafka) or a sink (http or kafka)`,
		`t.yaml:10:11 bridges[1].name: "vcenter" is already the name of bridges[0]`,
		`t.yaml:12:5 bridges[2]: has both source and sink: a bridge is one or the other; make two bridges`,
		`t.yaml:12:11 bridges[2].name: "Bad" is not a valid name: use 1-63 characters of a-z, 0-9 and -, starting with a letter`,
		`t.yaml:16:5 bridges[3].name: required: name the bridge, like vcenter`,
		`t.yaml:17:18 bridges[3].sink.http.url: required: the endpoint events are posted to`,
		`t.yaml:17:28 bridges[3].sink.http.retries: must not be negative`,
		`t.yaml:17:32 bridges[3].sink.http.colour: unknown field; the fields here are url, retries, backoff, maxBackoff, timeout, deadLetter, allowPrivate, rateLimit`,
		`t.yaml:17:56 bridges[3].sink.http.rateLimit: must not be negative: posts per second, 0 for no limit`,
		`t.yaml:20:13 bridges[4].source: needs exactly one of vcenter, webhook and kafka`,
		`t.yaml:23:21 bridges[5].source.kafka: saslMechanism needs username and passwordFrom`,
		`t.yaml:23:21 bridges[5].source.kafka.brokers: required: the other cluster's seed brokers, like [kafka-1:9092]`,
		`t.yaml:23:40 bridges[5].source.kafka.offset: "5" is not a start: use first or latest`,
		`t.yaml:23:58 bridges[5].source.kafka.saslMechanism: "GSSAPI" is not a SASL mechanism: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512`,
		`t.yaml:26:29 bridges[6].source.vcenter.url: set it on each entry of vcenters, or drop vcenters for a single vCenter`,
		`t.yaml:26:111 bridges[6].source.vcenter.vcenters[1].username: required: the user the bridge logs in as`,
		`t.yaml:26:117 bridges[6].source.vcenter.vcenters[1].url: "https://a/sdk" is already vcenters[0]`,
		`t.yaml:26:148 bridges[6].source.vcenter.vcenters[1].passwordFrom: "B" is not in secretEnv, which has A`,
		`t.yaml:29:11 bridges[7].sink: needs exactly one of http and kafka`,
		`t.yaml:32:19 bridges[8].sink.kafka.topic: required: the topic written on the other cluster`,
		`t.yaml:32:47 bridges[8].sink.kafka.offset: "middle" is not a start: use first or latest`,
		`t.yaml:35:68 bridges[9].source.kafka.checkpointTopic: is for a sink: a kafka source keeps its positions here, exactly once already`,
	})
}
