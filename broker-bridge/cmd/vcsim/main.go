// Command vcsim runs govmomi's vCenter simulator (one datacenter, hosts,
// clusters and VMs, the VPX model) over HTTPS, for trying the vCenter
// bridge without a vCenter (examples/vcenter) and for the bridge's
// process tests. It prints "vcsim on <url>" with the user and password in
// the URL, and runs until SIGINT or SIGTERM.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/vmware/govmomi/simulator"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8989", "`host:port` to serve the SDK on; port 0 picks one")
	flag.Parse()
	if err := run(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "vcsim:", err)
		os.Exit(1)
	}
}

func run(addr string) error {
	m := simulator.VPX()
	if err := m.Create(); err != nil {
		return fmt.Errorf("create model: %w", err)
	}
	defer m.Remove()
	m.Service.TLS = new(tls.Config)
	m.Service.Listen = &url.URL{Host: addr}
	s := m.Service.NewServer()
	defer s.Close()
	fmt.Printf("vcsim on %s\n", s.URL)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}
