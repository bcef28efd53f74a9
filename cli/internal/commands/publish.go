package commands

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/envelope"
)

// publishOpts are the attributes butter publish gives each event.
type publishOpts struct {
	typ, source, subject, key, contentType string
}

func (a *app) publishCmd() *cobra.Command {
	o := publishOpts{}
	cmd := &cobra.Command{
		Use:   "publish STREAM DATA|-",
		Short: "Write CloudEvents to a stream",
		Long: `Write one CloudEvent with DATA as its data, or with - one event per line
of standard input (JSON lines), and report how many the broker
acknowledged. Events are written in the Kafka binary content mode: the
attributes are ce_* headers, the data is the record value.`,
		Example: `  butter publish orders '{"id":1}' --type com.example.order.created
  cat orders.jsonl | butter publish orders - --type com.example.order.created`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			stream, data := args[0], args[1]
			topic := a.kafka.Namespace().Topic(stream)
			cl, err := a.client(kgo.DefaultProduceTopic(topic))
			if err != nil {
				return err
			}
			if err := mustExist(cmd.Context(), kadm.NewClient(cl), stream, topic); err != nil {
				return err
			}
			if data != "-" {
				e, err := o.event([]byte(data))
				if err != nil {
					return err
				}
				r, err := envelope.ToRecord(topic, e)
				if err != nil {
					return err
				}
				if err := cl.ProduceSync(cmd.Context(), r).FirstErr(); err != nil {
					return fmt.Errorf("publish to %s: %w", stream, err)
				}
				fmt.Fprintf(a.io.Out, "published %s to %s\n", e.ID(), stream)
				return nil
			}
			return a.publishLines(cmd, cl, topic, stream, o)
		},
	}
	cmd.Flags().StringVar(&o.typ, "type", "butter.cli.event", "event type")
	cmd.Flags().StringVar(&o.source, "source", "butter://cli", "event source")
	cmd.Flags().StringVar(&o.subject, "subject", "", "event subject (the record key when --key is not set)")
	cmd.Flags().StringVar(&o.key, "key", "", "partition key: events with one key keep their order")
	cmd.Flags().StringVar(&o.contentType, "content-type", "", "data content type (default: application/json when DATA is JSON, else text/plain)")
	return cmd
}

func (o publishOpts) event(data []byte) (event.Event, error) {
	e := envelope.New(o.source, o.typ)
	if o.subject != "" {
		e.SetSubject(o.subject)
	}
	if o.key != "" {
		e.SetExtension(envelope.ExtPartitionKey, o.key)
	}
	ct := o.contentType
	if ct == "" {
		ct = "text/plain; charset=utf-8"
		if json.Valid(data) {
			ct = "application/json"
		}
	}
	e.SetDataContentType(ct)
	e.DataEncoded = data
	return e, e.Validate()
}

// publishLines writes one event per JSON line of stdin. A line that is not
// JSON is reported with its number and skipped; the others are still
// written, and the command fails at the end so scripts notice.
func (a *app) publishLines(cmd *cobra.Command, cl *kgo.Client, topic, stream string, o publishOpts) error {
	if o.contentType == "" {
		o.contentType = "application/json"
	}
	var acked, failed atomic.Int64
	var produceErr atomic.Value
	rejected := 0
	sc := bufio.NewScanner(a.io.In)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for line := 1; sc.Scan(); line++ {
		data := bytes.TrimSpace(sc.Bytes())
		if len(data) == 0 {
			continue
		}
		if !json.Valid(data) {
			fmt.Fprintf(a.io.Err, "stdin:%d: not a JSON value, skipped\n", line)
			rejected++
			continue
		}
		e, err := o.event(bytes.Clone(data))
		if err == nil {
			var r *kgo.Record
			if r, err = envelope.ToRecord(topic, e); err == nil {
				cl.Produce(cmd.Context(), r, func(_ *kgo.Record, err error) {
					if err != nil {
						failed.Add(1)
						produceErr.CompareAndSwap(nil, err)
						return
					}
					acked.Add(1)
				})
				continue
			}
		}
		fmt.Fprintf(a.io.Err, "stdin:%d: %v, skipped\n", line, err)
		rejected++
	}
	readErr := sc.Err()
	flushErr := cl.Flush(cmd.Context())
	fmt.Fprintf(a.io.Out, "%s acknowledged on %s, %d rejected, %d failed\n", plural(int(acked.Load()), "event"), stream, rejected, failed.Load())
	var errs []error
	if readErr != nil && !errors.Is(readErr, io.EOF) {
		errs = append(errs, fmt.Errorf("read stdin: %w", readErr))
	}
	if flushErr != nil {
		errs = append(errs, fmt.Errorf("flush: %w", flushErr))
	}
	if err, _ := produceErr.Load().(error); err != nil {
		errs = append(errs, fmt.Errorf("publish to %s: %w", stream, err))
	}
	if rejected > 0 {
		errs = append(errs, fmt.Errorf("%s rejected", plural(rejected, "line")))
	}
	return errors.Join(errs...)
}
