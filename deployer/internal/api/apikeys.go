package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/buttercompass/butter/proto/apikey"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/topics"
)

// registerAPIKeys mounts /v1/apikeys: gateway API keys (DESIGN §7), stored
// hashed in the compacted _butter.apikeys topic, which the gateway follows.
func (a *API) registerAPIKeys(handle func(pattern string, h http.Handler)) {
	handle("GET /v1/apikeys", a.mutating(a.listKeys))
	handle("POST /v1/apikeys", a.mutating(a.createKey))
	handle("DELETE /v1/apikeys/{id}", a.mutating(a.revokeKey))
}

// KeyRequest is the POST /v1/apikeys body.
type KeyRequest struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes,omitempty"`
}

// KeyInfo is a key as the API shows it: never its hash. Secret is set only
// in the answer to POST, the one time it is shown.
type KeyInfo struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Scopes  []string  `json:"scopes"`
	Created time.Time `json:"created"`
	Actor   string    `json:"actor,omitempty"`
	Secret  string    `json:"secret,omitempty"`
}

// KeyList is the GET /v1/apikeys answer.
type KeyList struct {
	Keys []KeyInfo `json:"keys"`
}

func keyInfo(k apikey.Key) KeyInfo {
	info := KeyInfo{ID: k.ID, Name: k.Name, Scopes: k.Scopes, Created: k.Created, Actor: k.Actor}
	if info.Scopes == nil {
		info.Scopes = []string{}
	}
	return info
}

func (a *API) keysTopic() string { return a.cfg.Namespace.Topic(topics.APIKeys) }

func (a *API) listKeys(w http.ResponseWriter, r *http.Request, _ string) {
	keys, err := apikey.ReadAll(r.Context(), a.cfg.Kafka, a.keysTopic())
	if err != nil {
		unavailable(w, r, "cannot read api keys", err)
		return
	}
	out := KeyList{Keys: []KeyInfo{}}
	for _, k := range keys {
		out.Keys = append(out.Keys, keyInfo(k))
	}
	slices.SortFunc(out.Keys, func(x, y KeyInfo) int {
		if c := x.Created.Compare(y.Created); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	writeJSON(w, http.StatusOK, out)
}

func (a *API) createKey(w http.ResponseWriter, r *http.Request, actor string) {
	ctx := r.Context()
	var req KeyRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		kit.WriteProblem(w, kit.Problem{Status: http.StatusBadRequest, Title: "invalid api key request",
			Detail: `send JSON {"name": "...", "scopes": ["..."]}: ` + err.Error(), Instance: r.URL.Path})
		return
	}
	key, secret, err := apikey.New(req.Name, req.Scopes, actor)
	if err != nil {
		p := kit.Problem{Status: http.StatusBadRequest, Title: "invalid api key request", Detail: "nothing was created", Instance: r.URL.Path}
		p.Errors = problemList(err)
		kit.WriteProblem(w, p)
		return
	}
	info := control.Info{Resource: control.Resource(apikey.Kind, key.ID), Actor: actor}
	data := apikey.Event{ID: key.ID, Name: key.Name, Scopes: key.Scopes}
	act, err := a.cfg.Events.Begin(ctx, apikey.TypeCreate, info, data)
	if err != nil {
		unavailable(w, r, "cannot record the action", err)
		return
	}
	rec, err := apikey.Record(a.keysTopic(), key)
	if err == nil {
		err = a.cfg.Kafka.ProduceSync(ctx, rec).FirstErr()
	}
	if err != nil {
		a.failOutcome(ctx, act, err, data)
		unavailable(w, r, "cannot store the api key", err)
		return
	}
	a.completeOutcome(ctx, act, data)
	out := keyInfo(key)
	out.Secret = secret
	w.Header().Set("Location", "/v1/apikeys/"+key.ID)
	writeJSON(w, http.StatusCreated, out)
}

func (a *API) revokeKey(w http.ResponseWriter, r *http.Request, actor string) {
	ctx := r.Context()
	id := r.PathValue("id")
	keys, err := apikey.ReadAll(ctx, a.cfg.Kafka, a.keysTopic())
	if err != nil {
		unavailable(w, r, "cannot read api keys", err)
		return
	}
	key, ok := keys[id]
	if !ok {
		kit.WriteProblem(w, kit.Problem{Status: http.StatusNotFound, Title: "api key not found",
			Detail: "no api key " + id + ": GET /v1/apikeys lists them", Instance: r.URL.Path})
		return
	}
	data := apikey.Event{ID: key.ID, Name: key.Name, Scopes: key.Scopes}
	act, err := a.cfg.Events.Begin(ctx, apikey.TypeRevoke, control.Info{Resource: control.Resource(apikey.Kind, id), Actor: actor}, data)
	if err != nil {
		unavailable(w, r, "cannot record the action", err)
		return
	}
	if err := a.cfg.Kafka.ProduceSync(ctx, apikey.Tombstone(a.keysTopic(), id)).FirstErr(); err != nil {
		a.failOutcome(ctx, act, err, data)
		unavailable(w, r, "cannot revoke the api key", err)
		return
	}
	a.completeOutcome(ctx, act, data)
	w.WriteHeader(http.StatusNoContent)
}

// problemList splits a joined error into its messages.
func problemList(err error) []string {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		var out []string
		for _, e := range joined.Unwrap() {
			out = append(out, e.Error())
		}
		return out
	}
	return []string{err.Error()}
}
