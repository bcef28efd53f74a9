// Package platforms maps each descriptor platform to the runtime that runs
// it, so fnbox and `butter fn test` start functions the same way.
package platforms

import (
	"context"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/fnbox/runtime/exec"
	"github.com/buttercompass/butter/fnbox/runtime/httprt"
	"github.com/buttercompass/butter/fnbox/runtime/stdio"
	"github.com/buttercompass/butter/proto/descriptor"
)

// Start starts a runtime for a deployment's functions.
type Start func(ctx context.Context, spec runtime.Spec) (runtime.Runtime, error)

// All returns the platforms built into this module: stdio hosts node and
// python functions, exec runs a command per event, httprt serves http and
// go functions (a go function is a program built with the Go SDK, run like
// an http one). A fresh map each call, so callers may add to it.
func All() map[string]Start {
	return map[string]Start{
		descriptor.PlatformNode:   stdio.Start,
		descriptor.PlatformPython: stdio.Start,
		descriptor.PlatformExec:   exec.Start,
		descriptor.PlatformHTTP:   httprt.Start,
		descriptor.PlatformGo:     httprt.Start,
	}
}
