//go:build fnboxtest

package main

import (
	"context"
	"encoding/json"

	"github.com/buttercompass/butter/fnbox/box"
	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/descriptor"
)

// registerTestPlatforms registers, for the end-to-end tests of this
// command, an in-process stand-in for the exec platform when the real one
// is not built in: every function returns its input event's id and data, as
// an exec function `cat` would return the event.
func registerTestPlatforms() {
	if _, ok := box.Platforms[descriptor.PlatformExec]; ok {
		return
	}
	box.Platforms[descriptor.PlatformExec] = func(_ context.Context, spec runtime.Spec) (runtime.Runtime, error) {
		return echo{}, nil
	}
}

type echo struct{}

func (echo) Invoke(_ context.Context, inv runtime.Invocation, _ runtime.Host) (runtime.Result, error) {
	e := inv.Events[0].Event
	b, err := json.Marshal(map[string]any{"id": e.ID(), "data": string(e.Data())})
	return runtime.Result{Data: b, ContentType: "application/json"}, err
}

func (echo) Close(context.Context) error { return nil }
