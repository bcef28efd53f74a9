package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/buttercompass/butter/proto/kit/kittest"

	"github.com/buttercompass/butter/timer/internal/testutil"
)

// bin is the butter-timer binary built by TestMain: the HA tests run
// replicas as separate processes, so a SIGKILL is a real one.
var bin string

func TestMain(m *testing.M) {
	kittest.MainWithBinaries(m, kittest.Binary{Pkg: ".", Name: "butter-timer", Path: &bin, Flags: []string{"-race"}})
}

// replica is a butter-timer process.
type replica struct {
	name string
	cmd  *exec.Cmd
	url  string
	logs *kittest.Buffer
	done chan struct{} // closed when the process exited
	err  error         // its exit error, once done
}

func startReplica(t *testing.T, brokers, name string, args ...string) *replica {
	t.Helper()
	r := &replica{name: name, logs: &kittest.Buffer{}, done: make(chan struct{})}
	r.cmd = exec.Command(bin, append([]string{"--addr", "127.0.0.1:0", "--brokers", brokers, "--replica", name}, args...)...)
	r.cmd.Stderr = r.logs
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "timer API on http://"); ok {
				urls <- "http://" + strings.Fields(rest)[0][:strings.Index(strings.Fields(rest)[0], "/")]
			}
		}
		r.err = r.cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		_ = r.cmd.Process.Kill()
		<-r.done
		if t.Failed() {
			t.Logf("logs of %s:\n%s", name, r.logs.String())
		}
	})
	select {
	case r.url = <-urls:
	case <-r.done:
		t.Fatalf("%s exited: %v\n%s", name, r.err, r.logs.String())
	case <-time.After(testutil.Timeout):
		t.Fatalf("%s did not start:\n%s", name, r.logs.String())
	}
	kittest.WaitReady(t, name, r.url)
	return r
}

func (r *replica) alive() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

func post(t *testing.T, url, body string) {
	t.Helper()
	resp, err := http.Post(url+"/v1/timers", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST = %d %s", resp.StatusCode, b)
	}
}

// firedBy asks a replica which replica fired the schedule's last tick.
func firedBy(r *replica, id string) (string, error) {
	resp, err := http.Get(r.url + "/v1/timers/" + id)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var v struct {
		FiredBy string `json:"firedBy"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return "", err
	}
	if v.FiredBy == "" {
		return "", fmt.Errorf("%s has not fired yet", id)
	}
	return v.FiredBy, nil
}

// owner returns the replica that fires schedule id, asked of any living one.
func owner(t *testing.T, rs []*replica, id string) *replica {
	t.Helper()
	var own *replica
	kittest.Eventually(t, "find the owner of "+id, func() error {
		for _, r := range rs {
			if !r.alive() {
				continue
			}
			name, err := firedBy(r, id)
			if err != nil {
				return err
			}
			for _, o := range rs {
				if o.name == name && o.alive() {
					own = o
					return nil
				}
			}
			return fmt.Errorf("last fired by %s, which is gone", name)
		}
		return fmt.Errorf("no replica alive")
	})
	return own
}

// TestHAKillOwner runs three replicas, SIGKILLs the one firing a schedule
// mid-run, and checks the stream: no tick twice, none missing.
func TestHAKillOwner(t *testing.T) {
	brokers := testutil.Broker(t)
	var rs []*replica
	for i := 1; i <= 3; i++ {
		rs = append(rs, startReplica(t, brokers, fmt.Sprintf("r%d", i)))
	}
	post(t, rs[0].url, `{"id": "ha", "schedule": "@every 1s", "stream": "ha-ticks", "catchUp": "all"}`)
	reader := testutil.ReadTicks(t, brokers, "ha-ticks")
	reader.WaitFor(t, 10)

	victim := owner(t, rs, "ha")
	killed := time.Now()
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-victim.done
	t.Logf("killed owner %s at %s", victim.name, killed.Format(time.RFC3339Nano))

	ticks := reader.WaitFor(t, 60)
	times := testutil.CheckExactlyOnce(t, ticks, "ha", time.Second)
	t.Logf("%d ticks from %s to %s, none twice, none missing", len(ticks), times[0].Format(time.TimeOnly), times[len(times)-1].Format(time.TimeOnly))

	// Handover: the first tick fired after the kill, and how late the
	// ticks due meanwhile were.
	var first time.Time
	var maxLag time.Duration
	for _, tk := range ticks {
		if tk.Data.FiredTime.After(killed) && (first.IsZero() || tk.Data.FiredTime.Before(first)) {
			first = tk.Data.FiredTime
		}
		if lag := tk.Data.FiredTime.Sub(tk.Data.ScheduledTime); lag > maxLag {
			maxLag = lag
		}
	}
	t.Logf("handover: first tick after the kill fired %s after it; largest fire lag %s", first.Sub(killed).Round(time.Millisecond), maxLag.Round(time.Millisecond))
	if now := owner(t, rs, "ha"); now == victim {
		t.Fatalf("the killed replica still owns the schedule")
	}
}

// TestShutdownDrains sends SIGTERM to the replica firing a schedule: it
// fires the tick due within its drain window, leaves the group and exits
// 0, and the other replica carries on without a gap, even with catchUp
// none.
func TestShutdownDrains(t *testing.T) {
	brokers := testutil.Broker(t)
	rs := []*replica{
		startReplica(t, brokers, "a", "--log-level", "debug"),
		startReplica(t, brokers, "b", "--log-level", "debug"),
	}
	post(t, rs[0].url, `{"id": "drain", "schedule": "@every 1s", "stream": "drain-ticks", "catchUp": "none"}`)
	reader := testutil.ReadTicks(t, brokers, "drain-ticks")
	reader.WaitFor(t, 3)

	victim := owner(t, rs, "drain")
	signalled := time.Now()
	if err := victim.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-victim.done:
	case <-time.After(testutil.Timeout):
		t.Fatalf("%s did not exit after SIGTERM", victim.name)
	}
	if victim.err != nil {
		t.Fatalf("%s exited with %v after SIGTERM, want 0", victim.name, victim.err)
	}
	logs := victim.logs.String()
	if !strings.Contains(logs, "draining") || !strings.Contains(logs, "left the timer group") {
		t.Fatalf("%s did not drain:\n%s", victim.name, logs)
	}
	// The drain window (2s) holds the next tick (due within 1s): the
	// stopping replica fired it itself.
	drained := false
	for _, line := range strings.Split(logs, "\n") {
		var l struct {
			Msg       string    `json:"msg"`
			Scheduled time.Time `json:"scheduled"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "tick fired" && l.Scheduled.After(signalled) {
			drained = true
		}
	}
	if !drained {
		t.Fatalf("%s fired no tick due after SIGTERM:\n%s", victim.name, logs)
	}

	n := len(reader.Poll(t))
	ticks := reader.WaitFor(t, n+5)
	testutil.CheckExactlyOnce(t, ticks, "drain", time.Second)
}
