package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/apikey"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/topics"
)

func TestAPIKeys(t *testing.T) {
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	a := New(Config{Kafka: cl, Events: control.NewRecorder(cl, topics.Events, control.SourceDeployer), Token: "tok"})
	mux := http.NewServeMux()
	a.Register(mux.Handle)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	do := func(method, path, body, token string, out any) int {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader([]byte(body)))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		data, _ := io.ReadAll(res.Body)
		if out != nil && res.StatusCode < 300 {
			if err := json.Unmarshal(data, out); err != nil {
				t.Fatalf("decode %s: %v", data, err)
			}
		}
		return res.StatusCode
	}

	if code := do("POST", "/v1/apikeys", `{"name":"ci"}`, "", nil); code != 401 {
		t.Fatalf("without token: %d", code)
	}
	if code := do("POST", "/v1/apikeys", `{"name":"","scopes":["a b"]}`, "tok", nil); code != 400 {
		t.Fatalf("bad request: %d", code)
	}
	var created KeyInfo
	if code := do("POST", "/v1/apikeys", `{"name":"ci","scopes":["orders:write"]}`, "tok", &created); code != 201 || created.Secret == "" || created.ID == "" {
		t.Fatalf("create: %d %+v", code, created)
	}
	var list KeyList
	if code := do("GET", "/v1/apikeys", "", "tok", &list); code != 200 || len(list.Keys) != 1 || list.Keys[0].Secret != "" || list.Keys[0].Name != "ci" {
		t.Fatalf("list: %d %+v", code, list)
	}
	keys, err := apikey.ReadAll(context.Background(), cl, topics.APIKeys)
	if err != nil || !keys[created.ID].Matches(created.Secret) {
		t.Fatalf("stored key does not match its secret: %v %+v", err, keys)
	}
	if code := do("DELETE", "/v1/apikeys/"+created.ID, "", "tok", nil); code != 204 {
		t.Fatalf("revoke: %d", code)
	}
	if code := do("DELETE", "/v1/apikeys/"+created.ID, "", "tok", nil); code != 404 {
		t.Fatalf("revoke again: %d", code)
	}
	list = KeyList{}
	if code := do("GET", "/v1/apikeys", "", "tok", &list); code != 200 || len(list.Keys) != 0 {
		t.Fatalf("list after revoke: %d %+v", code, list)
	}

	// Every action left its events; none holds the secret.
	ev, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics(topics.Events), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	want := map[string]bool{apikey.TypeCreate: false, apikey.TypeCreate + control.SuffixCompleted: false,
		apikey.TypeRevoke: false, apikey.TypeRevoke + control.SuffixCompleted: false, control.TypeAuthReject: false}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for missing := len(want); missing > 0; {
		fs := ev.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("events missing: %v", want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			e := envelope.FromRecord(r).Event
			if bytes.Contains(r.Value, []byte(created.Secret)) {
				t.Errorf("event %s holds the secret", e.Type())
			}
			if seen, ok := want[e.Type()]; ok && !seen {
				want[e.Type()] = true
				missing--
			}
		})
	}
}
