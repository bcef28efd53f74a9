package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/buttercompass/butter/proto/egress"
)

// callbackClient returns the client that sends callbacks: egress.Client,
// which never follows redirects and, unless allowPrivate, dials only
// public addresses.
func callbackClient(c *http.Client, allowPrivate bool) *http.Client {
	return egress.Client(c, allowPrivate)
}

// checkCallback refuses a callback URL that is not an absolute http(s) URL
// or, unless allowPrivate, whose host is or resolves to an address that is
// not public (egress.CheckURL).
func checkCallback(ctx context.Context, raw string, allowPrivate bool) error {
	err := egress.CheckURL(ctx, raw, allowPrivate)
	if errors.Is(err, egress.ErrPrivate) {
		return fmt.Errorf("callback %w (see --allow-private-callbacks)", err)
	}
	return err
}
