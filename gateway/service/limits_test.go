package service

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/buttercompass/butter/gateway/internal/testutil"
	"github.com/buttercompass/butter/proto/kit/kittest"
)

// slowClient opens a connection to addr, sends head and then one body
// byte per tick until the gateway closes the connection or stop is
// closed. It reports on closed the first status line it read (empty if
// none) once the connection is closed by the gateway.
func slowClient(t *testing.T, addr, head string, stop <-chan struct{}, closed chan<- string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		closed <- "dial: " + err.Error()
		return
	}
	if _, err := io.WriteString(c, head); err != nil {
		c.Close()
		closed <- "write head: " + err.Error()
		return
	}
	done := make(chan string, 1)
	go func() {
		// What the gateway answers, then EOF (or a reset) once it closes.
		br := bufio.NewReader(c)
		status, _ := br.ReadString('\n')
		_, _ = io.Copy(io.Discard, br)
		done <- strings.TrimSpace(status)
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	defer c.Close()
	for {
		select {
		case status := <-done:
			closed <- status
			return
		case <-stop:
			return
		case <-tick.C:
			// A write error means the gateway is gone too; the reader
			// reports it.
			_, _ = c.Write([]byte("x"))
		}
	}
}

// TestSlowBodiesAreCut: 200 connections trickling a body one byte at a
// time are all closed once their body time is up (408 on a route, and a
// body nobody reads, after a 404, is not drained forever either), while a
// normal request is served meanwhile and after.
func TestSlowBodiesAreCut(t *testing.T) {
	c := testutil.NewCluster(t)
	c.Deploy("hello", helloYAML)
	c.Respond("hello", "hello", "fn", helloHandler)
	g := startGateway(t, c, func(cfg *Config) {
		cfg.Limits.BodyTimeout = time.Second
		cfg.Limits.MinBodyRate = 1 << 20
	})
	ready(t, g.url+"/hello")
	addr := strings.TrimPrefix(g.url, "http://")

	heads := []string{
		"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
		"POST /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n",
		"POST /nothing HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
	}
	const n = 200
	stop := make(chan struct{})
	closed := make(chan string, n)
	var wg sync.WaitGroup
	t.Cleanup(func() { close(stop); wg.Wait() })
	start := time.Now()
	for i := range n {
		wg.Go(func() { slowClient(t, addr, heads[i%len(heads)], stop, closed) })
	}

	// A normal request is served while they trickle.
	if r := call(t, "POST", g.url+"/hello", []byte(`{"name":"ada"}`), nil); r.code != 201 {
		t.Fatalf("normal request during the trickle: got %d %s", r.code, r.body)
	}

	statuses := map[string]int{}
	for i := range n {
		select {
		case s := <-closed:
			statuses[s]++
		case <-time.After(testutil.Timeout):
			t.Fatalf("after %s, %d of %d trickling connections are still open (closed: %v)",
				testutil.Timeout, n-i, n, statuses)
		}
	}
	t.Logf("%d trickling connections closed within %s: %v", n, time.Since(start).Round(time.Millisecond), statuses)
	for s, k := range statuses {
		if !strings.Contains(s, "408") && !strings.Contains(s, "404") {
			t.Errorf("%d connections answered %q, want 408 (route) or 404 (no route)", k, s)
		}
	}
	if statuses["HTTP/1.1 408 Request Timeout"] < n/2 {
		t.Errorf("got %v, want the %d trickles on a route answered 408", statuses, n*2/3)
	}
	if r := call(t, "POST", g.url+"/hello", []byte(`{"name":"bob"}`), nil); r.code != 201 {
		t.Fatalf("normal request after the trickle: got %d %s", r.code, r.body)
	}
	m := call(t, "GET", g.url+"/metrics", nil, nil)
	if !strings.Contains(string(m.body), "butter_gateway_body_timeouts_total") {
		t.Errorf("no body timeout metric in /metrics")
	}
}

// TestSlowBodyWithinItsTimeIsServed: a body sent slowly but within its
// time (BodyTimeout plus its size at MinBodyRate) is served.
func TestSlowBodyWithinItsTimeIsServed(t *testing.T) {
	c := testutil.NewCluster(t)
	c.Deploy("hello", helloYAML)
	c.Respond("hello", "hello", "fn", helloHandler)
	g := startGateway(t, c, func(cfg *Config) {
		cfg.Limits.BodyTimeout = 30 * time.Second
	})
	ready(t, g.url+"/hello")
	body := `{"name":"slow"}`
	pr, pw := io.Pipe()
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := range len(body) {
			<-tick.C
			if _, err := pw.Write([]byte{body[i]}); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", g.url+"/hello", pr)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 201 || !strings.Contains(string(b), "hello slow") {
		t.Fatalf("got %d %s", res.StatusCode, b)
	}
}

// TestConnectionCap: with --max-conns N, N open connections make the next
// one wait until one of them closes; it is then served.
func TestConnectionCap(t *testing.T) {
	c := testutil.NewCluster(t)
	c.Deploy("hello", helloYAML)
	c.Respond("hello", "hello", "fn", helloHandler)
	const max = 4
	g := startGateway(t, c, func(cfg *Config) { cfg.Limits.MaxConns = max })
	ready(t, g.url+"/hello")
	addr := strings.TrimPrefix(g.url, "http://")
	// ready's keep-alive connection counts too: drop it.
	http.DefaultClient.CloseIdleConnections()

	// Hold max connections, each with a request the gateway has read, so
	// they are surely accepted: a GET answered, kept alive.
	var held []net.Conn
	for range max {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		held = append(held, conn)
	}

	var served atomic.Bool
	got := make(chan error, 1)
	go func() {
		cl := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		res, err := cl.Get(g.url + "/livez")
		if err == nil {
			res.Body.Close()
			served.Store(true)
			if res.StatusCode != 200 {
				err = fmt.Errorf("got %d", res.StatusCode)
			}
		}
		got <- err
	}()
	// The extra connection is not served while the held ones are open. (A
	// broken cap fails here; a slow machine only makes this wait vacuous.)
	select {
	case err := <-got:
		t.Fatalf("a connection beyond the cap was served while %d were open (err %v)", max, err)
	case <-time.After(500 * time.Millisecond):
	}
	held[0].Close()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testutil.Timeout):
		t.Fatal("the waiting connection was not served after a held one closed")
	}
	if !served.Load() {
		t.Fatal("not served")
	}
	// The gauge counts the 3 still held and the one reading it.
	kittest.Eventually(t, "open connections gauge", func() error {
		m := call(t, "GET", g.url+"/metrics", nil, nil)
		if !strings.Contains(string(m.body), fmt.Sprintf("butter_gateway_open_connections %d\n", max)) {
			return fmt.Errorf("gauge not %d", max)
		}
		return nil
	})
}

// TestIdleAndHeaderTimeouts: a keep-alive connection that sends nothing
// more is closed after --idle-timeout, and one that never finishes its
// headers after --read-header-timeout.
func TestIdleAndHeaderTimeouts(t *testing.T) {
	c := testutil.NewCluster(t)
	g := startGateway(t, c, func(cfg *Config) {
		cfg.Limits.IdleTimeout = 300 * time.Millisecond
		cfg.Limits.ReadHeaderTimeout = 300 * time.Millisecond
	})
	addr := strings.TrimPrefix(g.url, "http://")
	for name, send := range map[string]string{
		"idle":            "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n",
		"partial headers": "GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: ",
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if _, err := io.WriteString(conn, send); err != nil {
			t.Fatal(err)
		}
		closed := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, conn) // returns once the gateway closes
			closed <- err
		}()
		// 20 s: far above the 300 ms set, on a loaded machine too, and
		// below the 60 s default idle timeout, so an unset one fails.
		select {
		case <-closed:
		case <-time.After(20 * time.Second):
			t.Errorf("%s: connection still open after 20s", name)
		}
	}
}
