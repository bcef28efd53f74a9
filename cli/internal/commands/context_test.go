package commands

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buttercompass/butter/proto/kit"
)

func TestNormalizeURL(t *testing.T) {
	for in, want := range map[string]string{
		"localhost:18081":         "http://localhost:18081",
		"http://127.0.0.1:8081/":  "http://127.0.0.1:8081",
		":8081":                   "http://127.0.0.1:8081",
		"https://butter.example":  "https://butter.example",
		" 10.0.0.1:8082 ":         "http://10.0.0.1:8082",
		"http://[::1]:8081":       "http://[::1]:8081",
		"http://host:1/prefix/":   "http://host:1/prefix",
		"deployer.internal:18081": "http://deployer.internal:18081",
	} {
		got, err := normalizeURL(in)
		if err != nil || got != want {
			t.Errorf("normalizeURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "ftp://host:21", "http://"} {
		if got, err := normalizeURL(bad); err == nil {
			t.Errorf("normalizeURL(%q) = %q, want an error", bad, got)
		}
	}
}

func TestHostPortsAndDialable(t *testing.T) {
	if got := hostPorts([]string{"kafka://k1:9092", "k2:9092", " ", "tcp://k3:9093/"}); strings.Join(got, ",") != "k1:9092,k2:9092,k3:9093" {
		t.Errorf("hostPorts = %v", got)
	}
	for in, want := range map[string]string{"[::]:8081": "127.0.0.1:8081", "0.0.0.0:80": "127.0.0.1:80", "10.1.2.3:9": "10.1.2.3:9", ":7": "127.0.0.1:7"} {
		if got := dialable(in); got != want {
			t.Errorf("dialable(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestContextPrecedence: the flag beats the variable, the variable beats
// the context, the context beats the default; a context file is read from
// --context, else from --data.
func TestContextPrecedence(t *testing.T) {
	for _, env := range []string{"BUTTER_DEPLOYER", "BUTTER_TIMER", "BUTTER_CONTEXT", "BUTTER_DATA"} {
		t.Setenv(env, "")
	}
	dir := t.TempDir()
	kafka := kit.KafkaConfig{Brokers: []string{"127.0.0.1:19092"}, TopicPrefix: "team1."}
	path, err := writeContext(dir, upContext(kafka, filepath.Join(dir, "client.properties"),
		map[string]string{"deployer": "[::]:18081", "timer": "127.0.0.1:18083"}))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("context file: %v, %v", fi, err)
	}
	b, _ := os.ReadFile(path)
	if !bytes.Contains(b, []byte(`"clientConfig": "client.properties"`)) {
		t.Errorf("the login inside the data dir is not relative:\n%s", b)
	}

	a := &app{io: IO{Out: io.Discard, Err: io.Discard}, data: dir}
	if u, _ := a.serviceURL("deployer", ""); u != "http://127.0.0.1:18081" {
		t.Errorf("deployer from --data's context = %q", u)
	}
	if u, _ := a.serviceURL("tracer", ""); u != "http://127.0.0.1:8082" {
		t.Errorf("tracer absent from the context = %q, want the default", u)
	}
	t.Setenv("BUTTER_TIMER", "timer.example:1")
	if u, _ := a.serviceURL("timer", ""); u != "http://timer.example:1" {
		t.Errorf("timer with BUTTER_TIMER = %q", u)
	}
	if u, _ := a.serviceURL("timer", "localhost:2"); u != "http://localhost:2" {
		t.Errorf("timer with --timer = %q", u)
	}
	c, err := a.loadContext()
	if err != nil || c.ClientConfig != filepath.Join(dir, "client.properties") || c.TopicPrefix != "team1." {
		t.Errorf("loadContext = %+v, %v", c, err)
	}

	missing := &app{io: IO{Out: io.Discard, Err: io.Discard}, contextFile: filepath.Join(dir, "nosuch.json")}
	if _, err := missing.serviceURL("deployer", ""); err == nil || !strings.Contains(err.Error(), "nosuch.json") {
		t.Errorf("a missing --context: %v", err)
	}
	none := &app{io: IO{Out: io.Discard, Err: io.Discard}, data: t.TempDir()}
	if u, err := none.serviceURL("deployer", ""); err != nil || u != "http://127.0.0.1:8081" {
		t.Errorf("no context at all = %q, %v", u, err)
	}
}
