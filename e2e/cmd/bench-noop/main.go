// Command bench-noop is the no-op function the bench runs on the go and
// exec platforms: it answers every invocation with {"n": events handed
// over}, so the bench can count handled events from the results whether or
// not fnbox batches them.
//
//	bench-noop handle   serve one event per call with the Go SDK (go, batch 1)
//	bench-noop batch    serve batches with the Go SDK (go, delivery.batch > 1)
//	bench-noop exec     read one event or a batch on stdin, answer on stdout (exec)
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	butter "github.com/buttercompass/butter/fnbox/sdk"
)

func main() {
	mode := ""
	if len(os.Args) == 2 {
		mode = os.Args[1]
	}
	switch mode {
	case "handle":
		butter.Handle(func(context.Context, butter.Event) (any, error) { return count{N: 1}, nil })
	case "batch":
		butter.HandleBatch(func(_ context.Context, events []butter.Event) (any, error) {
			return count{N: len(events)}, nil
		})
	case "exec":
		if err := execOnce(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "bench-noop:", err)
			os.Exit(1)
		}
	default:
		fmt.Fprintln(os.Stderr, "usage: bench-noop handle|batch|exec")
		os.Exit(2)
	}
}

// count is the result of every invocation.
type count struct {
	N int `json:"n"`
}

// execOnce reads what the exec platform writes on stdin, an event (a JSON
// object) or a batch (an array of them), and writes the count.
func execOnce(in io.Reader, out io.Writer) error {
	data, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("read event: %w", err)
	}
	n := 1
	var batch []json.RawMessage
	if json.Unmarshal(data, &batch) == nil {
		n = len(batch)
	}
	return json.NewEncoder(out).Encode(count{N: n})
}
