package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
)

func (a *app) streamCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stream",
		Short: "Create, list, read and delete streams",
	}
	cmd.AddCommand(a.streamCreateCmd(), a.streamLsCmd(), a.streamTailCmd(), a.streamRmCmd())
	return cmd
}

func (a *app) streamCreateCmd() *cobra.Command {
	var (
		partitions int32
		retention  string
		compact    bool
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a stream (a Kafka topic)",
		Example: `  butter stream create orders
  butter stream create audit --retention -1
  butter stream create prices --partitions 12 --retention 36h --compact`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := topics.ValidateStreamName(name); err != nil {
				return err
			}
			if topics.IsInternal(name) {
				return fmt.Errorf("stream %q: names starting %q belong to the platform", name, topics.InternalPrefix)
			}
			if partitions < 1 {
				return fmt.Errorf("--partitions %d: want 1 or more", partitions)
			}
			spec := topics.Spec{Name: name, Partitions: partitions, Compact: compact}
			var err error
			if spec.Retention, err = topics.ParseRetention(retention); err != nil {
				return fmt.Errorf("--retention: %w", err)
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			topic := a.kafka.Namespace().Topic(name)
			if exists, err := topicExists(cmd.Context(), kadm.NewClient(cl), topic); err != nil {
				return err
			} else if exists {
				return fmt.Errorf("stream %q already exists", name)
			}
			if err := kit.EnsureTopics(cmd.Context(), cl, kit.InNamespace(a.kafka.Namespace(), spec)...); err != nil {
				return err
			}
			fmt.Fprintf(a.io.Out, "created stream %s (%s, retention %s%s)\n", name, plural(int(partitions), "partition"), retention, map[bool]string{true: ", compacted"}[compact])
			return nil
		},
	}
	cmd.Flags().Int32Var(&partitions, "partitions", topics.DefaultPartitions, "partition count: the most consumers one function can spread over")
	cmd.Flags().StringVar(&retention, "retention", "7d", "how long events are kept: a duration (36h, 7d) or -1 for forever")
	cmd.Flags().BoolVar(&compact, "compact", false, "keep only the latest event per key")
	return cmd
}

// streamInfo is one stream as stream ls shows it.
type streamInfo struct {
	Name         string  `json:"name"`
	Partitions   int     `json:"partitions"`
	Events       int64   `json:"events"`
	StartOffsets []int64 `json:"startOffsets"`
	EndOffsets   []int64 `json:"endOffsets"`
}

func (a *app) streamLsCmd() *cobra.Command {
	var (
		all    bool
		output string
	)
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List streams with their partitions and start/end offsets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			adm, err := a.admin()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			tds, err := adm.ListTopics(ctx)
			if err != nil {
				return fmt.Errorf("list topics: %w", err)
			}
			starts, err := adm.ListStartOffsets(ctx, tds.Names()...)
			if err != nil {
				return fmt.Errorf("list start offsets: %w", err)
			}
			ends, err := adm.ListEndOffsets(ctx, tds.Names()...)
			if err != nil {
				return fmt.Errorf("list end offsets: %w", err)
			}
			list := []streamInfo{}
			for _, topic := range tds.Names() {
				stream, ok := a.kafka.Namespace().Stream(topic)
				if !ok || (topics.IsInternal(stream) && !all) {
					continue
				}
				info := streamInfo{Name: stream, StartOffsets: []int64{}, EndOffsets: []int64{}}
				for _, p := range tds[topic].Partitions.Numbers() {
					s, _ := starts.Lookup(topic, p)
					e, _ := ends.Lookup(topic, p)
					info.StartOffsets, info.EndOffsets = append(info.StartOffsets, s.Offset), append(info.EndOffsets, e.Offset)
					info.Events += e.Offset - s.Offset
				}
				info.Partitions = len(info.StartOffsets)
				list = append(list, info)
			}
			return a.printData(output, list, func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "STREAM\tPARTITIONS\tEVENTS\tSTART OFFSETS\tEND OFFSETS")
				for _, s := range list {
					fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", s.Name, s.Partitions, s.Events, joinInts(s.StartOffsets), joinInts(s.EndOffsets))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "include the platform's internal _butter.* streams")
	outputFlag(cmd, &output)
	return cmd
}

func joinInts(ns []int64) string {
	s := ""
	for i, n := range ns {
		if i > 0 {
			s += ","
		}
		s += strconv.FormatInt(n, 10)
	}
	return s
}

func (a *app) streamTailCmd() *cobra.Command {
	var (
		from   string
		count  int
		output string
	)
	cmd := &cobra.Command{
		Use:   "tail NAME",
		Short: "Print a stream's events, then follow it",
		Long: `Print a stream's events from a position (first, latest, an offset in every
partition, or an RFC 3339 time) and keep following until Ctrl-C, or until
-n events were printed.`,
		Example: `  butter stream tail orders --from first -n 10
  butter stream tail orders --from 2026-11-23T10:00:00Z -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			start, err := parseFrom(from)
			if err != nil {
				return err
			}
			if err := checkFormat(output); err != nil {
				return err
			}
			stream := args[0]
			topic := a.kafka.Namespace().Topic(stream)
			cl, err := a.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(start))
			if err != nil {
				return err
			}
			if err := mustExist(cmd.Context(), kadm.NewClient(cl), stream, topic); err != nil {
				return err
			}
			return a.tail(cmd.Context(), cl, stream, count, output)
		},
	}
	cmd.Flags().StringVar(&from, "from", "latest", "where to start: first, latest, an offset, or an RFC 3339 time")
	cmd.Flags().IntVarP(&count, "count", "n", 0, "stop after this many events (0: follow until Ctrl-C)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, json (one event per line) or yaml (one document per event)")
	return cmd
}

// parseFrom reads a start position. A number is an offset in every
// partition, as in a descriptor's stream binding.
func parseFrom(s string) (kgo.Offset, error) {
	switch s {
	case "first":
		return kgo.NewOffset().AtStart(), nil
	case "latest":
		return kgo.NewOffset().AtEnd(), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
		return kgo.NewOffset().At(n), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return kgo.NewOffset().AfterMilli(t.UnixMilli()), nil
	}
	return kgo.Offset{}, fmt.Errorf("--from %q: want first, latest, an offset (0 or more) or an RFC 3339 time", s)
}

func topicExists(ctx context.Context, adm *kadm.Client, topic string) (bool, error) {
	tds, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return false, fmt.Errorf("look up topic %s: %w", topic, err)
	}
	return tds.Has(topic), nil
}

func mustExist(ctx context.Context, adm *kadm.Client, stream, topic string) error {
	exists, err := topicExists(ctx, adm, topic)
	if err == nil && !exists {
		err = fmt.Errorf("stream %q does not exist (create it with: butter stream create %s)", stream, stream)
	}
	return err
}

// tailLine is the -o json form of one event.
type tailLine struct {
	Stream    string          `json:"stream"`
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
	Event     json.RawMessage `json:"event"`
}

func (a *app) tail(ctx context.Context, cl *kgo.Client, stream string, count int, output string) error {
	printed := 0
	for count == 0 || printed < count {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil // Ctrl-C ends a follow normally
		}
		if err := fs.Err0(); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("read %s: %w", stream, err)
		}
		recs := fs.Records()
		// Partitions are read concurrently; print each poll in offset order
		// per partition, partitions in number order, for readable output.
		sort.SliceStable(recs, func(i, j int) bool { return recs[i].Partition < recs[j].Partition })
		for _, r := range recs {
			if count > 0 && printed == count {
				break
			}
			d := envelope.FromRecord(r)
			if err := a.printEvent(stream, d, output); err != nil {
				return err
			}
			printed++
		}
	}
	return nil
}

func (a *app) printEvent(stream string, d envelope.Delivery, output string) error {
	if output == "json" || output == "yaml" {
		ev, err := json.Marshal(d.Event)
		if err != nil {
			return fmt.Errorf("encode event %s: %w", d.Event.ID(), err)
		}
		return a.printLine(output, tailLine{Stream: stream, Partition: d.Partition, Offset: d.Offset, Event: ev})
	}
	_, err := fmt.Fprintf(a.io.Out, "%d/%d\t%s\t%s\t%s\n", d.Partition, d.Offset, d.Event.ID(), d.Event.Type(), d.Event.Data())
	return err
}

func (a *app) streamRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME",
		Short: "Delete a stream (its Kafka topic) and every event in it",
		Long: `Delete a stream and every event in it. The platform's _butter.* streams
cannot be deleted. Functions bound to the stream stop receiving events; a
deploy that names it creates it again, empty.`,
		Example: `  butter stream rm scratch`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if topics.IsInternal(name) {
				return fmt.Errorf("stream %q belongs to the platform and cannot be deleted", name)
			}
			if err := topics.ValidateStreamName(name); err != nil {
				return err
			}
			adm, err := a.admin()
			if err != nil {
				return err
			}
			topic := a.kafka.Namespace().Topic(name)
			exists, err := topicExists(cmd.Context(), adm, topic)
			if err != nil {
				return err
			}
			if !exists {
				return fmt.Errorf("stream %q does not exist (butter stream ls lists them)", name)
			}
			res, err := adm.DeleteTopic(cmd.Context(), topic)
			if err == nil {
				err = res.Err
			}
			if err != nil {
				return fmt.Errorf("delete stream %s: %w", name, err)
			}
			fmt.Fprintf(a.io.Out, "deleted stream %s\n", name)
			return nil
		},
	}
}
