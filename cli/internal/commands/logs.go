package commands

import (
	"context"
	"errors"
	"fmt"
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
	)
	cmd := &cobra.Command{
		Use:   "logs DEPLOYMENT[/FUNCTION]",
		Short: "Print a deployment's function logs",
		Long: `Print the logs of a deployment's functions (context.log, stdout, stderr) from
_butter.logs: the last --since (default 1h), then, with -f, new ones as they
come.`,
		Example: `  butter logs enrich
  butter logs orders/on-order -f`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dep, fn, _ := strings.Cut(args[0], "/")
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
					fmt.Fprintf(a.io.Out, "%s %s/%s %s %s", l.Time.Format(time.RFC3339Nano), l.Function, l.Instance, strings.ToUpper(string(l.Level)), l.Message)
					if l.EventID != "" {
						fmt.Fprintf(a.io.Out, " event=%s", l.EventID)
					}
					fmt.Fprintln(a.io.Out)
				})
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new logs until Ctrl-C")
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
