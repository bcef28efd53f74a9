package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/buttercompass/butter/deployer/gobuild"
	"github.com/buttercompass/butter/deployer/internal/archive"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
)

// MaxBody is the largest request body: a full-size archive plus slack for
// zip overhead. Larger bodies get 413.
const MaxBody = control.MaxCodeSize + descriptor.MaxSize + 64<<10

func (a *API) create(w http.ResponseWriter, r *http.Request, actor string) {
	a.deploy(w, r, actor, "")
}

func (a *API) replace(w http.ResponseWriter, r *http.Request, actor string) {
	a.deploy(w, r, actor, r.PathValue("name"))
}

// deploy handles POST (pathName "") and PUT.
func (a *API) deploy(w http.ResponseWriter, r *http.Request, actor, pathName string) {
	ctx := r.Context()
	limit, what := int64(MaxBody), control.ErrCodeTooBig.Error()
	if descriptorOnly(r.Header.Get("Content-Type")) {
		// A descriptor alone: a body past what Parse reads is no code
		// archive, and the answer must not talk about one.
		limit, what = descriptor.MaxSize, fmt.Sprintf("a descriptor is at most %d KiB", descriptor.MaxSize>>10)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			kit.WriteProblem(w, kit.Problem{Status: http.StatusRequestEntityTooLarge, Title: "upload too large",
				Detail: fmt.Sprintf("the body is over %d bytes: %s", limit, what), Instance: r.URL.Path})
			return
		}
		kit.WriteProblem(w, kit.Problem{Status: http.StatusBadRequest, Title: "unreadable body", Detail: err.Error(), Instance: r.URL.Path})
		return
	}
	up, err := archive.Read(r.Header.Get("Content-Type"), body)
	switch {
	case errors.Is(err, archive.ErrMediaType):
		kit.WriteProblem(w, kit.Problem{Status: http.StatusUnsupportedMediaType, Title: "unsupported media type", Detail: err.Error(), Instance: r.URL.Path})
		return
	case errors.Is(err, archive.ErrCodeTooBig):
		kit.WriteProblem(w, kit.Problem{Status: http.StatusRequestEntityTooLarge, Title: "code archive too large", Detail: err.Error(), Instance: r.URL.Path})
		return
	case err != nil:
		kit.WriteProblem(w, kit.Problem{Status: http.StatusBadRequest, Title: "invalid archive", Detail: err.Error(), Instance: r.URL.Path})
		return
	}
	desc, err := descriptor.Parse(control.DescriptorFile, up.Descriptor)
	var probs descriptor.Problems
	if errors.As(err, &probs) {
		p := kit.Problem{Status: http.StatusBadRequest, Title: "invalid descriptor",
			Detail: fmt.Sprintf("%d problem(s) in %s; nothing was deployed", len(probs), control.DescriptorFile), Instance: r.URL.Path}
		for _, pr := range probs {
			p.Errors = append(p.Errors, pr.String())
		}
		kit.WriteProblem(w, p)
		return
	} else if err != nil {
		kit.WriteProblem(w, kit.Problem{Status: http.StatusBadRequest, Title: "invalid descriptor", Detail: err.Error(), Instance: r.URL.Path})
		return
	}
	if pathName != "" && desc.Name != pathName {
		kit.WriteProblem(w, kit.Problem{Status: http.StatusBadRequest, Title: "name mismatch",
			Detail:   fmt.Sprintf("%s: name: the descriptor names %q but the URL %q; PUT replaces the deployment the URL names", control.DescriptorFile, desc.Name, pathName),
			Instance: r.URL.Path})
		return
	}
	if a.cfg.Admit != nil {
		if err := a.cfg.Admit(desc); err != nil {
			kit.WriteProblem(w, kit.Problem{Status: http.StatusBadRequest, Title: "cannot run this descriptor here",
				Detail: fmt.Sprintf("%s: %v; nothing was deployed", control.DescriptorFile, err), Instance: r.URL.Path})
			return
		}
	}
	defer a.names.lock(desc.Name)()
	prev, exists := a.cfg.Desired.Get(desc.Name)
	if pathName == "" && exists {
		kit.WriteProblem(w, kit.Problem{Status: http.StatusConflict, Title: "deployment exists",
			Detail:   fmt.Sprintf("deployment %q exists (version %s): PUT /v1/deployments/%s replaces it, or deploy under another name to run both", desc.Name, prev.Version, desc.Name),
			Instance: r.URL.Path})
		return
	}

	up, sealed := a.sealSecrets(w, r, desc, up, prev, exists)
	if !sealed {
		return
	}

	now := time.Now().UTC()
	d := control.Deployment{Name: desc.Name, Version: desc.Version, Descriptor: string(up.Descriptor), Code: up.Code,
		Created: now, Updated: now, Actor: actor}
	if d.Version == "" {
		d.Version = control.ContentVersion(d.Descriptor, d.Code)
	}
	if desc.Platform == descriptor.PlatformGo && a.cfg.Prepare != nil {
		if !a.build(w, r, d) {
			return
		}
	}

	typ, code := control.TypeDeploymentCreate, http.StatusCreated
	change := control.DeploymentChange{Name: d.Name, Version: d.Version}
	if exists {
		typ, code = control.TypeDeploymentUpdate, http.StatusOK
		d.Created, change.Previous = prev.Created, prev.Version
	}
	for _, f := range desc.Functions {
		change.Functions = append(change.Functions, f.Name)
	}

	act, err := a.cfg.Events.Begin(ctx, typ, control.Info{Resource: control.Resource(control.KindDeployment, d.Name), Actor: actor}, change)
	if err != nil {
		unavailable(w, r, "cannot record the platform event", err)
		return
	}
	ctx, cancel := afterBegin(ctx)
	defer cancel()
	created, err := a.createStreams(ctx, desc)
	if err != nil {
		change.Error = err.Error()
		a.failOutcome(ctx, act, err, change)
		unavailable(w, r, "cannot create streams", err)
		return
	}
	if err := a.cfg.Desired.Put(ctx, d); err != nil {
		// Nothing deployed, so nothing made for it stays.
		if derr := a.dropStreams(ctx, created); derr != nil {
			err = errors.Join(err, derr)
		}
		change.Error = err.Error()
		a.failOutcome(ctx, act, err, change)
		unavailable(w, r, "cannot store the deployment", err)
		return
	}
	if err := a.cfg.Manager.Sync(ctx); err != nil {
		// Stored is deployed: the reconciler retries, status shows why.
		a.log.Warn("reconcile after deploy", kit.KeyDeployment, d.Name, kit.KeyError, err)
	}
	a.completeOutcome(ctx, act, change)
	a.log.Info("deployed", kit.KeyDeployment, d.Name, "version", d.Version, "actor", actor, "update", exists)
	writeJSON(w, code, a.status(d))
}

// descriptorOnly reports whether contentType is that of a descriptor sent
// alone (YAML or JSON), not of a code archive.
func descriptorOnly(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == archive.TypeJSON || strings.HasSuffix(mt, "/yaml") || strings.HasSuffix(mt, "/x-yaml"))
}

// build unpacks and builds a go deployment before anything is stored: a
// compile error is the deployer's 400, naming the file and line, like a
// descriptor problem. It answers and returns false on failure.
func (a *API) build(w http.ResponseWriter, r *http.Request, d control.Deployment) bool {
	start := time.Now()
	err := a.cfg.Prepare(r.Context(), d)
	var berr *gobuild.Error
	switch {
	case errors.As(err, &berr):
		kit.WriteProblem(w, kit.Problem{Status: http.StatusBadRequest, Title: "go build failed",
			Detail: berr.Summary + "; nothing was deployed", Errors: berr.Problems, Instance: r.URL.Path})
		return false
	case err != nil:
		a.log.Error("build go deployment", kit.KeyDeployment, d.Name, kit.KeyError, err)
		kit.WriteProblem(w, kit.Problem{Status: http.StatusInternalServerError, Title: "cannot build the Go code",
			Detail: err.Error() + "; nothing was deployed", Instance: r.URL.Path})
		return false
	}
	a.log.Info("built go deployment", kit.KeyDeployment, d.Name, "version", d.Version, "took", time.Since(start).Round(time.Millisecond))
	return true
}

func (a *API) remove(w http.ResponseWriter, r *http.Request, actor string) {
	ctx := r.Context()
	defer a.names.lock(r.PathValue("name"))()
	d, ok := a.cfg.Desired.Get(r.PathValue("name"))
	if !ok {
		notFound(w, r)
		return
	}
	change := control.DeploymentChange{Name: d.Name, Version: d.Version}
	act, err := a.cfg.Events.Begin(ctx, control.TypeDeploymentDelete, control.Info{Resource: control.Resource(control.KindDeployment, d.Name), Actor: actor}, change)
	if err != nil {
		unavailable(w, r, "cannot record the platform event", err)
		return
	}
	ctx, cancel := afterBegin(ctx)
	defer cancel()
	if err := a.cfg.Desired.Delete(ctx, d.Name); err != nil {
		change.Error = err.Error()
		a.failOutcome(ctx, act, err, change)
		unavailable(w, r, "cannot delete the deployment", err)
		return
	}
	// The pass stops every instance of the deleted deployment.
	if err := a.cfg.Manager.Sync(ctx); err != nil {
		a.log.Warn("reconcile after delete", kit.KeyDeployment, d.Name, kit.KeyError, err)
	}
	a.completeOutcome(ctx, act, change)
	a.log.Info("deleted", kit.KeyDeployment, d.Name, "actor", actor)
	w.WriteHeader(http.StatusNoContent)
}

// afterBegin is the context of an action once its first platform event is
// stored: a client hanging up no longer cuts it short, so what the events
// say happened is what happened, but Kafka gets at most actionTimeout.
func afterBegin(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), actionTimeout)
}

// actionTimeout bounds an action after its first platform event.
const actionTimeout = 30 * time.Second

// nameLocks serializes the writes to one deployment name, so the check
// that decides 201, 200, 404 or 409 and the write it leads to are one
// step: two POSTs of one name cannot both create it, and a PUT cannot
// bring back what a DELETE answered 204 for.
type nameLocks struct {
	mu sync.Mutex
	m  map[string]*nameLock
}

type nameLock struct {
	sync.Mutex
	refs int
}

// lock locks name and returns its unlock.
func (l *nameLocks) lock(name string) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*nameLock{}
	}
	n := l.m[name]
	if n == nil {
		n = &nameLock{}
		l.m[name] = n
	}
	n.refs++
	l.mu.Unlock()
	n.Lock()
	return func() {
		n.Unlock()
		l.mu.Lock()
		if n.refs--; n.refs == 0 {
			delete(l.m, name)
		}
		l.mu.Unlock()
	}
}
