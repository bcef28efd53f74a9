// Command bench-noop is the no-op function the bench runs on the go
// platform: it answers every invocation with {"n": events handed over}, so
// the bench can count handled events from the results whether or not fnbox
// batches them.
//
//	bench-noop handle   serve one event per call (delivery.batch 1)
//	bench-noop batch    serve batches (delivery.batch > 1)
package main

import (
	"context"
	"fmt"
	"os"

	butter "github.com/buttercompass/butter/sdk/go"
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
	default:
		fmt.Fprintln(os.Stderr, "usage: bench-noop handle|batch")
		os.Exit(2)
	}
}

// count is the result of every invocation.
type count struct {
	N int `json:"n"`
}
