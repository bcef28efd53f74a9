package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/buttercompass/butter/proto/kit"
)

// apiClient talks to the /v1 API of a platform service: the deployer or
// the timer.
type apiClient struct {
	app     *app
	service string // deployer, timer: its flag and services entry
	base    string // the flag; resolved by url
	token   string
	http    *http.Client
}

// deployerFlags adds --deployer to a command that talks to the deployer
// API; BUTTER_TOKEN is its bearer token.
func (a *app) deployerFlags(cmd *cobra.Command) *apiClient {
	return a.apiFlags(cmd, "deployer")
}

// apiFlags adds --<service> to a command that talks to that service's API.
func (a *app) apiFlags(cmd *cobra.Command, service string) *apiClient {
	// A deploy answers once the code is stored and built: the deployer's
	// Go builds may take up to 10 minutes (gobuild.DefaultTimeout), so
	// the client waits a little longer than that, never less.
	c := &apiClient{app: a, service: service, http: &http.Client{Timeout: 11 * time.Minute}}
	var def, env string
	for _, s := range services {
		if s.name == service {
			def, env = s.def, s.env
		}
	}
	cmd.Flags().StringVar(&c.base, service, "", fmt.Sprintf("%s API `URL` or host:port (env %s; default from the client context, else %s)", service, env, def))
	c.token = kit.EnvOr("BUTTER_TOKEN", "")
	return c
}

// url resolves the service's base URL once: flag, variable, context.
func (c *apiClient) url() (string, error) {
	u, err := c.app.serviceURL(c.service, c.base)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", c.service, err)
	}
	c.base = u
	return u, nil
}

// functionStatus and deploymentStatus mirror the deployer's JSON.
type functionStatus struct {
	Name      string `json:"name"`
	Desired   int    `json:"desired"`
	Running   int    `json:"running"`
	LastError string `json:"lastError,omitempty"`
	Restarts  int    `json:"restarts,omitempty"`
	Broken    bool   `json:"broken,omitempty"`
}

type deploymentStatus struct {
	Name      string           `json:"name"`
	Version   string           `json:"version"`
	Platform  string           `json:"platform"`
	Functions []functionStatus `json:"functions"`
	Updated   time.Time        `json:"updated"`
}

// problem is an RFC 9457 answer from the API.
type problem struct {
	Title  string   `json:"title"`
	Status int      `json:"status"`
	Detail string   `json:"detail"`
	Errors []string `json:"errors"`
}

// unknown turns a 404 answer into what the user asked for by name and
// the command that lists those names; other errors pass unchanged.
func unknown(err error, what, name, lister string) error {
	var ae *apiError
	if errors.As(err, &ae) && ae.status == http.StatusNotFound {
		return fmt.Errorf("no %s named %s (%s lists them)", what, name, lister)
	}
	return err
}

// apiError is a non-2xx answer; its message lists every problem.
type apiError struct {
	service string
	status  int
	p       problem
	body    string
}

func (e *apiError) Error() string {
	var b strings.Builder
	if e.status == http.StatusNotFound && e.p.Detail != "" {
		// Unknown names: the detail says which and where to look.
		return e.p.Detail
	}
	fmt.Fprintf(&b, "%s answered %d", e.service, e.status)
	if e.p.Title != "" {
		fmt.Fprintf(&b, " %s", e.p.Title)
	}
	if e.p.Detail != "" {
		fmt.Fprintf(&b, ": %s", e.p.Detail)
	}
	for _, p := range e.p.Errors {
		fmt.Fprintf(&b, "\n  %s", p)
	}
	if e.p.Title == "" && e.body != "" {
		fmt.Fprintf(&b, ": %s", strings.TrimSpace(e.body))
	}
	return b.String()
}

// do sends a request and decodes a JSON answer into out (if not nil).
func (c *apiClient) do(ctx context.Context, method, path, contentType string, body []byte, out any) (int, error) {
	base, err := c.url()
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("reach the %s at %s (is butter up running? --%s, --context or --data point elsewhere): %w", c.service, base, c.service, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, fmt.Errorf("read the %s's answer: %w", c.service, err)
	}
	if resp.StatusCode >= 300 {
		e := &apiError{service: c.service, status: resp.StatusCode, body: string(data)}
		_ = json.Unmarshal(data, &e.p)
		return resp.StatusCode, e
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode the %s's answer: %w", c.service, err)
		}
	}
	return resp.StatusCode, nil
}
