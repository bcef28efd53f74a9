// Package webhook is the webhook source: POST
// /v1/webhooks/{deployment}/{bridge} turns a CloudEvent (binary,
// structured or batch mode, read by sdk-go's protocol/http) or a plain
// JSON body (wrapped in an event of the bridge's type) into records on
// the bridge's stream. It answers 202 only once Kafka acknowledged every
// record; a request it refuses (400, 401, 404, 413) writes nothing.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/envelope"
	"github.com/buttercompass/butter/proto/kit"
)

// Pattern is the route the handler serves.
const Pattern = "POST /v1/webhooks/{deployment}/{bridge}"

// Target is one webhook bridge, as the handler needs it.
type Target struct {
	Spec descriptor.WebhookSource
	// Topic is the stream's topic (namespaced).
	Topic string
	// Token and Secret are the opened tokenFrom and secretFrom values;
	// empty means that check is off.
	Token, Secret string
}

// Handler serves webhooks.
type Handler struct {
	// Lookup finds the bridge of a request; false answers 404.
	Lookup func(deployment, bridge string) (*Target, bool)
	// Kafka writes the records (an idempotent producer, acks=all).
	Kafka   *kgo.Client
	Log     *slog.Logger
	Metrics *prometheus.CounterVec // requests by deployment, bridge and status
	// Events, if set, records each 401 as an auth.reject platform event
	// (DESIGN §8), at most maxRejects at a time so a flood of bad
	// requests cannot pile up goroutines.
	Events *control.Recorder

	rejects chan struct{}
	once    sync.Once
}

// maxRejects bounds the auth.reject events being written at once.
const maxRejects = 16

// NewMetrics registers the webhook request counter on reg.
func NewMetrics(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "butter_bridge_webhook_requests_total", Help: "Webhook requests by answer."}, []string{"deployment", "bridge", "code"})
	if reg != nil {
		reg.MustRegister(c)
	}
	return c
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	dep, br := r.PathValue("deployment"), r.PathValue("bridge")
	code, err := h.serve(r, dep, br)
	if h.Metrics != nil {
		h.Metrics.WithLabelValues(dep, br, fmt.Sprint(code)).Inc()
	}
	if err != nil {
		var p kit.Problem
		if !errors.As(err, &p) {
			p = kit.Problem{Status: code, Detail: err.Error()}
		}
		p.Instance = r.URL.Path
		if code == http.StatusUnauthorized {
			h.reject(r, dep, br, p.Detail)
		}
		if code >= 500 {
			h.Log.Warn("webhook failed", "deployment", dep, "bridge", br, kit.KeyError, err)
		}
		kit.WriteProblem(w, p)
		return
	}
	w.WriteHeader(code)
}

// reject records a refused credential on _butter.events.
func (h *Handler) reject(r *http.Request, dep, br, reason string) {
	if h.Events == nil {
		return
	}
	h.once.Do(func() { h.rejects = make(chan struct{}, maxRejects) })
	select {
	case h.rejects <- struct{}{}:
	default:
		h.Log.Warn("auth rejection not recorded: too many at once", "path", r.URL.Path)
		return
	}
	data := control.AuthReject{Method: r.Method, Path: r.URL.Path, Reason: reason, Remote: r.RemoteAddr}
	go func() {
		defer func() { <-h.rejects }()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := h.Events.Emit(ctx, control.TypeAuthReject, control.Info{
			Resource: control.Resource(control.KindAuth, "webhook/"+dep+"/"+br), Actor: control.ActorAnonymous,
			Category: control.CategoryAlarm, Severity: control.SeverityWarning,
		}, data); err != nil {
			h.Log.Warn("record auth rejection", kit.KeyError, err)
		}
	}()
}

func problem(status int, format string, args ...any) (int, error) {
	return status, kit.Problem{Status: status, Detail: fmt.Sprintf(format, args...)}
}

func (h *Handler) serve(r *http.Request, dep, br string) (int, error) {
	t, ok := h.Lookup(dep, br)
	if !ok {
		return problem(http.StatusNotFound, "no webhook bridge %q in deployment %q", br, dep)
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, int64(t.Spec.MaxBody)))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return problem(http.StatusRequestEntityTooLarge, "the body is over %d bytes, the bridge's maxBody", t.Spec.MaxBody)
	}
	if err != nil {
		return problem(http.StatusBadRequest, "read body: %v", err)
	}
	if t.Token != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(t.Token)) != 1 {
			return problem(http.StatusUnauthorized, "send the bridge's token as Authorization: Bearer <token>")
		}
	}
	if t.Secret != "" {
		m := hmac.New(sha256.New, []byte(t.Secret))
		m.Write(body)
		want := "sha256=" + hex.EncodeToString(m.Sum(nil))
		if !hmac.Equal([]byte(r.Header.Get(t.Spec.SignatureHeader)), []byte(want)) {
			return problem(http.StatusUnauthorized, "%s must be sha256=<hex HMAC-SHA256 of the body with the bridge's secret>", t.Spec.SignatureHeader)
		}
	}
	evs, err := events(r, body, t.Spec.Type, "/v1/webhooks/"+dep+"/"+br)
	if err != nil {
		return problem(http.StatusBadRequest, "%v", err)
	}
	recs := make([]*kgo.Record, 0, len(evs))
	for _, e := range evs {
		rec, err := envelope.ToRecord(t.Topic, e)
		if err != nil {
			return problem(http.StatusBadRequest, "%v", err)
		}
		recs = append(recs, rec)
	}
	if err := h.Kafka.ProduceSync(r.Context(), recs...).FirstErr(); err != nil {
		return problem(http.StatusServiceUnavailable, "write to the stream: %v; nothing is acknowledged, send again", err)
	}
	return http.StatusAccepted, nil
}

// events reads the request's events: CloudEvents in any HTTP mode, else
// the JSON body as the data of one event of type typ.
func events(r *http.Request, body []byte, typ, source string) ([]event.Event, error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	req := r.Clone(context.WithoutCancel(r.Context()))
	req.Body = io.NopCloser(bytes.NewReader(body))
	switch {
	case mt == "application/cloudevents-batch+json":
		evs, err := cehttp.NewEventsFromHTTPRequest(req)
		if err != nil {
			return nil, fmt.Errorf("read the CloudEvents batch: %w", err)
		}
		if len(evs) == 0 {
			return nil, errors.New("the CloudEvents batch is empty")
		}
		for i := range evs {
			if err := evs[i].Validate(); err != nil {
				return nil, fmt.Errorf("event %d of the batch: %w", i, err)
			}
		}
		return evs, nil
	case mt == "application/cloudevents+json" || r.Header.Get("Ce-Specversion") != "":
		e, err := cehttp.NewEventFromHTTPRequest(req)
		if err != nil {
			return nil, fmt.Errorf("read the CloudEvent: %w", err)
		}
		if err := e.Validate(); err != nil {
			return nil, fmt.Errorf("the CloudEvent: %w", err)
		}
		return []event.Event{*e}, nil
	}
	if !json.Valid(body) {
		return nil, errors.New("the body is neither a CloudEvent (ce-specversion header, application/cloudevents+json or a batch) nor JSON")
	}
	e := envelope.New(source, typ)
	e.SetID(uuid.NewString())
	if err := e.SetData("application/json", json.RawMessage(body)); err != nil {
		return nil, err
	}
	return []event.Event{e}, nil
}
