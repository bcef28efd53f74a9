// Package egress guards the HTTP requests a service sends to addresses a
// user chose (the gateway's callbacks, the bridge's HTTP sinks) against
// server-side request forgery: by default they may reach only public
// addresses, never loopback, private, link-local (cloud metadata) or
// other special-purpose ones, checked both on the URL and on the address
// actually dialled, and they never follow redirects.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// ErrPrivate refuses an address inside the network. Callers wrap it with
// the name of the option that allows such addresses.
var ErrPrivate = errors.New("address is loopback, private or link-local")

// Public reports whether a is an address a user-chosen URL may reach
// without an explicit allowance: not loopback, private, link-local,
// unspecified or multicast, so a caller cannot make a service POST to the
// services beside it (cloud metadata endpoints included).
func Public(a netip.Addr) bool {
	a = a.Unmap()
	if v4, ok := embeddedIPv4(a); ok {
		return Public(v4)
	}
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() ||
		a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// nonPublic are the IANA special-purpose ranges netip has no predicate
// for: "this network", carrier-grade NAT (where some clouds keep their
// metadata service), IETF protocol assignments, benchmarking, the
// documentation nets and the reserved 240/4.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
}

// Prefixes of IPv6 addresses that carry an IPv4 one: well-known NAT64
// (the last 32 bits) and 6to4 (bits 16-47).
var (
	nat64   = netip.MustParsePrefix("64:ff9b::/96")
	sixToF4 = netip.MustParsePrefix("2002::/16")
)

// embeddedIPv4 returns the IPv4 address a NAT64 or 6to4 address reaches.
func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	switch {
	case nat64.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToF4.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// Client returns the client that sends requests to user-chosen URLs:
// based on c (nil for a client with a 10s timeout), it never follows
// redirects (a public URL could redirect into the network) and, unless
// allowPrivate, connects only to public addresses, checked on the address
// actually dialled so a name resolving differently later is caught too.
// A c with its own Transport keeps it (tests).
func Client(c *http.Client, allowPrivate bool) *http.Client {
	var out http.Client
	if c != nil {
		out = *c
	} else {
		out = http.Client{Timeout: 10 * time.Second}
	}
	out.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if allowPrivate || c != nil && c.Transport != nil {
		return &out
	}
	d := &net.Dialer{Timeout: 10 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("address %s: %w", address, err)
		}
		if !Public(ap.Addr()) {
			return fmt.Errorf("%s: %w", address, ErrPrivate)
		}
		return nil
	}}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil // the check must see the target's address, not a proxy's
	t.DialContext = d.DialContext
	out.Transport = t
	return &out
}

// CheckURL refuses a URL that is not an absolute http(s) URL or, unless
// allowPrivate, whose host is or resolves to an address that is not
// public (ErrPrivate).
func CheckURL(ctx context.Context, raw string, allowPrivate bool) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an absolute http or https URL")
	}
	if allowPrivate {
		return nil
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		if !Public(a) {
			return ErrPrivate
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("cannot resolve %s: %w", host, err)
	}
	for _, a := range addrs {
		if !Public(a) {
			return ErrPrivate
		}
	}
	return nil
}
