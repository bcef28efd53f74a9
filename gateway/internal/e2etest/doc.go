// Package e2etest runs the gateway against the real fnbox binary and the
// real Node example (examples/http-hello): the whole HTTP path, end to
// end, on the embedded broker. It holds only tests.
package e2etest
