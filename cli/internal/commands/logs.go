package commands

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
)

func (a *app) logsCmd() *cobra.Command {
	var (
		follow bool
		since  time.Duration
		output string
	)
	cmd := &cobra.Command{
		Use:   "logs DEPLOYMENT[/FUNCTION]",
		Short: "Print a deployment's function logs",
		Long: `Print the logs of a deployment's functions (context.log, stdout, stderr) from
_butter.logs: the last --since (default 1h), then, with -f, new ones as they
come.`,
		Example: `  butter logs enrich
  butter logs orders/on-order -f
  butter logs orders -o json | jq -r .message`,
		Args: cobra.ExactArgs(1),
	}
	c := a.deployerFlags(cmd)
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
		topic := a.kafka.Namespace().Topic(topics.Logs)
		cl, err := a.client(kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AfterMilli(time.Now().Add(-since).UnixMilli())))
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		// Without -f, stop at the end offsets of now.
		ends, err := endOffsets(ctx, kadm.NewClient(cl), topic, time.Now().Add(-since))
		if err != nil {
			return err
		}
		for follow || !ends.reached() {
			fs := cl.PollRecords(ctx, 1000)
			if ctx.Err() != nil {
				return nil
			}
			if err := fs.Err0(); err != nil {
				return fmt.Errorf("read %s: %w", topic, err)
			}
			fs.EachRecord(func(r *kgo.Record) {
				ends.saw(r)
				l, err := obs.ParseLog(r)
				if errors.Is(err, obs.ErrNotObs) || err != nil || l.Deployment != dep || (fn != "" && l.Function != fn) {
					return
				}
				printed++
				if output != "text" {
					_ = a.printLine(output, l)
					return
				}
				fmt.Fprintf(a.io.Out, "%s %s/%s %s %s", l.Time.Format(time.RFC3339Nano), l.Function, l.Instance, strings.ToUpper(string(l.Level)), l.Message)
				if l.EventID != "" {
					fmt.Fprintf(a.io.Out, " event=%s", l.EventID)
				}
				fmt.Fprintln(a.io.Out)
			})
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
