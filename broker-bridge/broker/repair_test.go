package broker

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/topics"
)

// damagedDir makes a data dir holding topic "orders" with records
// 0..n-1 on partition 0 and 1 record on partition 1, then lets breakIt
// damage it.
func damagedDir(t *testing.T, breakIt func(dir string)) Config {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := Config{Addr: "127.0.0.1:0", DataDir: t.TempDir()}
	b, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateTopic(topics.Spec{Name: "orders", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, b.Addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for _, p := range []int32{0, 0, 0, 1} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Partition: p, Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	b.Close()
	breakIt(cfg.dir())
	return cfg
}

// ends returns the end offset of each partition of topic, nil if the
// topic does not exist.
func ends(t *testing.T, b *Broker, topic string) []int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, b.Addr()))
	tds, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if !tds.Has(topic) {
		return nil
	}
	offs, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int64, len(tds[topic].Partitions))
	offs.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// startBroken checks that a start without Repair fails with a
// *LoadError whose message holds each of want, then starts with Repair.
func startBroken(t *testing.T, cfg Config, want ...string) *Broker {
	t.Helper()
	b, err := Start(cfg)
	if err == nil {
		b.Close()
		t.Fatal("a damaged data dir started without --repair")
	}
	t.Logf("start without Repair: %v", err)
	var lerr *LoadError
	if !errors.As(err, &lerr) {
		t.Fatalf("start on a damaged data dir: %v, want a *LoadError", err)
	}
	for _, w := range append(want, "--repair") {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("start error does not name %q: %v", w, err)
		}
	}
	cfg.Repair = true
	b, err = Start(cfg)
	if err != nil {
		t.Fatalf("start with Repair: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// quarantined returns the one quarantine directory and its REPAIR.txt.
func quarantined(t *testing.T, cfg Config) (string, string) {
	t.Helper()
	qs, err := filepath.Glob(filepath.Join(cfg.dir(), QuarantineDir, "*"))
	if err != nil || len(qs) != 1 {
		t.Fatalf("quarantine dirs: %v (%v), want one", qs, err)
	}
	report, err := os.ReadFile(filepath.Join(qs[0], "REPAIR.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return qs[0], string(report)
}

// TestRepairDropsTopicWithTooLongName: a data dir written before the
// broker checked names, holding a 300-character topic, failed every
// start (issue 8). The error names the partition and the file; Repair
// drops the topic, keeps the original topics.json in quarantine and
// every other topic's records.
func TestRepairDropsTopicWithTooLongName(t *testing.T) {
	long := strings.Repeat("a", 300)
	cfg := damagedDir(t, func(dir string) {
		path := filepath.Join(dir, "topics.json")
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var file map[string]any
		if err := json.Unmarshal(raw, &file); err != nil {
			t.Fatal(err)
		}
		file["topics"] = append(file["topics"].([]any), map[string]any{
			"name": long, "id": "AAAAAAAAAAAAAAAAAAAAAQ==", "partitions": 1, "replicas": 1,
		})
		if raw, err = json.Marshal(file); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
	})
	b := startBroken(t, cfg, "partition "+long+"-0", "snapshot.json", "file name too long")
	if got := ends(t, b, "orders"); len(got) != 2 || got[0] != 3 || got[1] != 1 {
		t.Errorf("orders after repair: end offsets %v, want [3 1]", got)
	}
	if got := ends(t, b, long); got != nil {
		t.Errorf("the 300-character topic is still there: %v", got)
	}
	q, report := quarantined(t, cfg)
	if _, err := os.Stat(filepath.Join(q, "topics.json")); err != nil {
		t.Errorf("original topics.json not kept: %v", err)
	}
	if !strings.Contains(report, "dropped topic") {
		t.Errorf("REPAIR.txt does not say what was dropped:\n%s", report)
	}
	// The repaired dir starts without Repair.
	b.Close()
	b, err := Start(cfg)
	if err != nil {
		t.Fatalf("start after repair: %v", err)
	}
	b.Close()
}

// TestRepairQuarantinesBrokenPartition: a partition whose segment cannot
// be read (here its 0.dat is a directory) fails the start naming the
// partition and the file; Repair moves that partition's directory only,
// and it starts again empty.
func TestRepairQuarantinesBrokenPartition(t *testing.T) {
	cfg := damagedDir(t, func(dir string) {
		seg := filepath.Join(dir, "partitions", "orders-1", "0.dat")
		if err := os.Remove(seg); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(seg, 0o755); err != nil {
			t.Fatal(err)
		}
	})
	b := startBroken(t, cfg, "partition orders-1", filepath.Join("orders-1", "0.dat"))
	if got := ends(t, b, "orders"); len(got) != 2 || got[0] != 3 || got[1] != 0 {
		t.Errorf("orders after repair: end offsets %v, want [3 0]", got)
	}
	q, report := quarantined(t, cfg)
	if _, err := os.Stat(filepath.Join(q, "partitions", "orders-1", "0.dat")); err != nil {
		t.Errorf("broken partition not in quarantine: %v", err)
	}
	if !strings.Contains(report, "partitions/orders-1") {
		t.Errorf("REPAIR.txt does not name the partition:\n%s", report)
	}
}

// TestRepairQuarantinesCorruptTopicsFile: a topics.json cut in half
// (a disk that filled up) fails the start naming it; Repair moves it
// and every partition with it (they cannot be told apart without it),
// and the broker starts with its internal topics.
func TestRepairQuarantinesCorruptTopicsFile(t *testing.T) {
	cfg := damagedDir(t, func(dir string) {
		path := filepath.Join(dir, "topics.json")
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, raw[:len(raw)/2], 0o644); err != nil {
			t.Fatal(err)
		}
	})
	b := startBroken(t, cfg, "topics.json")
	if got := ends(t, b, "orders"); got != nil {
		t.Errorf("orders after repair: %v, want it in quarantine", got)
	}
	for _, s := range topics.Internal() {
		if got := ends(t, b, s.Name); len(got) != int(s.PartitionCount()) {
			t.Errorf("internal topic %s after repair: %v", s.Name, got)
		}
	}
	q, _ := quarantined(t, cfg)
	for _, rel := range []string{"topics.json", filepath.Join("partitions", "orders-0", "0.dat"), "groups.log"} {
		if _, err := os.Stat(filepath.Join(q, rel)); err != nil {
			t.Errorf("%s not in quarantine: %v", rel, err)
		}
	}
	for _, kept := range []string{"sasl.json", "acls.json"} {
		if _, err := os.Stat(filepath.Join(q, kept)); err == nil {
			t.Errorf("%s was moved: users and ACLs do not depend on topics.json", kept)
		}
	}
}

// TestRepairReplacesCorruptMetaFile: meta.json holds only the format
// version and cluster ID; a corrupt one is moved to quarantine and
// written anew, and every topic keeps its records.
func TestRepairReplacesCorruptMetaFile(t *testing.T) {
	cfg := damagedDir(t, func(dir string) {
		if err := os.WriteFile(filepath.Join(dir, "meta.json"), []byte("{\x00"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	b := startBroken(t, cfg, "meta.json")
	if got := ends(t, b, "orders"); len(got) != 2 || got[0] != 3 || got[1] != 1 {
		t.Errorf("orders after repair: end offsets %v, want [3 1]", got)
	}
	q, _ := quarantined(t, cfg)
	if _, err := os.Stat(filepath.Join(q, "meta.json")); err != nil {
		t.Errorf("meta.json not in quarantine: %v", err)
	}
}
