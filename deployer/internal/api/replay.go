package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
)

// ReplayRequest is the body of POST /v1/deployments/{name}/replay.
type ReplayRequest struct {
	// Function is the function whose group is reset; empty means every
	// function bound to Stream.
	Function string `json:"function,omitempty"`
	// Stream is the stream replayed; empty means every stream Function
	// consumes.
	Stream string `json:"stream,omitempty"`
	// From is first, latest, an offset or an RFC 3339 time.
	From string `json:"from"`
}

// GroupReset is one consumer group reset by a replay.
type GroupReset struct {
	Group    string `json:"group"`
	Function string `json:"function"`
	Stream   string `json:"stream"`
	// Partitions maps partition to the offset committed.
	Partitions map[int32]int64 `json:"partitions"`
}

// ReplayResult answers a replay.
type ReplayResult struct {
	Deployment string       `json:"deployment"`
	From       string       `json:"from"`
	Groups     []GroupReset `json:"groups"`
}

type target struct{ function, stream string }

// replay resets consumer groups: the instances of the deployment are
// stopped (a group's offsets can be set only while it is empty), the
// offsets committed, and the instances started again.
func (a *API) replay(w http.ResponseWriter, r *http.Request, actor string) {
	ctx := r.Context()
	d, ok := a.cfg.Desired.Get(r.PathValue("name"))
	if !ok {
		notFound(w, r)
		return
	}
	var req ReplayRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		kit.WriteProblem(w, kit.Problem{Status: http.StatusBadRequest, Title: "invalid replay request",
			Detail: `want JSON {"function": "...", "stream": "...", "from": "first|latest|<offset>|<RFC 3339 time>"}: ` + err.Error(), Instance: r.URL.Path})
		return
	}
	from, err := descriptor.ParseOffset(req.From)
	if err != nil {
		kit.WriteProblem(w, kit.Problem{Status: http.StatusBadRequest, Title: "invalid replay request", Detail: "from: " + err.Error(), Instance: r.URL.Path})
		return
	}
	desc, err := d.Parse()
	if err != nil {
		kit.WriteProblem(w, kit.Problem{Status: http.StatusInternalServerError, Title: "stored descriptor unreadable", Detail: err.Error(), Instance: r.URL.Path})
		return
	}
	targets, err := replayTargets(desc, req)
	if err != nil {
		kit.WriteProblem(w, kit.Problem{Status: http.StatusBadRequest, Title: "invalid replay request", Detail: err.Error(), Instance: r.URL.Path})
		return
	}

	data := control.ReplayRequest{Deployment: d.Name, Function: req.Function, Stream: req.Stream, From: req.From}
	act, err := a.cfg.Events.Begin(ctx, control.TypeDeploymentReplay, control.Info{Resource: control.Resource(control.KindDeployment, d.Name), Actor: actor}, data)
	if err != nil {
		unavailable(w, r, "cannot record the platform event", err)
		return
	}
	ctx, cancel := afterBegin(ctx)
	defer cancel()
	res, err := a.reset(ctx, d.Name, targets, from)
	// What was reset is in the outcome either way: a failure part way
	// leaves the groups before it reset.
	data.Offsets = map[string]map[string]map[int32]int64{}
	for _, g := range res.Groups {
		if data.Offsets[g.Group] == nil {
			data.Offsets[g.Group] = map[string]map[int32]int64{}
		}
		data.Offsets[g.Group][g.Stream] = g.Partitions
	}
	if err != nil {
		data.Error = err.Error()
		a.failOutcome(ctx, act, err, data)
		if errors.Is(err, errBusy) {
			kit.WriteProblem(w, kit.Problem{Status: http.StatusConflict, Title: "replay failed", Detail: err.Error(), Instance: r.URL.Path})
		} else {
			kit.WriteProblem(w, kit.Problem{Status: http.StatusServiceUnavailable, Title: "replay failed",
				Detail:   err.Error() + fmt.Sprintf("; %d of %d groups were reset before the failure (see the deployment.replay.failed event): retry when Kafka is reachable", len(res.Groups), len(targets)),
				Instance: r.URL.Path})
		}
		return
	}
	res.Deployment, res.From = d.Name, req.From
	a.completeOutcome(ctx, act, data)
	a.log.Info("replayed", kit.KeyDeployment, d.Name, "from", req.From, "actor", actor)
	writeJSON(w, http.StatusOK, res)
}

// errBusy marks a replay refused because the groups are still consumed
// (409); other failures are Kafka's (503).
var errBusy = errors.New("the consumer groups are in use")

func replayTargets(desc *descriptor.Descriptor, req ReplayRequest) ([]target, error) {
	var out []target
	found := false
	for _, f := range desc.Functions {
		if req.Function != "" && f.Name != req.Function {
			continue
		}
		found = true
		for _, s := range f.Inputs() {
			if req.Stream == "" || s.Name == req.Stream {
				out = append(out, target{f.Name, s.Name})
			}
		}
	}
	switch {
	case req.Function != "" && !found:
		return nil, fmt.Errorf("function: deployment %s has no function %q", desc.Name, req.Function)
	case len(out) == 0 && req.Stream != "":
		return nil, fmt.Errorf("stream: no function of deployment %s (function %q) consumes stream %q", desc.Name, req.Function, req.Stream)
	case len(out) == 0:
		return nil, fmt.Errorf("function: no function of deployment %s consumes a stream", desc.Name)
	}
	return out, nil
}

func (a *API) reset(ctx context.Context, deployment string, targets []target, from descriptor.Offset) (ReplayResult, error) {
	m := a.cfg.Manager
	m.Hold(deployment)
	defer func() {
		m.Release(deployment)
		if err := m.Sync(context.WithoutCancel(ctx)); err != nil {
			a.log.Warn("reconcile after replay", kit.KeyDeployment, deployment, kit.KeyError, err)
		}
	}()
	if err := m.Sync(ctx); err != nil {
		return ReplayResult{}, fmt.Errorf("stop instances of %s: %w", deployment, err)
	}
	if n := len(m.Instances(deployment)); n > 0 {
		return ReplayResult{}, fmt.Errorf("stop instances of %s: %d still running: %w", deployment, n, errBusy)
	}
	var res ReplayResult
	adm := a.cfg.Admin
	for _, t := range targets {
		group := a.cfg.Namespace.ConsumerGroup(deployment, t.function)
		topic := a.cfg.Namespace.Topic(t.stream)
		if err := a.waitEmpty(ctx, group); err != nil {
			return res, err
		}
		offs, err := a.offsets(ctx, topic, from)
		if err != nil {
			return res, err
		}
		resp, err := adm.CommitOffsets(ctx, group, offs)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return res, fmt.Errorf("commit offsets of group %s: %w", group, err)
		}
		gr := GroupReset{Group: group, Function: t.function, Stream: t.stream, Partitions: map[int32]int64{}}
		offs.Each(func(o kadm.Offset) { gr.Partitions[o.Partition] = o.At })
		res.Groups = append(res.Groups, gr)
	}
	return res, nil
}

// waitEmpty polls until group has no members (it may also not exist).
func (a *API) waitEmpty(ctx context.Context, group string) error {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.GroupEmptyTimeout)
	defer cancel()
	var err error
	empty := func() bool {
		var described kadm.DescribedGroups
		if described, err = a.cfg.Admin.DescribeGroups(ctx, group); err != nil {
			return false
		}
		g := described[group]
		return g.Err != nil || len(g.Members) == 0 || slices.Contains([]string{"Empty", "Dead", ""}, g.State)
	}
	if kit.Poll(ctx, 100*time.Millisecond, empty) != nil {
		return fmt.Errorf("consumer group %s still has members (an fnbox outside this deployer?): %w", group, errors.Join(errBusy, err, ctx.Err()))
	}
	return nil
}

// offsets resolves from to an offset per partition of topic.
func (a *API) offsets(ctx context.Context, topic string, from descriptor.Offset) (kadm.Offsets, error) {
	adm := a.cfg.Admin
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	var at kadm.ListedOffsets
	switch from.Kind {
	case descriptor.OffsetFirst:
		at = starts
	case descriptor.OffsetLatest:
		at = ends
	case descriptor.OffsetTime:
		at, err = adm.ListOffsetsAfterMilli(ctx, from.Time.UnixMilli(), topic)
		if err == nil {
			err = at.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("list offsets of %s after %s: %w", topic, from.Time, err)
		}
	}
	offs := kadm.Offsets{}
	ends.Each(func(e kadm.ListedOffset) {
		start, _ := starts.Lookup(topic, e.Partition)
		o := e.Offset
		switch from.Kind {
		case descriptor.OffsetAt:
			o = from.At
		case descriptor.OffsetPartitions:
			if v, ok := from.Partitions[e.Partition]; ok {
				o = v
			}
		default:
			if l, ok := at.Lookup(topic, e.Partition); ok {
				o = l.Offset
			}
		}
		// Past the end starts at the end, before the start (deleted by
		// retention) at the start, as for a descriptor offset.
		o = max(min(o, e.Offset), start.Offset)
		offs.Add(kadm.Offset{Topic: topic, Partition: e.Partition, At: o, LeaderEpoch: -1})
	})
	return offs, nil
}
