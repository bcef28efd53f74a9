package broker

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
)

// The broker listens on Config.Addr and, with Config.ContainerAddr, on a
// second address that containers reach (the Docker bridge's gateway on
// this host): a container cannot reach the host's 127.0.0.1. kfake has
// one listener per broker, so both are merged into one net.Listener, and
// kfake (patched, AdvertiseConnAddr) tells each client the address of the
// connection it came in on: host clients keep 127.0.0.1:9092, containers
// get 172.17.0.1:9092, and SASL applies on both alike.

// listenAll listens on addr and, if extra is set, on extra too; extra
// without a port takes addr's bound port.
func listenAll(network, addr, extra string) (net.Listener, string, error) {
	main, err := net.Listen(network, addr)
	if err != nil {
		return nil, "", err
	}
	if extra == "" {
		return main, "", nil
	}
	host, port, err := net.SplitHostPort(extra)
	if err != nil {
		// A bare host: the main listener's port.
		_, p, _ := net.SplitHostPort(main.Addr().String())
		host, port = extra, p
	}
	if _, err := strconv.Atoi(port); err != nil {
		main.Close()
		return nil, "", fmt.Errorf("check --container-addr %q: want host or host:port", extra)
	}
	if h, _, _ := net.SplitHostPort(addr); h == "" || net.ParseIP(h) != nil && net.ParseIP(h).IsUnspecified() {
		// Listening on every address already: containers reach it there.
		return main, net.JoinHostPort(host, port), nil
	}
	second, err := net.Listen(network, net.JoinHostPort(host, port))
	if err != nil {
		main.Close()
		return nil, "", fmt.Errorf("listen for containers on %s (is the Docker bridge up? see docs/docker.md): %w", net.JoinHostPort(host, port), err)
	}
	return newMultiListener(main, second), second.Addr().String(), nil
}

// multiListener accepts from several listeners; Addr is the first one's.
type multiListener struct {
	lns   []net.Listener
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

func newMultiListener(lns ...net.Listener) *multiListener {
	m := &multiListener{lns: lns, conns: make(chan net.Conn), done: make(chan struct{})}
	for _, ln := range lns {
		m.wg.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						continue
					}
					return
				}
				select {
				case m.conns <- c:
				case <-m.done:
					c.Close()
					return
				}
			}
		})
	}
	return m
}

// Accept returns the next connection of any listener.
func (m *multiListener) Accept() (net.Conn, error) {
	select {
	case c := <-m.conns:
		return c, nil
	case <-m.done:
		return nil, net.ErrClosed
	}
}

// Close closes every listener and waits for their accept loops.
func (m *multiListener) Close() error {
	var err error
	m.once.Do(func() {
		close(m.done)
		for _, ln := range m.lns {
			err = errors.Join(err, ln.Close())
		}
		m.wg.Wait()
	})
	return err
}

// Addr is the main listener's address.
func (m *multiListener) Addr() net.Addr { return m.lns[0].Addr() }
