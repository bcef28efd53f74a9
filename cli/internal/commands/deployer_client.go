package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/buttercompass/butter/proto/kit"
)

// deployerClient talks to the deployer's /v1 API.
type deployerClient struct {
	base  string
	token string
	http  *http.Client
}

// deployerFlags adds --deployer and --token to a command that talks to
// the deployer API.
func (a *app) deployerFlags(cmd *cobra.Command) *deployerClient {
	c := &deployerClient{http: &http.Client{Timeout: 5 * time.Minute}}
	cmd.Flags().StringVar(&c.base, "deployer", kit.EnvOr("BUTTER_DEPLOYER", "http://127.0.0.1:8081"), "deployer API `URL` (env BUTTER_DEPLOYER)")
	c.token = kit.EnvOr("BUTTER_TOKEN", "")
	return c
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

// apiError is a non-2xx answer; its message lists every problem.
type apiError struct {
	status int
	p      problem
	body   string
}

func (e *apiError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "deployer answered %d", e.status)
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
func (c *deployerClient) do(ctx context.Context, method, path, contentType string, body []byte, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.base, "/")+path, bytes.NewReader(body))
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
		return 0, fmt.Errorf("reach the deployer at %s (is butter up running?): %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, fmt.Errorf("read deployer answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		e := &apiError{status: resp.StatusCode, body: string(data)}
		_ = json.Unmarshal(data, &e.p)
		return resp.StatusCode, e
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode deployer answer: %w", err)
		}
	}
	return resp.StatusCode, nil
}
