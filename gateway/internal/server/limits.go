package server

import (
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/buttercompass/butter/proto/descriptor"
)

// Limits bound what one client can hold of the gateway: how long it may
// take to send headers and a body, how long an idle keep-alive connection
// stays open, and how many connections are open at once. Slow clients
// otherwise hold a goroutine, a socket and a file descriptor each for as
// long as they like (slowloris).
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's headers. Default 5s.
	ReadHeaderTimeout time.Duration
	// BodyTimeout is the time any body gets to arrive, on top of the time
	// its size needs at MinBodyRate. Default 10s.
	BodyTimeout time.Duration
	// MinBodyRate is the slowest upload, in bytes per second, that still
	// gets a whole body in: a body of n bytes (its Content-Length, or the
	// route's maxBody when chunked) must arrive within
	// BodyTimeout + n/MinBodyRate. Default 32 KiB/s, which gives a 1 MiB
	// body 42 s.
	MinBodyRate int64
	// IdleTimeout closes a keep-alive connection that sends no new request
	// for this long. Default 60s.
	IdleTimeout time.Duration
	// MaxConns caps the open connections; once reached, new ones wait in
	// the listen backlog until one closes. 0 means no cap. Default 4096.
	MaxConns int
}

// DefaultLimits returns the limits of a gateway given no flags.
func DefaultLimits() Limits {
	return Limits{ReadHeaderTimeout: 5 * time.Second, BodyTimeout: 10 * time.Second, MinBodyRate: 32 << 10,
		IdleTimeout: 60 * time.Second, MaxConns: 4096}
}

// WithDefaults fills the zero fields (but MaxConns, whose 0 means no cap)
// from DefaultLimits.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = d.ReadHeaderTimeout
	}
	if l.BodyTimeout <= 0 {
		l.BodyTimeout = d.BodyTimeout
	}
	if l.MinBodyRate <= 0 {
		l.MinBodyRate = d.MinBodyRate
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = d.IdleTimeout
	}
	return l
}

// BodyTime is how long a body of n bytes may take to arrive.
func (l Limits) BodyTime(n int64) time.Duration {
	l = l.WithDefaults()
	return l.BodyTimeout + time.Duration(float64(n)/float64(l.MinBodyRate)*float64(time.Second))
}

// Configure sets the server's header and idle timeouts and wraps its
// handler so every request with a body has a read deadline from the start:
// a body nobody reads (a 404, a 401) is otherwise drained after the
// handler returns with no deadline at all. It is meant for
// kit.ServerOptions.
func (s *Server) Configure(srv *http.Server) {
	srv.ReadHeaderTimeout = s.limits.ReadHeaderTimeout
	srv.IdleTimeout = s.limits.IdleTimeout
	next := srv.Handler
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			n := r.ContentLength
			if n < 0 {
				n = int64(descriptor.DefaultMaxBody)
			}
			// Only requests with a body: for one without, net/http already
			// reads the connection in the background, and a deadline
			// passing there would cancel the request while it waits for
			// its reply.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.limits.BodyTime(n)))
		}
		next.ServeHTTP(w, r)
	})
}

// readBodyDeadline sets the deadline of r's body for a route accepting up
// to limit bytes, counted from start (when the request arrived).
func (s *Server) readBodyDeadline(w http.ResponseWriter, r *http.Request, start time.Time, limit int64) {
	if r.ContentLength == 0 {
		return
	}
	n := limit
	if r.ContentLength > 0 && r.ContentLength < limit {
		n = r.ContentLength
	}
	_ = http.NewResponseController(w).SetReadDeadline(start.Add(s.limits.BodyTime(n)))
}

// bodyRead clears the read deadline once the body is in: net/http then
// reads the connection in the background to notice a client going away,
// and a deadline passing there would cancel the request while it waits for
// the function's reply.
func bodyRead(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
}

// isTimeout reports whether err is a read deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// LimitListener returns a listener that has at most max connections open:
// Accept waits while max are. open, if not nil, tracks how many are.
// max <= 0 returns ln itself.
func LimitListener(ln net.Listener, max int, open prometheus.Gauge) net.Listener {
	if max <= 0 {
		return ln
	}
	return &limitListener{Listener: ln, sem: make(chan struct{}, max), done: make(chan struct{}), open: open}
}

type limitListener struct {
	net.Listener
	sem   chan struct{}
	open  prometheus.Gauge
	close sync.Once
	done  chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	if l.open != nil {
		l.open.Inc()
	}
	return &limitConn{Conn: c, l: l}, nil
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.close.Do(func() { close(l.done) })
	return err
}

type limitConn struct {
	net.Conn
	l       *limitListener
	release sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.release.Do(func() {
		<-c.l.sem
		if c.l.open != nil {
			c.l.open.Dec()
		}
	})
	return err
}

// Listener caps ln at Limits.MaxConns open connections, counted in the
// butter_gateway_open_connections gauge. It is meant for
// kit.WrapListener.
func (s *Server) Listener(ln net.Listener) net.Listener {
	return LimitListener(ln, s.limits.MaxConns, s.m.openConns)
}
