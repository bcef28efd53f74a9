package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buttercompass/butter/proto/kit/kittest"
)

// TestAttackerFunctionIsContained deploys a function that opens its own
// Kafka clients, with the login its instance was given and with none, and
// tries issue 8's attacks on a secure `butter up`: forge an API key, write
// _butter.deployments, read another deployment's stream and group, create
// an internal topic. Each must be refused while its own out stream takes a
// direct write, and the forged key must get 401 at the gateway. kcat
// without a login is refused too; with the operator's client.properties it
// works.
func TestAttackerFunctionIsContained(t *testing.T) {
	p := startPlatform(t)
	b := p.must

	victim := t.TempDir()
	writeFile(t, filepath.Join(victim, "handler.py"), "def handle(event, context):\n    return {'secret': 'victim data'}\n")
	writeFile(t, filepath.Join(victim, "butter.yaml"), `name: victim
platform: python
functions:
  - fn: handler.py:handle
    name: serve
    bindings:
      route: { context: /victim, auth: { apiKey: true } }
`)
	p.deployerCmd("deploy", victim)
	b("", "publish", "victim-serve-http", `{"private":"victim request"}`)

	attacker := t.TempDir()
	bin, err := os.ReadFile(attackerBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(attacker, "attacker"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(attacker, "butter.yaml"), fmt.Sprintf(`name: attacker
platform: exec
env:
  ATTACK_SELF: attacker
  ATTACK_BROKERS: %q
  ATTACK_OUT: attack-results
  ATTACK_VICTIM_STREAM: victim-serve-http
  ATTACK_VICTIM_GROUP: butter.victim.serve
functions:
  - fn: ./attacker
    name: attack
    delivery: { timeout: 60s, retries: 0 }
    bindings:
      streams: [{ name: attack-trigger, offset: first }]
      out: attack-results
`, p.broker))
	p.deployerCmd("deploy", attacker)
	b("", "publish", "attack-trigger", `{}`)

	// attack-results holds the direct write and the function's result,
	// in either order on one partition or on two.
	var got map[string]string
	for _, e := range tailJSON(t, b, "attack-results", 2) {
		var m map[string]string
		if json.Unmarshal(e.Event.Data, &m) == nil && m["forgedSecret"] != "" {
			got = m
		}
	}
	if got == nil {
		t.Fatal("no result from the attacker function in attack-results")
	}
	t.Logf("attacker: %v", got)
	if got["ownOut"] != "ok" {
		t.Errorf("the function's own login could not write its out stream: %s", got["ownOut"])
	}
	for _, attempt := range []string{"apikeys", "deployments", "createInternal"} {
		if !strings.Contains(got[attempt], "AUTHORIZATION_FAILED") {
			t.Errorf("%s with the function's login: %q, want an authorization failure", attempt, got[attempt])
		}
	}
	if got["apikeysAnon"] == "ok" {
		t.Error("a client without login wrote _butter.apikeys")
	}
	if got["victimStream"] == "ok" || got["victimGroup"] == "ok" {
		t.Errorf("the attacker read the victim's stream (%s) or group (%s)", got["victimStream"], got["victimGroup"])
	}

	// The forged key opens nothing.
	var status int
	kittest.Eventually(t, "the victim's route is live", func() error {
		req, _ := http.NewRequest(http.MethodPost, "http://"+p.gateway+"/victim", strings.NewReader("{}"))
		req.Header.Set("X-API-Key", got["forgedSecret"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if status = resp.StatusCode; status == http.StatusNotFound {
			return fmt.Errorf("404 %s", body)
		}
		return nil
	})
	if status != http.StatusUnauthorized {
		t.Errorf("the forged API key got %d at the gateway, want 401", status)
	}

	// kcat: the forgery without a login fails; the operator's
	// client.properties reads the internal topics.
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is needed as the outside Kafka client: apt-get install -y kcat")
	}
	forge := exec.Command(kcat, "-b", p.broker, "-P", "-t", "_butter.apikeys", "-K:", "-m", "5")
	forge.Stdin = strings.NewReader(`ffff000000000001:{"id":"ffff000000000001","scopes":["admin"]}` + "\n")
	if out, err := forge.CombinedOutput(); err == nil && !strings.Contains(string(out), "ERROR") {
		t.Errorf("kcat without a login wrote _butter.apikeys: %s", out)
	}
	out, err := exec.Command(kcat, "-F", p.clientConfig(), "-C", "-t", "_butter.apikeys", "-o", "beginning", "-e", "-f", "%k\n").CombinedOutput()
	if err != nil || strings.Contains(string(out), "ffff000000000001") {
		t.Errorf("kcat -F client.properties on _butter.apikeys: %v, want it readable and without the forged key:\n%s", err, out)
	}
}
