package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TypeDeploymentScaled (category state, severity info) says loadmon
// changed how many instances one function of a deployment should run; data
// is ScaleDecision.
const TypeDeploymentScaled = "deployment.scaled"

// SourceLoadmon is the CloudEvents source of loadmon's events.
const SourceLoadmon = "/butter/loadmon"

// Reasons of a ScaleDecision.
const (
	ScaleReasonLag      = "lag"      // the lag or the processing rate asks for more instances
	ScaleReasonWake     = "wake"     // a function at zero instances has lag above its activationLag
	ScaleReasonCooldown = "cooldown" // fewer instances were enough for the whole cooldown
	ScaleReasonIdle     = "idle"     // min 0: no lag and nothing in flight for idleAfter
	ScaleReasonBounds   = "bounds"   // the last decision is outside the function's min, max or partition count
)

// ScaleDecision is loadmon's decision for one function of one deployment
// version: the value of a _butter.scale record keyed ScaleKey(deployment,
// function). The deployer runs the latest decision of the deployment's
// current version, clamped to scale.min and scale.max; a function with no
// decision runs scale.min instances.
type ScaleDecision struct {
	Deployment string `json:"deployment"`
	Function   string `json:"function"`
	// Version is the deployment version decided for: decisions for other
	// versions are ignored.
	Version string `json:"version"`
	// From and To are the instance counts before and after.
	From int `json:"from"`
	To   int `json:"to"`
	// Reason is one of the ScaleReason constants.
	Reason string `json:"reason"`
	// The figures behind the decision.
	//
	// Lag is the function group's lag summed over its bound partitions.
	Lag int64 `json:"lag"`
	// Rate is the events per second the function's instances processed,
	// from their heartbeats.
	Rate float64 `json:"rate"`
	// Arrival is the estimated events per second arriving on its streams
	// (Rate plus the growth of Lag).
	Arrival float64 `json:"arrival"`
	// InFlight is the events being processed, from the heartbeats.
	InFlight int `json:"inFlight"`
	// Running is the instances heartbeating.
	Running int `json:"running"`
	// Partitions is the partition count of the bound streams, the cap of
	// To.
	Partitions int `json:"partitions"`
	// Min, Max and LagPerReplica are the function's scale settings.
	Min           int   `json:"min"`
	Max           int   `json:"max"`
	LagPerReplica int64 `json:"lagPerReplica"`
	// Replica is the loadmon replica that decided.
	Replica string `json:"replica,omitempty"`
	// Time is when it was decided.
	Time time.Time `json:"time"`
}

// ErrBadScaleKey means a _butter.scale record's key and value disagree.
var ErrBadScaleKey = errors.New("scale decision key is not <deployment>/<function> of its value")

// ScaleKey is the record key of a function's decisions: deployment names
// have no '/', so the key splits back unambiguously.
func ScaleKey(deployment, function string) string { return deployment + "/" + function }

// ScaleRecord returns the record storing d on topic (the namespaced
// _butter.scale).
func ScaleRecord(topic string, d ScaleDecision) (*kgo.Record, error) {
	v, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode scale decision of %s: %w", ScaleKey(d.Deployment, d.Function), err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(ScaleKey(d.Deployment, d.Function)), Value: v, Timestamp: d.Time}, nil
}

// DecodeScale decodes a _butter.scale record.
func DecodeScale(r *kgo.Record) (ScaleDecision, error) {
	var d ScaleDecision
	if err := json.Unmarshal(r.Value, &d); err != nil {
		return ScaleDecision{}, fmt.Errorf("decode scale decision %q at offset %d: %w", r.Key, r.Offset, err)
	}
	dep, fn, ok := strings.Cut(string(r.Key), "/")
	if !ok || dep != d.Deployment || fn != d.Function {
		return ScaleDecision{}, fmt.Errorf("decode scale decision %q at offset %d: %w", r.Key, r.Offset, ErrBadScaleKey)
	}
	return d, nil
}
