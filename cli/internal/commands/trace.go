package commands

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/tracer/api"
)

// tracerClient talks to the tracer's /v1 API (tracer/api).
type tracerClient struct {
	app  *app
	base string // --tracer; resolved by app.serviceURL
	http *http.Client
}

// tracerFlags adds --tracer and -o to a command that asks the tracer.
func (a *app) tracerFlags(cmd *cobra.Command, output *string) *tracerClient {
	c := &tracerClient{app: a, http: &http.Client{}}
	cmd.Flags().StringVar(&c.base, "tracer", "", "tracer API `URL` or host:port (env BUTTER_TRACER; default from the client context, else http://127.0.0.1:8082)")
	cmd.Flags().StringVarP(output, "output", "o", "text", "output format: text or json")
	return c
}

func checkOutput(output string) error {
	if output != "text" && output != "json" {
		return fmt.Errorf("check -o %q: want text or json", output)
	}
	return nil
}

// request sends GET path?q and returns the answer when it is 200; any
// other answer becomes an error with the problem's detail.
func (c *tracerClient) request(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	base, err := c.app.serviceURL("tracer", c.base)
	if err != nil {
		return nil, fmt.Errorf("--tracer: %w", err)
	}
	c.base = base
	u := base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reach the tracer at %s (is butter up running? --tracer points elsewhere): %w", c.base, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var p kit.Problem
		b, _ := io.ReadAll(resp.Body)
		if json.Unmarshal(b, &p) == nil && p.Detail != "" {
			return nil, fmt.Errorf("tracer answered %d: %s", resp.StatusCode, p.Detail)
		}
		return nil, fmt.Errorf("tracer answered %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return resp, nil
}

// get decodes the JSON answer of GET path?q into out and returns its raw
// bytes too, for -o json.
func (c *tracerClient) get(ctx context.Context, path string, q url.Values, out any) ([]byte, error) {
	resp, err := c.request(ctx, path, q)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read tracer answer: %w", err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("decode tracer answer: %w", err)
	}
	return b, nil
}

// follow reads the server-sent events of GET path?q&follow=1 and calls
// each with every data line until ctx is done or the stream ends.
func (c *tracerClient) follow(ctx context.Context, path string, q url.Values, each func([]byte) error) error {
	q.Set("follow", "1")
	resp, err := c.request(ctx, path, q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			if err := each([]byte(data)); err != nil {
				return err
			}
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("follow %s: %w", path, err)
	}
	return nil
}

func (a *app) traceCmd() *cobra.Command {
	var output string
	var c *tracerClient
	cmd := &cobra.Command{
		Use:   "trace TRACEID",
		Short: "Show a trace as a tree of spans with their timings",
		Long: `Show the spans of a trace (from the tracer, :8082) as a tree: each span's
service, name, start offset from the trace's start, duration and status.
The trace id is the 32 hex digits of a traceparent; 'butter logs' and the
web UI show them.`,
		Example: `  butter trace 4bf92f3577b34da6a3ce929d0e0e4736
  butter trace 4bf92f3577b34da6a3ce929d0e0e4736 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			var tr api.Trace
			raw, err := c.get(cmd.Context(), api.PathTraces+"/"+url.PathEscape(args[0]), nil, &tr)
			if err != nil {
				return err
			}
			if output == "json" {
				_, err := fmt.Fprintln(a.io.Out, strings.TrimSpace(string(raw)))
				return err
			}
			printTrace(a.io.Out, tr)
			return nil
		},
	}
	c = a.tracerFlags(cmd, &output)
	return cmd
}

// printTrace writes tr as a tree, children under their parent by start.
func printTrace(w io.Writer, tr api.Trace) {
	if len(tr.Spans) == 0 {
		return
	}
	ids := map[string]bool{}
	t0 := tr.Spans[0].Start
	for _, s := range tr.Spans {
		ids[s.SpanID] = true
		if s.Start.Before(t0) {
			t0 = s.Start
		}
	}
	kids := map[string][]api.Span{}
	for _, s := range tr.Spans {
		p := s.ParentSpanID
		if !ids[p] {
			p = "" // a root, or an orphan whose parent has not arrived
		}
		kids[p] = append(kids[p], s)
	}
	fmt.Fprintf(w, "trace %s  %d spans\n", tr.TraceID, len(tr.Spans))
	var walk func(parent, indent string)
	walk = func(parent, indent string) {
		ks := kids[parent]
		sort.SliceStable(ks, func(i, j int) bool { return ks[i].Start.Before(ks[j].Start) })
		for i, s := range ks {
			branch, next := "├─ ", "│  "
			if i == len(ks)-1 {
				branch, next = "└─ ", "   "
			}
			fn := ""
			if s.Function != "" {
				fn = "  " + s.Deployment + "/" + s.Function
			}
			status := ""
			if s.Status == api.StatusError {
				status = "  ERROR"
				if s.StatusMessage != "" {
					status += ": " + s.StatusMessage
				}
			}
			fmt.Fprintf(w, "%s%s%s  [%s]%s  +%s  %s%s\n", indent, branch, s.Name, s.Service, fn,
				fmtMs(float64(s.Start.Sub(t0))/float64(time.Millisecond)), fmtMs(s.DurationMs), status)
			walk(s.SpanID, indent+next)
		}
	}
	walk("", "")
}

func fmtMs(ms float64) string {
	switch {
	case ms >= 1000:
		return fmt.Sprintf("%.2fs", ms/1000)
	case ms >= 10:
		return fmt.Sprintf("%.0fms", ms)
	default:
		return fmt.Sprintf("%.2fms", ms)
	}
}

func (a *app) lineageCmd() *cobra.Command {
	var output string
	var c *tracerClient
	cmd := &cobra.Command{
		Use:   "lineage STREAM ID",
		Short: "Show where an event came from and everything it caused",
		Long: `Show an event's lineage (from the tracer): its ancestors following
causationid up to the first event of the chain, the event, and every event
it caused on any stream, as a tree, each with its stream, partition,
offset, type and the function that wrote it. Dead letters of an event are
shown under it with their error.`,
		Example: `  butter lineage orders 0f8e2c9a-...
  butter lineage orders 0f8e2c9a-... -o json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			var l api.Lineage
			raw, err := c.get(cmd.Context(), api.PathLineage, url.Values{"stream": {args[0]}, "id": {args[1]}}, &l)
			if err != nil {
				return err
			}
			if output == "json" {
				_, err := fmt.Fprintln(a.io.Out, strings.TrimSpace(string(raw)))
				return err
			}
			printLineage(a.io.Out, l)
			return nil
		},
	}
	c = a.tracerFlags(cmd, &output)
	return cmd
}

func eventLine(e api.Event) string {
	s := fmt.Sprintf("%s  %s  %s/%d@%d", e.ID, e.Type, e.Stream, e.Partition, e.Offset)
	if e.Function != "" {
		s += "  by " + e.Function
	}
	s += "  " + e.Time.Format(time.RFC3339Nano)
	if e.DeadLetter != "" {
		s += "  DEAD LETTER of " + e.DeadLetterFunction + ": " + e.DeadLetter
	}
	return s
}

// printLineage writes the ancestors root first, then the event (marked
// *) and its descendants as a tree.
func printLineage(w io.Writer, l api.Lineage) {
	indent := ""
	for i := len(l.Ancestors) - 1; i >= 0; i-- {
		fmt.Fprintf(w, "%s%s\n", indent, eventLine(l.Ancestors[i]))
		indent += "  "
	}
	fmt.Fprintf(w, "%s* %s\n", indent, eventLine(l.Event))
	// A batch's result goes under whichever event of its batch is here.
	known := map[string]bool{l.Event.ID: true}
	for _, d := range l.Descendants {
		known[d.ID] = true
	}
	kids := map[string][]api.Event{}
	for _, d := range l.Descendants {
		p := d.CausationID
		switch {
		case d.DeadLetter != "" && d.ID == l.Event.ID:
			p = l.Event.ID
		case !known[p]:
			p = l.Event.ID
			for _, id := range d.BatchIDs {
				if known[id] {
					p = id
					break
				}
			}
		}
		kids[p] = append(kids[p], d)
	}
	seen := map[string]bool{}
	var walk func(id, indent string)
	walk = func(id, indent string) {
		if seen[id] {
			return
		}
		seen[id] = true
		for _, k := range kids[id] {
			fmt.Fprintf(w, "%s└─ %s\n", indent, eventLine(k))
			if k.ID != id {
				walk(k.ID, indent+"   ")
			}
		}
	}
	walk(l.Event.ID, indent+"  ")
}

func (a *app) eventsCmd() *cobra.Command {
	var (
		output                                string
		typ, resource, actor, chain, sinceArg string
		limit                                 int
		followFlag                            bool
		c                                     *tracerClient
	)
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Show platform events: deployments, scaling, crashes, auth failures",
		Long: `Show the platform's audit trail (_butter.events, from the tracer), newest
last: each event's time, type, resource, actor and, for failures, the
error. --type deployment.create also shows its .completed and .failed
outcomes. -f keeps printing new events as they happen.`,
		Example: `  butter events
  butter events --type deployment.create --resource deployment/orders
  butter events -f -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			q := url.Values{"limit": {fmt.Sprint(limit)}}
			for k, v := range map[string]string{"type": typ, "resource": resource, "actor": actor, "correlationid": chain, "since": sinceArg} {
				if v != "" {
					q.Set(k, v)
				}
			}
			print := func(e api.PlatformEvent, raw []byte) error {
				if output == "json" {
					if raw == nil {
						raw, _ = json.Marshal(e)
					}
					_, err := fmt.Fprintln(a.io.Out, string(raw))
					return err
				}
				line := fmt.Sprintf("%s  %-32s %-28s %s", e.Time.Local().Format("2006-01-02 15:04:05.000"), e.Type, e.Resource, e.Actor)
				var data struct {
					Error string `json:"error"`
				}
				if json.Unmarshal(e.Data, &data) == nil && data.Error != "" {
					line += "  error: " + data.Error
				}
				_, err := fmt.Fprintln(a.io.Out, line)
				return err
			}
			if followFlag {
				return c.follow(cmd.Context(), api.PathPlatformEvents, q, func(b []byte) error {
					var e api.PlatformEvent
					if err := json.Unmarshal(b, &e); err != nil {
						return fmt.Errorf("decode followed event: %w", err)
					}
					return print(e, b)
				})
			}
			var page api.Page[api.PlatformEvent]
			if _, err := c.get(cmd.Context(), api.PathPlatformEvents, q, &page); err != nil {
				return err
			}
			for i := len(page.Items) - 1; i >= 0; i-- {
				if err := print(page.Items[i], nil); err != nil {
					return err
				}
			}
			return nil
		},
	}
	c = a.tracerFlags(cmd, &output)
	cmd.Flags().StringVar(&typ, "type", "", "only events of this `type` and its outcomes (deployment.create)")
	cmd.Flags().StringVar(&resource, "resource", "", "only events about this `resource` (deployment/NAME)")
	cmd.Flags().StringVar(&actor, "actor", "", "only events caused by this `actor`")
	cmd.Flags().StringVar(&chain, "correlationid", "", "only events of the chain started by this event `id`")
	cmd.Flags().StringVar(&sinceArg, "since", "", "only events since this RFC 3339 time or `duration` ago (15m)")
	cmd.Flags().IntVar(&limit, "limit", api.DefaultLimit, "at most this many past events")
	cmd.Flags().BoolVarP(&followFlag, "follow", "f", false, "keep printing new events")
	return cmd
}
