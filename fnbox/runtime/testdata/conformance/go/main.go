// Command handler is the conformance fixture for the go platform:
// `handler <case>` serves one suite case (see runtimetest.Conformance) with the
// Go SDK.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	butter "github.com/buttercompass/butter/sdk/go"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: handler <case>")
		os.Exit(2)
	}
	if os.Args[1] == "batch" {
		butter.HandleBatch(func(ctx context.Context, events []butter.Event) (any, error) {
			items := make([]json.RawMessage, len(events))
			for i, e := range events {
				items[i] = e.Data
			}
			return map[string]any{"items": items}, nil
		})
		return
	}
	fn, ok := cases[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown case %q\n", os.Args[1])
		os.Exit(2)
	}
	butter.Handle(fn)
}

var cases = map[string]butter.Func{
	"echo": func(ctx context.Context, e butter.Event) (any, error) {
		return map[string]any{"echo": json.RawMessage(e.Data)}, nil
	},
	"text": func(ctx context.Context, e butter.Event) (any, error) {
		var d struct{ Name string }
		if err := e.DecodeData(&d); err != nil {
			return nil, butter.Permanent(err)
		}
		return "hello " + d.Name, nil
	},
	"nothing": func(ctx context.Context, e butter.Event) (any, error) {
		return nil, nil
	},
	"trace": func(ctx context.Context, e butter.Event) (any, error) {
		tp, _ := butter.TraceParent(ctx)
		return map[string]any{"traceparent": tp}, nil
	},
	"emit": func(ctx context.Context, e butter.Event) (any, error) {
		err := butter.Emit(ctx, "audit", map[string]any{"seen": json.RawMessage(e.Data)},
			butter.EmitOptions{Type: "com.example.audit", Subject: "s1", Key: "k1"})
		if err != nil {
			return nil, err
		}
		return map[string]any{"emitted": true}, nil
	},
	"emit-undeclared": func(ctx context.Context, e butter.Event) (any, error) {
		err := butter.Emit(ctx, "secret", map[string]any{"leak": true}, butter.EmitOptions{})
		if errors.Is(err, butter.ErrUndeclaredStream) {
			return map[string]any{"refused": true, "error": err.Error()}, nil
		}
		if err != nil {
			return nil, err
		}
		return map[string]any{"refused": false}, nil
	},
	"request": func(ctx context.Context, e butter.Event) (any, error) {
		reply, err := butter.Request(ctx, "questions", json.RawMessage(e.Data), butter.EmitOptions{})
		if err != nil {
			return nil, err
		}
		return map[string]any{"answer": json.RawMessage(reply)}, nil
	},
	"fail": func(ctx context.Context, e butter.Event) (any, error) {
		var d struct{ Why string }
		if err := e.DecodeData(&d); err != nil {
			return nil, butter.Permanent(err)
		}
		return nil, fmt.Errorf("boom: %s", d.Why)
	},
	"slow": func(ctx context.Context, e butter.Event) (any, error) {
		var d struct{ SleepMs int }
		if err := e.DecodeData(&d); err != nil {
			return nil, butter.Permanent(err)
		}
		deadline, _ := butter.Deadline(ctx)
		res := map[string]any{
			"remainingMs": time.Until(deadline).Milliseconds(),
			"deadline":    deadline.Format(time.RFC3339Nano),
		}
		select {
		case <-time.After(time.Duration(d.SleepMs) * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return res, nil
	},
	"log": func(ctx context.Context, e butter.Event) (any, error) {
		var d struct{ Tag string }
		if err := e.DecodeData(&d); err != nil {
			return nil, butter.Permanent(err)
		}
		butter.Log(ctx, "log-line %s", d.Tag)
		fmt.Println("stdout-line", d.Tag)
		fmt.Fprintln(os.Stderr, "stderr-line", d.Tag)
		return nil, nil
	},
}
