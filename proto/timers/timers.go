// Package timers holds the timer's contracts (DESIGN §5, §7): the tick
// event functions receive, and the records of the compacted _butter.timers
// topic (schedules created through the timer API, the last fired time of
// every schedule, and the partition ownership markers).
package timers

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// TypeTick is the CloudEvents type of a tick event.
const TypeTick = "butter.timer.tick"

// Source is the CloudEvents source of tick events.
const Source = "/butter/timer"

// Key prefixes of _butter.timers records. The key says what the value is,
// so one compacted topic holds every kind of timer record.
const (
	// KeySchedule prefixes a schedule created through the API; the value
	// is a Schedule, a tombstone deletes it.
	KeySchedule = "schedule/"
	// KeyState prefixes the firing state of a schedule (from the API or a
	// descriptor); the value is a State. It is written in the same Kafka
	// transaction as the ticks it accounts for.
	KeyState = "state/"
	// KeyOwner prefixes the marker a replica commits when it takes over a
	// partition of _butter.timers; the value is an Owner.
	KeyOwner = "owner/"
)

// ScheduleKey is the record key of schedule id.
func ScheduleKey(id string) string { return KeySchedule + id }

// StateKey is the record key of the state of schedule id.
func StateKey(id string) string { return KeyState + id }

// OwnerKey is the record key of the ownership marker of partition p.
func OwnerKey(p int32) string { return KeyOwner + "p" + strconv.Itoa(int(p)) }

// Schedule is a schedule created through the timer API (POST /v1/timers),
// stored under ScheduleKey(ID). Schedules of descriptors are not stored
// here: the timer derives them from _butter.deployments.
type Schedule struct {
	// ID names the schedule; tick ids start with it.
	ID string `json:"id"`
	// Schedule is cron with optional seconds, or @every 10s, @hourly...
	Schedule string `json:"schedule"`
	// Timezone is the IANA zone the schedule is read in; default UTC.
	Timezone string `json:"timezone"`
	// Stream receives the ticks.
	Stream string `json:"stream"`
	// CatchUp is none, one or all (descriptor.CatchUp*); default one.
	CatchUp string `json:"catchUp"`
	// Data, if set, is any JSON copied into every tick's data.
	Data json.RawMessage `json:"data,omitempty"`
	// Created is when the schedule was stored; no tick is due before it.
	Created time.Time `json:"created"`
}

// State is the firing state of one schedule, stored under StateKey.
type State struct {
	// Schedule is the schedule id.
	Schedule string `json:"schedule"`
	// LastFired is the scheduled time of the last tick fired.
	LastFired time.Time `json:"lastFired"`
	// FiredAt is the wall-clock time that tick was fired.
	FiredAt time.Time `json:"firedAt"`
	// FiredBy is the replica that fired it.
	FiredBy string `json:"firedBy"`
}

// Owner is the marker a replica commits on a partition of _butter.timers
// when it takes the partition over.
type Owner struct {
	// Replica is the replica id.
	Replica string `json:"replica"`
	// Since is when it took over.
	Since time.Time `json:"since"`
}

// Tick is the data of a tick event (DESIGN §5).
type Tick struct {
	// Schedule is the schedule id.
	Schedule string `json:"schedule"`
	// ScheduledTime is the time the tick was due.
	ScheduledTime time.Time `json:"scheduledTime"`
	// FiredTime is when the timer fired it; later than ScheduledTime by
	// the fire lag, or by much more for a caught-up tick.
	FiredTime time.Time `json:"firedTime"`
	// Data is the schedule's data, when it has any.
	Data json.RawMessage `json:"data,omitempty"`
}

// TickID is the event id of the tick of schedule at scheduled:
// "<schedule>@<unix ms>". It is the same whichever replica fires it, so a
// consumer can de-duplicate on it.
func TickID(schedule string, scheduled time.Time) string {
	return schedule + "@" + strconv.FormatInt(scheduled.UnixMilli(), 10)
}

// ParseTickID splits a tick id into the schedule id and scheduled time.
func ParseTickID(id string) (schedule string, scheduled time.Time, err error) {
	i := strings.LastIndexByte(id, '@')
	if i < 0 {
		return "", time.Time{}, fmt.Errorf("parse tick id %q: no '@'", id)
	}
	ms, err := strconv.ParseInt(id[i+1:], 10, 64)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("parse tick id %q: %w", id, err)
	}
	return id[:i], time.UnixMilli(ms).UTC(), nil
}
