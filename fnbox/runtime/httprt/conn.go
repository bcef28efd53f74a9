package httprt

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// conns are the keep-alive connections to one function server. A call
// takes an idle connection (or dials one), writes its request and reads the
// answer on the calling goroutine, and puts the connection back: no
// per-call goroutines, channels or timers, unlike http.Transport, whose
// read and write loops cost two goroutine hand-offs per call, more than the
// rest of a no-op call on loopback. The HTTP itself is net/http's
// (Request.Write, ReadResponse).
type conns struct {
	addr string

	mu     sync.Mutex
	idle   []*conn
	closed bool
}

// maxIdle bounds the idle connections kept per server; more concurrent
// calls than that dial and close connections of their own.
const maxIdle = 64

// conn is one connection, used by one call at a time.
type conn struct {
	nc net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

// aLongTimeAgo is a deadline in the past: setting it wakes a blocked read
// or write at once.
var aLongTimeAgo = time.Unix(1, 0)

// get returns an idle connection the server has not closed, or dials a
// new one.
func (cs *conns) get(ctx context.Context) (*conn, error) {
	for {
		cs.mu.Lock()
		n := len(cs.idle)
		if n == 0 {
			cs.mu.Unlock()
			break
		}
		c := cs.idle[n-1]
		cs.idle = cs.idle[:n-1]
		cs.mu.Unlock()
		if c.open() {
			return c, nil
		}
		c.nc.Close()
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", cs.addr)
	if err != nil {
		return nil, err
	}
	return &conn{nc: nc, br: bufio.NewReaderSize(nc, 16<<10), bw: bufio.NewWriterSize(nc, 16<<10)}, nil
}

// open reports whether an idle connection is still usable: the server has
// not closed it (servers close idle connections after a while) and sent
// nothing since the last answer. http.Transport learns this from its read
// loop; here one non-blocking peek does, so a request is never written on
// a connection that cannot answer it and never needs sending twice.
func (c *conn) open() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = n <= 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
		return true // never wait for data
	})
	return err == nil && alive
}

// put keeps c for the next call, or closes it.
func (cs *conns) put(c *conn) {
	cs.mu.Lock()
	if !cs.closed && len(cs.idle) < maxIdle {
		cs.idle = append(cs.idle, c)
		c = nil
	}
	cs.mu.Unlock()
	if c != nil {
		c.nc.Close()
	}
}

// close closes the idle connections and those put back later.
func (cs *conns) close() {
	cs.mu.Lock()
	idle := cs.idle
	cs.idle, cs.closed = nil, true
	cs.mu.Unlock()
	for _, c := range idle {
		c.nc.Close()
	}
}

// do sends req and returns the answer with its body read (up to
// maxResult+1 bytes). Cancelling ctx fails the call at once. A request is
// sent once: a call that fails is the caller's to retry.
func (cs *conns) do(ctx context.Context, req *http.Request) (*http.Response, []byte, error) {
	c, err := cs.get(ctx)
	if err != nil {
		return nil, nil, err
	}
	resp, body, keep, err := c.roundTrip(ctx, req)
	if err == nil && keep {
		cs.put(c)
	} else {
		c.nc.Close()
	}
	return resp, body, err
}

// roundTrip writes req on c and reads the answer; keep says whether c can
// carry another call.
func (c *conn) roundTrip(ctx context.Context, req *http.Request) (resp *http.Response, body []byte, keep bool, err error) {
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(aLongTimeAgo) })
	defer func() {
		if !stop() {
			// ctx ended during the call: the deadline poisoned the
			// connection, and the call fails with ctx's error.
			keep = false
			resp, body, err = nil, nil, context.Cause(ctx)
		}
	}()
	if err := req.Write(c.bw); err != nil {
		return nil, nil, false, fmt.Errorf("write request: %w", err)
	}
	if err := c.bw.Flush(); err != nil {
		return nil, nil, false, fmt.Errorf("write request: %w", err)
	}
	resp, err = http.ReadResponse(c.br, req)
	if err != nil {
		return nil, nil, false, fmt.Errorf("read answer: %w", err)
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxResult+1))
	resp.Body.Close()
	if err != nil {
		return nil, nil, false, fmt.Errorf("read answer: %w", err)
	}
	// A body cut at the limit leaves bytes on the connection.
	keep = !resp.Close && !req.Close && len(body) <= maxResult
	return resp, body, keep, nil
}
