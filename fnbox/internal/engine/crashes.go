package engine

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/buttercompass/butter/proto/kit"
)

// Poison events (DESIGN §6): an event whose invocation kills fnbox (or
// the process it runs in) is found by what a dead instance leaves behind
// in its group's committed offsets.
//
// Before a poll's events are invoked, each of its partitions gets an
// in-flight marker: the committed offset is committed again, unchanged,
// with metadata naming the range the poll covers. Any progress (or a
// clean end without progress) commits over it, so a marker found at the
// committed offset when a partition is assigned means the instance that
// wrote it died while processing that range. The partition is then
// suspect up to the end of the range: its events there are invoked one at
// a time, each after a marker naming it (the offset still unchanged), so
// a further crash pins the very event, and the count of crashes at that
// event travels in the marker from one instance to the next. At
// Config.CrashLimit the event is dead-lettered with reason obs.ErrCrashed
// without being invoked again. A crash while a whole range was in flight
// cannot be pinned and is not counted: a poison event takes one crash
// more than the limit when it was not alone.
//
// A crash of the function's host process that fnbox survives
// (runtime.ErrCrashed) counts the same, within the retries of one
// instance, added to what the marker says, but only for an invocation
// that ran alone on the host. One that crashed with others in flight
// (partitions or keys run concurrently) is not blamed: it is retried
// alone, without using an attempt, so that a crash then is its own.

// markerPrefix starts in-flight marker metadata; the version lets a later
// format be told apart.
const markerPrefix = "butter.inflight/2 "

// marker is the commit metadata of a partition whose events from start
// (the committed offset) to end are being processed. at is the event in
// flight when known (-1: the whole range), crashes how many times it was
// seen to crash before.
type marker struct {
	start, end, at int64
	crashes        int
}

func (m marker) String() string {
	return markerPrefix + strconv.FormatInt(m.start, 10) + " " + strconv.FormatInt(m.end, 10) + " " +
		strconv.FormatInt(m.at, 10) + " " + strconv.Itoa(m.crashes)
}

// parseMarker parses commit metadata written by marker.String.
func parseMarker(s string) (marker, bool) {
	rest, ok := strings.CutPrefix(s, markerPrefix)
	if !ok {
		return marker{}, false
	}
	f := strings.Fields(rest)
	if len(f) != 4 {
		return marker{}, false
	}
	var m marker
	var errs [4]error
	m.start, errs[0] = strconv.ParseInt(f[0], 10, 64)
	m.end, errs[1] = strconv.ParseInt(f[1], 10, 64)
	m.at, errs[2] = strconv.ParseInt(f[2], 10, 64)
	m.crashes, errs[3] = strconv.Atoi(f[3])
	for _, err := range errs {
		if err != nil {
			return marker{}, false
		}
	}
	if m.end < m.start || m.crashes < 0 || m.at >= 0 && (m.at < m.start || m.at > m.end) {
		return marker{}, false
	}
	return m, true
}

// tp names a partition.
type tp struct {
	topic     string
	partition int32
}

// suspect is a partition an instance died processing: events up to end
// go one at a time; the event at offset at (-1: none) has crashed crashes
// times.
type suspect struct {
	at, end int64
	crashes int
}

// crashLimit is how many crashes make an event a poison event.
func (r *runner) crashLimit() int { return r.e.cfg.CrashLimit }

// loadSuspects reads the markers of the partitions just assigned with a
// committed offset and notes the suspect ones. Best effort: a partition
// whose marker cannot be read is processed as usual.
func (r *runner) loadSuspects(ctx context.Context, cl *kgo.Client, offsets map[string]map[int32]kgo.Offset) {
	committed := map[tp]int64{}
	for topic, parts := range offsets {
		for p, o := range parts {
			if at := o.EpochOffset().Offset; at >= 0 {
				committed[tp{topic, p}] = at
			}
		}
	}
	if len(committed) == 0 {
		return
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).FetchOffsets(fctx, r.group)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		r.log.Warn("read in-flight markers; poison events in these partitions are found one crash later", kit.KeyError, err)
		return
	}
	r.crashMu.Lock()
	defer r.crashMu.Unlock()
	for k, at := range committed {
		o, ok := resp.Lookup(k.topic, k.partition)
		if !ok {
			continue
		}
		m, ok := parseMarker(o.Metadata)
		if !ok || m.start != at {
			continue
		}
		s := suspect{at: m.at, end: m.end}
		if m.at >= 0 {
			s.crashes = m.crashes + 1
		}
		r.suspects[k] = s
		r.log.Warn("an instance died processing this partition; processing it one event at a time",
			"topic", k.topic, kit.KeyPartition, k.partition, kit.KeyOffset, at, "through", m.end,
			"event", m.at, "crashes", s.crashes)
	}
}

// forget drops what is known of partitions this instance no longer owns:
// their next owner reads the markers itself.
func (r *runner) forget(m map[string][]int32) {
	r.crashMu.Lock()
	defer r.crashMu.Unlock()
	for topic, ps := range m {
		for _, p := range ps {
			delete(r.suspects, tp{topic, p})
			for k := range r.retries {
				if k.topic == topic && k.partition == p {
					delete(r.retries, k)
				}
			}
		}
	}
}

// suspectAt reports whether the event at offset of k is to be invoked
// alone, after a marker naming it.
func (r *runner) suspectAt(k tp, offset int64) bool {
	r.crashMu.Lock()
	defer r.crashMu.Unlock()
	s, ok := r.suspects[k]
	return ok && offset <= s.end
}

// crashesAt is how many crashes the event at offset of k is known for.
func (r *runner) crashesAt(k tp, offset int64) int {
	r.crashMu.Lock()
	defer r.crashMu.Unlock()
	if s, ok := r.suspects[k]; ok && s.at == offset {
		return s.crashes
	}
	return 0
}

// markInflight writes the in-flight marker of every partition of the
// poll before any of its events is invoked. Best effort: without it a
// crash is not counted, and processing goes on.
func (r *runner) markInflight(ctx context.Context, cl *kgo.Client, parts []*partBatch) {
	offsets := map[string]map[int32]kgo.EpochOffset{}
	meta := map[tp]string{}
	r.crashMu.Lock()
	for _, pb := range parts {
		first, last := pb.recs[0], pb.recs[len(pb.recs)-1]
		k := tp{pb.topic, pb.partition}
		m := marker{start: first.Offset, end: last.Offset, at: -1}
		if s, ok := r.suspects[k]; ok {
			m.end = max(m.end, s.end)
		}
		if offsets[pb.topic] == nil {
			offsets[pb.topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[pb.topic][pb.partition] = kgo.EpochOffset{Epoch: first.LeaderEpoch, Offset: first.Offset}
		meta[k] = m.String()
	}
	r.crashMu.Unlock()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	cctx = withCommitMetadata(cctx, meta)
	if err := r.commitSync(cctx, cl, offsets); err != nil {
		r.log.Warn("write in-flight markers; a crash now would not be counted", kit.KeyError, err)
	}
}

// anySuspect reports whether a partition of the poll is suspect.
func (r *runner) anySuspect() bool {
	r.crashMu.Lock()
	defer r.crashMu.Unlock()
	return len(r.suspects) > 0
}

// enterInvoke is called before each invocation of the poll's events.
// While a partition is suspect, a suspect event (offset of pb) runs alone,
// after markers naming it; other invocations run together, never beside a
// suspect one, and only once no marker names an event. An instance dying
// then blames exactly the suspect event it died running, and no event
// that happened to run beside it. The returned function ends the
// invocation.
//
// alone makes the invocation run alone too, without markers: it is the
// retry of an event that was in flight beside others when the function's
// host crashed, so that a second crash pins it (see runner.deliver).
func (r *runner) enterInvoke(ctx context.Context, pb *partBatch, offset int64, alone bool) func() {
	if !alone && r.wantAlone.Load() == 0 && !r.anySuspect() {
		return func() {}
	}
	if suspect := r.suspectAt(tp{pb.topic, pb.partition}, offset); alone || suspect {
		if alone {
			r.wantAlone.Add(1)
		}
		r.serial.Lock()
		if alone {
			// Invocations that started before it asked still run:
			// wait for them (those of other functions of the
			// deployment, which do not take this lock, only so long).
			wctx, cancel := context.WithTimeout(ctx, r.fn.Delivery.Timeout.Std())
			_ = kit.Poll(wctx, time.Millisecond, func() bool { return r.e.hostBusy.Load() == 0 })
			cancel()
		}
		if suspect {
			r.markInvocation(ctx, pb, offset)
			r.named.Store(true)
		}
		return func() {
			r.serial.Unlock()
			if alone {
				r.wantAlone.Add(-1)
			}
		}
	}
	r.serial.RLock()
	if r.named.Load() {
		r.unname.Lock()
		if r.named.Load() {
			r.markInvocation(ctx, nil, -1)
			r.named.Store(false)
		}
		r.unname.Unlock()
	}
	return r.serial.RUnlock
}

// markInvocation writes the markers of every partition of the poll, the
// one of pb naming the event at offset if it is suspect; the offsets stay
// the partitions' committed ones (their polls' first). Best effort, as
// markInflight.
func (r *runner) markInvocation(ctx context.Context, inflight *partBatch, offset int64) {
	cl := r.groupCl.Load()
	if cl == nil {
		return
	}
	offsets := map[string]map[int32]kgo.EpochOffset{}
	meta := map[tp]string{}
	r.crashMu.Lock()
	for _, pb := range r.curParts {
		k := tp{pb.topic, pb.partition}
		first := pb.recs[0]
		m := marker{start: first.Offset, end: pb.recs[len(pb.recs)-1].Offset, at: -1}
		if s, ok := r.suspects[k]; ok {
			m.end = max(m.end, s.end)
			if pb == inflight && offset <= s.end {
				m.at = offset
				if s.at == offset {
					m.crashes = s.crashes
				}
			}
		}
		if offsets[pb.topic] == nil {
			offsets[pb.topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[pb.topic][pb.partition] = kgo.EpochOffset{Epoch: first.LeaderEpoch, Offset: first.Offset}
		meta[k] = m.String()
	}
	r.crashMu.Unlock()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := r.commitSync(withCommitMetadata(cctx, meta), cl, offsets); err != nil {
		r.log.Warn("write in-flight markers; a crash now would not be counted", kit.KeyOffset, offset, kit.KeyError, err)
	}
}

// withCommitMetadata makes the commits issued with ctx carry meta.
func withCommitMetadata(ctx context.Context, meta map[tp]string) context.Context {
	return kgo.PreCommitFnContext(ctx, func(req *kmsg.OffsetCommitRequest) error {
		for i := range req.Topics {
			t := &req.Topics[i]
			for j := range t.Partitions {
				if m, ok := meta[tp{t.Topic, t.Partitions[j].Partition}]; ok {
					t.Partitions[j].Metadata = &m
				}
			}
		}
		return nil
	})
}

// settle updates the suspects from where the poll left each partition:
// past its range a partition is no longer suspect; past the event that
// crashed, the next event starts with no crash counted.
func (r *runner) settle(parts []*partBatch, committed bool) {
	r.crashMu.Lock()
	defer r.crashMu.Unlock()
	for _, pb := range parts {
		k := tp{pb.topic, pb.partition}
		s, ok := r.suspects[k]
		if !ok || !committed {
			continue
		}
		eo, ok := pb.prefix()
		if !ok {
			continue
		}
		if eo.Offset > s.end {
			delete(r.suspects, k)
			r.log.Info("partition processed past the range an instance died in; back to batches",
				"topic", k.topic, kit.KeyPartition, k.partition, kit.KeyOffset, eo.Offset)
		}
	}
}
