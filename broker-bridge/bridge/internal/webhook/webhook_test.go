package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit/kittest"
	"github.com/buttercompass/butter/proto/topics"
)

func sign(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func TestWebhook(t *testing.T) {
	t.Parallel()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	for _, s := range []topics.Spec{topics.Stream("hooks"), {Name: topics.Events, Partitions: 1}} {
		if err := b.CreateTopic(s); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := b.Kafka().NewClient()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	target := &Target{Spec: descriptor.WebhookSource{Type: "com.example.push", SignatureHeader: "X-Hub-Signature-256", MaxBody: 1024}, Topic: "hooks", Secret: "s3cret"}
	mux := http.NewServeMux()
	mux.Handle(Pattern, &Handler{Kafka: cl, Log: slog.New(slog.DiscardHandler), Lookup: func(d, br string) (*Target, bool) {
		return target, d == "gh" && br == "push"
	}, Events: control.NewRecorder(cl, topics.Events, "/butter/bridge")})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	post := func(path, body string, header map[string]string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d without a problem body", path, resp.StatusCode)
		}
		return resp.StatusCode
	}
	const p = "/v1/webhooks/gh/push"
	batch := `[{"specversion":"1.0","id":"b1","source":"/x","type":"t.batch"},{"specversion":"1.0","id":"b2","source":"/x","type":"t.batch"}]`
	structured := `{"specversion":"1.0","id":"s1","source":"/x","type":"t.structured","data":{"a":1}}`
	for _, c := range []struct {
		name   string
		path   string
		body   string
		header map[string]string
		want   int
	}{
		{"bad signature", p, `{"marker":"forged"}`, map[string]string{"X-Hub-Signature-256": sign("wrong", `{"marker":"forged"}`)}, 401},
		{"no signature", p, `{"marker":"forged"}`, nil, 401},
		{"too big", p, `{"marker":"` + strings.Repeat("x", 2000) + `"}`, nil, 413},
		{"not json", p, `forged`, map[string]string{"X-Hub-Signature-256": sign("s3cret", `forged`)}, 400},
		{"unknown bridge", "/v1/webhooks/gh/other", `{}`, nil, 404},
		{"plain json", p, `{"marker":"plain"}`, map[string]string{"X-Hub-Signature-256": sign("s3cret", `{"marker":"plain"}`)}, 202},
		{"binary", p, `{"marker":"binary"}`, map[string]string{"X-Hub-Signature-256": sign("s3cret", `{"marker":"binary"}`),
			"Ce-Specversion": "1.0", "Ce-Id": "bin1", "Ce-Source": "/x", "Ce-Type": "t.binary", "Content-Type": "application/json"}, 202},
		{"structured", p, structured, map[string]string{"X-Hub-Signature-256": sign("s3cret", structured), "Content-Type": "application/cloudevents+json"}, 202},
		{"batch", p, batch, map[string]string{"X-Hub-Signature-256": sign("s3cret", batch), "Content-Type": "application/cloudevents-batch+json"}, 202},
	} {
		if got := post(c.path, c.body, c.header); got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
	}

	rd, err := b.Kafka().NewClient(kgo.ConsumeTopics("hooks"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	types := map[string]int{}
	kittest.Eventually(t, "5 events on hooks", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		rd.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if bytes.Contains(r.Value, []byte("forged")) {
				t.Errorf("a refused request was written: %s", r.Value)
			}
			types[envelope.FromRecord(r).Event.Type()]++
		})
		if n := types["com.example.push"] + types["t.binary"] + types["t.structured"] + types["t.batch"]; n != 5 || len(types) != 4 {
			return fmt.Errorf("types %v", types)
		}
		return nil
	})
	// Both 401s are on _butter.events as auth.reject alarms.
	ev, err := b.Kafka().NewClient(kgo.ConsumeTopics(topics.Events), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	rejects := 0
	kittest.Eventually(t, "2 auth.reject events", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		ev.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			e := envelope.FromRecord(r).Event
			if e.Type() == control.TypeAuthReject && e.Subject() == "auth/webhook/gh/push" {
				rejects++
			}
		})
		if rejects < 2 {
			return fmt.Errorf("%d", rejects)
		}
		return nil
	})
}

// BenchmarkWebhook: signed plain JSON posts from 8 goroutines, each
// answered 202 after Kafka acknowledged it.
func BenchmarkWebhook(b *testing.B) {
	br, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	if err := br.CreateTopic(topics.Stream("hooks")); err != nil {
		b.Fatal(err)
	}
	cl, err := br.Kafka().NewClient()
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	target := &Target{Spec: descriptor.WebhookSource{Type: "t", SignatureHeader: "X-Hub-Signature-256", MaxBody: 1 << 20}, Topic: "hooks", Secret: "k"}
	mux := http.NewServeMux()
	mux.Handle(Pattern, &Handler{Kafka: cl, Log: slog.New(slog.DiscardHandler), Lookup: func(string, string) (*Target, bool) { return target, true }})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	body := `{"ref":"refs/heads/main"}`
	sig := sign("k", body)
	b.SetParallelism(4)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/webhooks/d/b", strings.NewReader(body))
			req.Header.Set("X-Hub-Signature-256", sig)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "requests/s")
}
