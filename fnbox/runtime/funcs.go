package runtime

import (
	"context"
	"fmt"
)

// Handler is a function written in Go and linked into the process: the
// in-process platform, used by embedders and by fnbox's own tests of the
// delivery machinery.
type Handler func(ctx context.Context, inv Invocation, host Host) (Result, error)

// Funcs is a Runtime made of Go handlers, keyed by function name.
type Funcs map[string]Handler

var _ Runtime = Funcs(nil)

// Invoke calls the named handler, turning a panic into a FunctionError so
// one bad event cannot kill the instance.
func (f Funcs) Invoke(ctx context.Context, inv Invocation, host Host) (res Result, err error) {
	h, ok := f[inv.Function]
	if !ok {
		return Result{}, fmt.Errorf("invoke %q: %w", inv.Function, ErrUnknownFunction)
	}
	defer func() {
		if r := recover(); r != nil {
			err = &FunctionError{Message: fmt.Sprint("panic: ", r)}
		}
	}()
	return h(ctx, inv, host)
}

// Close does nothing: handlers hold no processes.
func (Funcs) Close(context.Context) error { return nil }
