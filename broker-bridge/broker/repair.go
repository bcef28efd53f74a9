package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// The broker's data directory is kfake's (third_party/kfake/persist.go):
// state files at the top, partitions/<url-escaped topic>-<n>/ with
// segments (*.dat), indexes and snapshot.json. A directory the broker
// cannot load used to stop every start until someone edited it by hand;
// Config.Repair moves what cannot be loaded into quarantine/<time>/
// instead, so the broker starts without it and nothing is deleted.

// QuarantineDir is where Repair moves what the broker cannot load,
// under the broker's data directory (DataDir/broker).
const QuarantineDir = "quarantine"

// LoadError means the data directory exists but cannot be loaded. Damage
// lists what Repair would move; it is empty when the cause is unknown.
type LoadError struct {
	Dir    string
	Err    error
	Damage []Damage
}

// Damage is one part of the data directory that cannot be loaded.
type Damage struct {
	// What says what is broken and why, naming the partition and file.
	What string
	// Paths are what Repair moves, relative to the broker directory.
	Paths []string
	// Topics are dropped from topics.json by Repair (their partition
	// directories cannot even be named on this file system).
	Topics []string

	newMeta bool // write a new meta.json once the old one is moved
}

func (e *LoadError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "broker data dir %s cannot be loaded: %v", e.Dir, e.Err)
	var fix []string
	for _, d := range e.Damage {
		if !strings.Contains(e.Err.Error(), d.What) {
			fmt.Fprintf(&b, "; %s", d.What)
		}
		for _, p := range d.Paths {
			fix = append(fix, "move "+p)
		}
		for _, t := range d.Topics {
			fix = append(fix, fmt.Sprintf("drop topic %.40q from topics.json", t))
		}
	}
	if len(fix) > 0 {
		fmt.Fprintf(&b, "; start once with --repair (butter broker --repair) to %s into %s and start without it",
			strings.Join(fix, ", "), filepath.Join(e.Dir, QuarantineDir, "<time>"))
	}
	return b.String()
}

func (e *LoadError) Unwrap() error { return e.Err }

// openCluster starts kfake on cfg's data directory. A directory that
// cannot be loaded is a *LoadError naming what is broken; with
// cfg.Repair, that is moved to quarantine and the start tried again.
func openCluster(cfg Config, opts []kfake.Opt) (*kfake.Cluster, error) {
	c, err := kfake.NewCluster(opts...)
	if err == nil {
		return c, nil
	}
	dir := cfg.dir()
	// kfake listens before it loads: anything else is the listener.
	if dir == "" || !strings.Contains(err.Error(), "loading persisted state") {
		return nil, fmt.Errorf("start broker on %s (is another broker using the port?): %w", cfg.Addr, err)
	}
	lerr := &LoadError{Dir: dir, Err: err, Damage: inspect(dir, err)}
	if !cfg.Repair {
		return nil, lerr
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default() // a repair is never silent
	}
	// Each pass moves what the last load failed on; a second pass
	// covers damage the first load stopped before reaching.
	for range 3 {
		if len(lerr.Damage) == 0 {
			return nil, fmt.Errorf("repair found nothing it knows how to move: %w", lerr)
		}
		qdir, err := quarantine(dir, lerr.Damage, time.Now())
		if err != nil {
			return nil, fmt.Errorf("repair broker data dir: %w", err)
		}
		for _, d := range lerr.Damage {
			log.Error("broker repair: moved what could not be loaded to quarantine",
				"damage", d.What, "moved", d.Paths, "dropped_topics", d.Topics, "quarantine", qdir)
		}
		if c, err = kfake.NewCluster(opts...); err == nil {
			return c, nil
		}
		lerr = &LoadError{Dir: dir, Err: err, Damage: inspect(dir, err)}
	}
	return nil, fmt.Errorf("repair broker data dir: still cannot load it after moving damage to quarantine: %w", lerr)
}

// stateFiles are kfake's top-level state files; a missing one is fine.
var stateFiles = []string{"groups.log", "pids.log", "acls.json", "sasl.json", "broker_configs.json", "quotas.json", "seq_windows.json"}

// partitionErr is how kfake names a partition it failed to load.
var partitionErr = regexp.MustCompile(`partition (\S+)-(\d+): `)

// inspect finds what in dir kfake cannot load, checking what its loader
// reads in the order it reads it; loadErr, kfake's own error, names a
// partition when the checks here do not catch the cause.
func inspect(dir string, loadErr error) []Damage {
	// Without topics.json the partitions cannot be loaded, and would
	// be taken for new, empty ones and written over; the group commits,
	// producer and transaction state point into them. Users, ACLs and
	// broker configs do not, and stay.
	allTopics := func(why string) []Damage {
		var paths []string
		for _, name := range []string{"topics.json", "partitions", "groups.log", "pids.log", "seq_windows.json", "session_state.json"} {
			if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
				paths = append(paths, name)
			}
		}
		return []Damage{{What: why + "; every topic's data goes with it", Paths: paths}}
	}
	var meta struct {
		Version *int `json:"version"`
	}
	if err := readJSON(filepath.Join(dir, "meta.json"), &meta); err != nil && !errors.Is(err, fs.ErrNotExist) {
		// It holds only the format version and the cluster ID; a new
		// one is written in its place (quarantine).
		return []Damage{{What: fmt.Sprintf("meta.json: %v", err), Paths: []string{"meta.json"}, newMeta: true}}
	}
	var topicsFile struct {
		Topics []struct {
			Name       string `json:"name"`
			Partitions int    `json:"partitions"`
		} `json:"topics"`
	}
	if err := readJSON(filepath.Join(dir, "topics.json"), &topicsFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return allTopics(fmt.Sprintf("topics.json: %v", err))
	}

	var found []Damage
	moved := map[string]bool{}
	for _, t := range topicsFile.Topics {
		for p := range t.Partitions {
			rel := partitionDir(t.Name, int32(p))
			if why := partitionProblem(filepath.Join(dir, rel)); why != "" {
				found = append(found, Damage{What: fmt.Sprintf("partition %s-%d: %s", t.Name, p, why), Paths: []string{rel}})
				moved[rel] = true
			} else if _, err := os.Lstat(filepath.Join(dir, rel)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				// Its directory cannot even be named (a name too
				// long for the file system, from before the broker
				// checked names): only dropping the topic helps.
				found = append(found, Damage{What: fmt.Sprintf("topic %.60q: its partition directory %s: %v", t.Name, rel, errors.Unwrap(err)), Topics: []string{t.Name}})
				break
			}
		}
	}
	for _, name := range stateFiles {
		if err := readState(filepath.Join(dir, name)); err != nil {
			found = append(found, Damage{What: fmt.Sprintf("%s: %v", name, err), Paths: []string{name}})
		}
	}
	// What the loader failed on that the checks above did not see.
	if m := partitionErr.FindStringSubmatch(loadErr.Error()); m != nil {
		p, _ := strconv.Atoi(m[2])
		rel := partitionDir(m[1], int32(p))
		if _, err := os.Lstat(filepath.Join(dir, rel)); err == nil && !moved[rel] {
			found = append(found, Damage{What: fmt.Sprintf("partition %s-%s: %v", m[1], m[2], loadErr), Paths: []string{rel}})
		}
	}
	return found
}

// partitionDir is kfake's partDir, relative to the broker directory.
func partitionDir(topic string, p int32) string {
	return filepath.Join("partitions", fmt.Sprintf("%s-%d", url.PathEscape(topic), p))
}

// partitionProblem says why kfake cannot load the partition directory
// pdir, "" if it can (a missing one is an empty partition). Torn or
// corrupt segment tails are not problems: kfake truncates them.
func partitionProblem(pdir string) string {
	st, err := os.Lstat(pdir)
	if err != nil {
		return "" // missing, or unnameable: the caller looks
	}
	if !st.IsDir() {
		return fmt.Sprintf("%s is not a directory", pdir)
	}
	if _, err := os.ReadFile(filepath.Join(pdir, "snapshot.json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err.Error()
	}
	entries, err := os.ReadDir(pdir)
	if err != nil {
		return err.Error()
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".dat") {
			if _, err := os.ReadFile(filepath.Join(pdir, e.Name())); err != nil {
				return err.Error()
			}
		}
	}
	return ""
}

func readJSON(path string, v any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return nil
}

// readState reports a state file kfake would fail on: unreadable, or
// (for .json) not JSON. Logs are read entry by entry and a torn tail is
// dropped, so only reading them can fail.
func readState(path string) error {
	if strings.HasSuffix(path, ".json") {
		var v any
		err := readJSON(path, &v)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if _, err := os.ReadFile(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// quarantine moves each damage's paths from dir to a new
// dir/quarantine/<time>/ (same relative paths), drops its topics from
// topics.json (the original is kept there), and writes REPAIR.txt
// saying what and why. It returns the quarantine directory.
func quarantine(dir string, damage []Damage, now time.Time) (string, error) {
	qdir := filepath.Join(dir, QuarantineDir, now.UTC().Format("20060102T150405.000Z"))
	if err := os.MkdirAll(qdir, 0o755); err != nil {
		return "", fmt.Errorf("create quarantine dir: %w", err)
	}
	var report strings.Builder
	fmt.Fprintf(&report, "Moved here by the broker's repair at %s: it could not load them.\n\n", now.UTC().Format(time.RFC3339))
	var drop []string
	for _, d := range damage {
		fmt.Fprintf(&report, "- %s\n", d.What)
		for _, rel := range d.Paths {
			dst := filepath.Join(qdir, rel)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return "", fmt.Errorf("quarantine %s: %w", rel, err)
			}
			if err := os.Rename(filepath.Join(dir, rel), dst); err != nil {
				return "", fmt.Errorf("quarantine %s: %w", rel, err)
			}
			fmt.Fprintf(&report, "  moved %s\n", rel)
		}
		if d.newMeta {
			// kfake's persistMeta, format version 1 (persist.go).
			meta := []byte(`{"version":1,"cluster_id":"butter"}`)
			if err := os.WriteFile(filepath.Join(dir, "meta.json"), meta, 0o644); err != nil {
				return "", fmt.Errorf("write a new meta.json: %w", err)
			}
			fmt.Fprintf(&report, "  wrote a new meta.json\n")
		}
		drop = append(drop, d.Topics...)
		for _, t := range d.Topics {
			fmt.Fprintf(&report, "  dropped topic %q from topics.json (the original is topics.json here)\n", t)
		}
	}
	if len(drop) > 0 {
		if err := dropTopics(dir, qdir, drop); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(filepath.Join(qdir, "REPAIR.txt"), []byte(report.String()), 0o644); err != nil {
		return "", fmt.Errorf("write quarantine report: %w", err)
	}
	return qdir, nil
}

// dropTopics rewrites dir/topics.json without the named topics, keeping
// every other field as kfake wrote it; the original goes to qdir.
func dropTopics(dir, qdir string, names []string) error {
	path := filepath.Join(dir, "topics.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read topics.json: %w", err)
	}
	var file map[string]json.RawMessage
	var topics []json.RawMessage
	if err := json.Unmarshal(raw, &file); err != nil {
		return fmt.Errorf("parse topics.json: %w", err)
	}
	if err := json.Unmarshal(file["topics"], &topics); err != nil {
		return fmt.Errorf("parse topics.json: %w", err)
	}
	kept := topics[:0]
	for _, t := range topics {
		var named struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(t, &named); err != nil {
			return fmt.Errorf("parse topics.json: %w", err)
		}
		if !slices.Contains(names, named.Name) {
			kept = append(kept, t)
		}
	}
	if file["topics"], err = json.Marshal(kept); err != nil {
		return fmt.Errorf("encode topics.json: %w", err)
	}
	out, err := json.Marshal(file)
	if err != nil {
		return fmt.Errorf("encode topics.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(qdir, "topics.json"), raw, 0o644); err != nil {
		return fmt.Errorf("keep the original topics.json: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, out, 0o644); err != nil {
		return fmt.Errorf("write topics.json: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write topics.json: %w", err)
	}
	return nil
}
