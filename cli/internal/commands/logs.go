package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
	"github.com/buttercompass/butter/tracer/api"
)

func (a *app) logsCmd() *cobra.Command {
	var (
		follow bool
		since  time.Duration
		output string
		tc     *tracerClient
	)
	cmd := &cobra.Command{
		Use:   "logs DEPLOYMENT[/FUNCTION]",
		Short: "Print a deployment's function logs",
		Long: `Print the logs of a deployment's functions (context.log, stdout, stderr, and
fnbox's lines about failed, retried and dead-lettered invocations, each with
its event id): the last --since (default 1h), then, with -f, new ones as
they come.

The lines come from the tracer (--tracer) when it answers, else straight
from _butter.logs (a note on stderr says so); the output is the same. With
-f through the tracer, the past part is at most its latest 1000 lines.`,
		Example: `  butter logs enrich
  butter logs orders/on-order -f
  butter logs orders -o json | jq -r .message`,
		Args: cobra.ExactArgs(1),
	}
	c := a.deployerFlags(cmd)
	tc = &tracerClient{app: a, http: &http.Client{}}
	cmd.Flags().StringVar(&tc.base, "tracer", "", "tracer API `URL` or host:port to read the logs from (env BUTTER_TRACER; default from the client context, else http://127.0.0.1:8082); when it does not answer, logs are read from Kafka")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkFormat(output); err != nil {
			return err
		}
		dep, fn, _ := strings.Cut(args[0], "/")
		// A deployment the deployer does not know may still have logs
		// (it was removed); without any, the name is an error.
		known, err := a.checkDeployment(cmd.Context(), c, dep, fn)
		if err != nil {
			return err
		}
		unknownDep := fmt.Errorf("no deployment named %s, and no logs of one in the last %s (butter ls lists deployments)", dep, since)
		if !known && follow {
			return unknownDep
		}
		printed := 0
		print := func(l obs.Log) error {
			printed++
			return a.printLog(output, l)
		}
		q := logQuery{deployment: dep, function: fn, since: time.Now().Add(-since), follow: follow}
		err = tc.logs(cmd.Context(), q, print)
		if cmd.Context().Err() != nil {
			return nil // Ctrl-C, -f's way out
		}
		if unreachable(err) {
			// The tracer is an index of _butter.logs: without it the
			// topic itself has the same lines, only slower to filter.
			fmt.Fprintf(a.io.Err, "note: the tracer does not answer (%v); reading %s from Kafka\n", err, topics.Logs)
			err = a.kafkaLogs(cmd.Context(), q, print)
		}
		if err != nil {
			return err
		}
		if !known && printed == 0 {
			return unknownDep
		}
		return nil
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new logs until Ctrl-C")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, json (one log line per line) or yaml (one document per line)")
	cmd.Flags().DurationVar(&since, "since", time.Hour, "how far back to start")
	return cmd
}

// logQuery is what butter logs asks for, from the tracer or from Kafka.
type logQuery struct {
	deployment, function string
	since                time.Time
	follow               bool
}

func (q logQuery) matches(l obs.Log) bool {
	return l.Deployment == q.deployment && (q.function == "" || l.Function == q.function) && !l.Time.Before(q.since)
}

// printLog writes one line of butter logs; the tracer and Kafka paths both
// end here, so their output is the same.
func (a *app) printLog(output string, l obs.Log) error {
	// The tracer answers in UTC, a record holds its writer's zone: show
	// both in the reader's.
	l.Time = l.Time.Local()
	if output != "text" {
		return a.printLine(output, l)
	}
	line := fmt.Sprintf("%s %s/%s %s %s", l.Time.Format(time.RFC3339Nano), l.Function, l.Instance, strings.ToUpper(l.Level), l.Message)
	if l.EventID != "" {
		line += " event=" + l.EventID
	}
	_, err := fmt.Fprintln(a.io.Out, line)
	return err
}

// unreachable reports whether err is the tracer not answering at all (no
// listener, no route), as opposed to an answer that is an error.
func unreachable(err error) bool {
	var ue *url.Error
	return errors.As(err, &ue)
}

// fromAPI is the tracer's copy of a log line as the record it indexed.
func fromAPI(l api.Log) obs.Log {
	return obs.Log{Deployment: l.Deployment, Function: l.Function, Instance: l.Instance, EventID: l.EventID,
		TraceID: l.TraceID, Level: l.Level, Message: l.Message, Origin: l.Origin, Time: l.Time}
}

// logs prints q's lines from the tracer's GET /v1/logs: every page since
// q.since oldest first, or with q.follow its server-sent events.
func (c *tracerClient) logs(ctx context.Context, q logQuery, each func(obs.Log) error) error {
	v := url.Values{"deployment": {q.deployment}, "since": {q.since.UTC().Format(time.RFC3339Nano)},
		"limit": {strconv.Itoa(api.MaxLimit)}}
	if q.function != "" {
		v.Set("function", q.function)
	}
	if q.follow {
		return c.follow(ctx, api.PathLogs, v, func(b []byte) error {
			var l api.Log
			if err := json.Unmarshal(b, &l); err != nil {
				return fmt.Errorf("decode followed log line: %w", err)
			}
			return each(fromAPI(l))
		})
	}
	// Pages come newest first; print oldest first, as Kafka would.
	var all []api.Log
	for {
		var page api.Page[api.Log]
		if _, err := c.get(ctx, api.PathLogs, v, &page); err != nil {
			return err
		}
		all = append(all, page.Items...)
		if page.Next == "" {
			break
		}
		v.Set("cursor", page.Next)
	}
	for i := len(all) - 1; i >= 0; i-- {
		if err := each(fromAPI(all[i])); err != nil {
			return err
		}
	}
	return nil
}

// kafkaLogs prints q's lines reading _butter.logs itself: from q.since to
// the end offsets of now, or with q.follow until ctx ends.
func (a *app) kafkaLogs(ctx context.Context, q logQuery, each func(obs.Log) error) error {
	topic := a.kafka.Namespace().Topic(topics.Logs)
	cl, err := a.client(kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AfterMilli(q.since.UnixMilli())))
	if err != nil {
		return err
	}
	// Without -f, stop at the end offsets of now.
	ends, err := endOffsets(ctx, kadm.NewClient(cl), topic, q.since)
	if err != nil {
		return err
	}
	for q.follow || !ends.reached() {
		fs := cl.PollRecords(ctx, 1000)
		if ctx.Err() != nil {
			return nil
		}
		if err := fs.Err0(); err != nil {
			return fmt.Errorf("read %s: %w", topic, err)
		}
		var perr error
		fs.EachRecord(func(r *kgo.Record) {
			ends.saw(r)
			l, err := obs.ParseLog(r)
			if err != nil || perr != nil || !q.matches(l) {
				return
			}
			perr = each(l)
		})
		if perr != nil {
			return perr
		}
	}
	return nil
}

// progress tells when a reader has caught up with the end offsets a topic
// had when it started.
type progress map[int32]int64 // partition → next offset still to read, up to the end

func endOffsets(ctx context.Context, adm *kadm.Client, topic string, since time.Time) (progress, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	starts, err := adm.ListOffsetsAfterMilli(ctx, since.UnixMilli(), topic)
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	p := progress{}
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := starts.Lookup(topic, o.Partition); !ok || s.Offset < o.Offset {
			p[o.Partition] = o.Offset
		}
	})
	return p, nil
}

func (p progress) saw(r *kgo.Record) {
	if end, ok := p[r.Partition]; ok && r.Offset+1 >= end {
		delete(p, r.Partition)
	}
}

func (p progress) reached() bool { return len(p) == 0 }

// checkDeployment tells whether the deployer knows a deployment, and fails
// for a function it does not have, so a typo is an error rather than
// silence. A deployer that cannot be reached is only a warning: logs come
// from Kafka.
func (a *app) checkDeployment(ctx context.Context, c *apiClient, dep, fn string) (bool, error) {
	var st deploymentStatus
	_, err := c.do(ctx, "GET", "/v1/deployments/"+dep, "", nil, &st)
	var ae *apiError
	switch {
	case errors.As(err, &ae) && ae.status == http.StatusNotFound:
		return false, nil
	case err != nil:
		fmt.Fprintf(a.io.Err, "warning: cannot check that deployment %s exists: %v\n", dep, err)
		return true, nil
	}
	if fn == "" {
		return true, nil
	}
	var names []string
	for _, f := range st.Functions {
		if f.Name == fn {
			return true, nil
		}
		names = append(names, f.Name)
	}
	return true, fmt.Errorf("deployment %s has no function %s (it has %s)", dep, fn, strings.Join(names, ", "))
}
