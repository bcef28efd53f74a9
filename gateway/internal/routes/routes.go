// Package routes keeps the gateway's route table: every route binding of
// every deployed descriptor, rebuilt from _butter.deployments records as
// they come, and matched by longest context.
package routes

import (
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
)

// Route is one function's route.
type Route struct {
	// Deployment and Function name the function answering.
	Deployment, Function string
	// Context is the normalized context path: no trailing slash, "/" for
	// the root.
	Context string
	// Spec is the route binding with the descriptor defaults applied.
	Spec descriptor.Route
}

// Table is the live route table. The zero value is not usable; use New.
type Table struct {
	log *slog.Logger

	mu     sync.RWMutex
	byDep  map[string][]Route // deployment → its routes
	sorted []Route            // every route, longest context first
}

// New returns an empty table.
func New(logger *slog.Logger) *Table {
	return &Table{log: logger, byDep: map[string][]Route{}}
}

// Apply applies one _butter.deployments record: a deployment's routes are
// replaced, a tombstone removes them. A record that does not parse is
// skipped (and the deployment's previous routes kept), since the deployer
// never writes one.
func (t *Table) Apply(r *kgo.Record) {
	d, deleted, err := control.DecodeDeployment(r)
	if err != nil {
		t.log.Error("skip bad deployment record", kit.KeyOffset, r.Offset, kit.KeyError, err)
		return
	}
	if deleted {
		t.set(d.Name, nil)
		return
	}
	desc, err := d.Parse()
	if err != nil {
		t.log.Error("skip deployment with a bad descriptor", kit.KeyDeployment, d.Name, kit.KeyError, err)
		return
	}
	t.set(d.Name, FromDescriptor(desc))
}

// FromDescriptor returns the routes of a parsed descriptor.
func FromDescriptor(desc *descriptor.Descriptor) []Route {
	var out []Route
	for _, f := range desc.Functions {
		if f.Bindings.Route == nil {
			continue
		}
		out = append(out, Route{Deployment: desc.Name, Function: f.Name,
			Context: Normalize(f.Bindings.Route.Context), Spec: *f.Bindings.Route})
	}
	return out
}

// Set replaces the routes of deployment (nil removes them).
func (t *Table) set(deployment string, rs []Route) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(rs) == 0 {
		delete(t.byDep, deployment)
	} else {
		t.byDep[deployment] = rs
	}
	var all []Route
	for _, rs := range t.byDep {
		all = append(all, rs...)
	}
	// Longest context first; ties (two deployments claiming one context)
	// go to the first deployment by name, so every replica picks the same.
	slices.SortFunc(all, func(a, b Route) int {
		if len(a.Context) != len(b.Context) {
			return len(b.Context) - len(a.Context)
		}
		if c := strings.Compare(a.Context, b.Context); c != 0 {
			return c
		}
		if c := strings.Compare(a.Deployment, b.Deployment); c != 0 {
			return c
		}
		return strings.Compare(a.Function, b.Function)
	})
	for i := 1; i < len(all); i++ {
		if all[i].Context == all[i-1].Context && all[i].Deployment != all[i-1].Deployment {
			t.log.Warn("two deployments claim one route context; the first by name wins",
				"context", all[i].Context, "winner", all[i-1].Deployment, "loser", all[i].Deployment)
		}
	}
	t.sorted = all
}

// Match returns the route with the longest context that path falls
// under: path equals the context or continues it after a slash.
func (t *Table) Match(path string) (Route, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, r := range t.sorted {
		if Under(path, r.Context) {
			return r, true
		}
	}
	return Route{}, false
}

// Len returns how many routes the table holds.
func (t *Table) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.sorted)
}

// Under reports whether path is context or below it.
func Under(path, context string) bool {
	if context == "/" {
		return strings.HasPrefix(path, "/")
	}
	rest, ok := strings.CutPrefix(path, context)
	return ok && (rest == "" || rest[0] == '/')
}

// Normalize drops trailing slashes of a context, keeping "/" for the root.
func Normalize(context string) string {
	c := strings.TrimRight(context, "/")
	if c == "" {
		return "/"
	}
	if c[0] != '/' {
		c = "/" + c
	}
	return c
}
