package topics

import (
	"errors"
	"testing"
	"time"
)

func TestValidateStreamName(t *testing.T) {
	for name, ok := range map[string]bool{
		"orders": true, "a": true, "orders.v2_x-y": true, "0day": true,
		"_butter.events": true,
		"":               false, "Orders": false, "-x": false, ".x": false, "a b": false,
		"_butter.": false, "_other": false, string(make([]byte, 202)): false,
	} {
		err := ValidateStreamName(name)
		if (err == nil) != ok {
			t.Errorf("ValidateStreamName(%q) = %v, want ok=%v", name, err, ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidStreamName) {
			t.Errorf("ValidateStreamName(%q) = %v, not ErrInvalidStreamName", name, err)
		}
	}
}

func TestSpecConfigs(t *testing.T) {
	s := Stream("orders")
	if s.PartitionCount() != 4 || s.Configs()["retention.ms"] != "604800000" || s.Configs()["cleanup.policy"] != "" {
		t.Fatalf("stream defaults: %+v %v", s, s.Configs())
	}
	if c := (Spec{Name: "x", Retention: 36 * time.Hour, Compact: true}).Configs(); c["retention.ms"] != "129600000" || c["cleanup.policy"] != "compact,delete" {
		t.Fatalf("compacted for 36h: %v, want compact,delete", c)
	}
	c := Spec{Name: "x", Retention: Forever, Compact: true}.Configs()
	if c["retention.ms"] != "-1" || c["cleanup.policy"] != "compact" {
		t.Fatalf("forever compacted: %v", c)
	}
}

func TestInternalSpecs(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range Internal() {
		if !IsInternal(s.Name) || ValidateStreamName(s.Name) != nil || seen[s.Name] {
			t.Errorf("bad internal spec %+v", s)
		}
		seen[s.Name] = true
	}
	for _, name := range []string{Deployments, Scale, Heartbeats, Replies, Traces, Logs, Events, Checkpoints, Timers} {
		if !seen[name] {
			t.Errorf("%s has no spec", name)
		}
	}
}

func TestNamespace(t *testing.T) {
	ns := Namespace("team1.")
	if ns.Topic("orders") != "team1.orders" || ns.ConsumerGroup("shop", "on-order") != "team1.butter.shop.on-order" {
		t.Fatal(ns.Topic("orders"), ns.ConsumerGroup("shop", "on-order"))
	}
	if s, ok := ns.Stream("team1.orders"); !ok || s != "orders" {
		t.Fatal(s, ok)
	}
	if _, ok := ns.Stream("other.orders"); ok {
		t.Fatal("foreign topic mapped into namespace")
	}
}

func TestParseRetention(t *testing.T) {
	for in, want := range map[string]time.Duration{"-1": Forever, "7d": 7 * 24 * time.Hour, "36h": 36 * time.Hour, "90m": 90 * time.Minute} {
		if got, err := ParseRetention(in); err != nil || got != want {
			t.Errorf("ParseRetention(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "0d", "-2", "7x", "-5m", "d"} {
		if _, err := ParseRetention(in); err == nil {
			t.Errorf("ParseRetention(%q) accepted", in)
		}
	}
}
