package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/proto/control"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/obs"
)

// runner consumes and delivers one function's streams.
type runner struct {
	e      *Engine
	fn     descriptor.Function
	group  string
	source string
	log    *slog.Logger
	stats  *stats

	bindings map[string]descriptor.StreamBinding // by topic
	topics   []string
	declared map[string]bool // streams out and emits allow
	sem      chan struct{}   // bounds events in flight to scale.concurrency

	joined atomic.Bool

	// assigned is how many partitions the group gives this instance now
	// (see pollSize).
	assigned atomic.Int64

	// polls is how many records a poll takes now (0: not yet set), sized
	// whether it was set with partitions assigned; only the consuming
	// goroutine uses them. See adaptPoll.
	polls int
	sized bool

	// stopPoll cancels the context of the poll being processed; a
	// partition revoked under exactly-once calls it (see groupOpts).
	stopPoll atomic.Pointer[context.CancelFunc]

	// groupCl is the current consumer, for the in-flight markers of
	// suspect events (see markEvent).
	groupCl atomic.Pointer[kgo.Client]

	// serial makes a suspect event's invocation run alone; named says
	// a marker names an event, unname serializes clearing it; curParts is
	// the poll being processed (see enterInvoke).
	serial   sync.RWMutex
	named    atomic.Bool
	unname   sync.Mutex
	curParts []*partBatch

	// held is the at-least-once loop's records fetched and not yet
	// processed (nil under exactly-once); see held.go.
	held atomic.Pointer[held]

	// wantAlone counts invocations waiting to run alone after a host
	// crash that could not be pinned (see enterInvoke).
	wantAlone atomic.Int32

	crashMu  sync.Mutex
	suspects map[tp]suspect // see crashes.go
	retries  map[retryKey]retryState

	// Span names, made once rather than on every event: "invoke <fn>",
	// "produce <fn>", and "receive <topic>" by topic.
	invokeSpan, produceSpan string
	receiveSpans            map[string]string
}

func newRunner(e *Engine, f descriptor.Function) *runner {
	dep := e.cfg.Deployment.Name
	r := &runner{
		e:        e,
		fn:       f,
		group:    e.ns.ConsumerGroup(dep, f.Name),
		source:   obs.Source(dep, f.Name),
		log:      e.log.With(kit.KeyFn, f.Name),
		stats:    newStats(e.metrics, dep, f.Name),
		bindings: map[string]descriptor.StreamBinding{},
		declared: map[string]bool{},
		sem:      make(chan struct{}, max(1, f.Scale.Concurrency)),
		suspects: map[tp]suspect{},
		retries:  map[retryKey]retryState{},

		invokeSpan:   "invoke " + f.Name,
		produceSpan:  "produce " + f.Name,
		receiveSpans: map[string]string{},
	}
	for _, b := range f.Inputs() {
		t := e.ns.Topic(b.Name)
		if _, dup := r.bindings[t]; !dup {
			r.topics = append(r.topics, t)
		}
		r.bindings[t] = b
		r.receiveSpans[t] = "receive " + t
	}
	if f.Bindings.Out != "" {
		r.declared[f.Bindings.Out] = true
	}
	for _, s := range f.Bindings.Emits {
		r.declared[s] = true
	}
	return r
}

func (r *runner) exactlyOnce() bool { return r.fn.Delivery.Guarantee == descriptor.ExactlyOnce }
func (r *runner) ordered() bool     { return r.fn.Delivery.Ordering != descriptor.OrderingNone }
func (r *runner) byKey() bool       { return r.fn.Delivery.Ordering == descriptor.OrderingKey }

// pollSize is the most records one poll takes: MaxPollRecords, raised to
// delivery.batch so that a full batch can come out of a single poll (a
// batch never waits for a later poll), and to delivery.batch for each
// partition assigned (up to batchPollPartitions of them), so that a poll
// spread over several partitions still gives full batches: a poll of 500
// over 4 partitions made batches of 125, four times the invocations (and
// results) a batch of 500 asks for, which is what a replay pays most.
func (r *runner) pollSize() int {
	n := max(r.e.cfg.MaxPollRecords, r.fn.Delivery.Batch)
	if b := r.fn.Delivery.Batch; b > 1 {
		n = max(n, b*min(int(r.assigned.Load()), batchPollPartitions))
	}
	return n
}

// batchPollPartitions caps how many partitions' full batches one poll
// takes (see pollSize).
const batchPollPartitions = 8

// run consumes until ctx is done. A consumer that fails (a commit the
// group refuses, a produce that cannot be acknowledged) is closed and a new
// one resumes from the committed offsets, which is what at-least-once
// needs: nothing after the failure was committed.
func (r *runner) run(ctx context.Context, rt runtime.Runtime) error {
	restart := kit.Backoff{Base: time.Second, Max: 30 * time.Second}
	for failures := 1; ; failures++ {
		var err error
		if r.exactlyOnce() {
			err = r.consumeTxn(ctx, rt)
		} else {
			err = r.consume(ctx, rt)
		}
		if errors.Is(err, errCrashed) {
			return nil
		}
		if ctx.Err() != nil {
			// Stopping: a consumer that failed meanwhile committed
			// nothing past the failure, which the next owner redoes.
			if err != nil {
				r.log.Warn("consumer failed while stopping; the uncommitted events will be redelivered", kit.KeyError, err)
			}
			return nil
		}
		wait := restart.Delay(failures)
		r.log.Error("consumer failed; restarting from the committed offsets", kit.KeyError, err, "in", wait)
		if !kit.Sleep(ctx, wait) {
			return nil
		}
	}
}

// txnTimeout is the exactly-once transaction timeout (Config.TxnTimeout).
// A transaction is open only while a poll's buffered outputs and offsets
// are written (see consumeTxn), so it does not depend on how long the
// function takes; it bounds how long readers wait behind the transaction
// of an instance that died and is not restarted in its slot.
func (r *runner) txnTimeout() time.Duration { return r.e.cfg.TxnTimeout }

// rebalanceTimeout is the group's rebalance timeout: how long the group
// waits for this member to rejoin. An at-least-once member rejoins once
// its poll is processed, which stops starting invocations after
// pollBudget, so it needs the budget plus one invocation (delivery.timeout)
// plus its commit; an exactly-once member rejoins at once. It no longer
// covers one event's retries: those are cut at the budget and go on in
// the next poll (see retryState). A member that died is dropped when its
// session times out, whatever this is.
func (r *runner) rebalanceTimeout() time.Duration {
	return r.e.cfg.RebalanceTimeout + r.fn.Delivery.Timeout.Std()
}

// pollBudget is how long an at-least-once poll starts invocations: then
// it commits what is done and lets a waiting rebalance through; the rest
// is polled again.
func (r *runner) pollBudget() time.Duration { return r.e.cfg.RebalanceTimeout / 2 }

// pollLimit is how long one poll should take: adaptPoll keeps polls well
// within it so results are not held back (exactly-once writes a poll's
// results at its end) and budgets are rarely cut.
func (r *runner) pollLimit() time.Duration { return r.e.cfg.RebalanceTimeout }

// txnID is the transactional id of an exactly-once consumer: stable per
// slot across restarts, so that a restarted instance fences the one it
// replaces (control.TransactionalID). Without a slot (an fnbox started by
// hand) it is per instance id.
func (r *runner) txnID() string {
	if r.e.cfg.slot >= 0 {
		return control.TransactionalID(r.group, r.e.cfg.slot)
	}
	return r.group + "." + r.e.cfg.Instance
}

// pollSizeNow is how many records the next poll takes. The first poll
// is sized before the group assigned anything; the first one after the
// assignment starts again from pollSize, which depends on it, instead of
// doubling up to it poll by poll (a replay's first polls).
func (r *runner) pollSizeNow() int {
	if r.polls == 0 || !r.sized && r.assigned.Load() > 0 {
		r.polls = r.pollSize()
		r.sized = r.assigned.Load() > 0
	}
	return r.polls
}

// adaptPoll sizes the next poll from how the last one (of polled records)
// went; a poll must end within pollLimit. A poll that took more than half
// of it, or whose work was not committed, shrinks the size to what fits in
// half of it at the rate just seen, and at least by half (down to one
// batch): slow functions get small polls instead of transactions timing
// out and the same poll redone forever, or a joining instance waiting for
// the whole rebalance timeout. A poll done in under an eighth of it
// doubles the size back (up to pollSize), so fast functions keep large
// ones.
func (r *runner) adaptPoll(took time.Duration, committed bool, polled int) {
	limit := r.pollLimit()
	switch {
	case !committed || took > limit/2:
		fit := int(float64(polled) * float64(limit/2) / float64(max(took, time.Millisecond)))
		r.polls = max(r.fn.Delivery.Batch, 1, min(fit, polled/2))
	case took < limit/8:
		r.polls = min(r.pollSize(), 2*r.pollSizeNow())
	}
}

// errCrashed is returned by the consume loops when Config.crash fired.
var errCrashed = errors.New("engine crashed on purpose")

// groupOpts are the consumer options both guarantees share.
func (r *runner) groupOpts(cl **kgo.Client) []kgo.Opt {
	return []kgo.Opt{
		kgo.ConsumerGroup(r.group),
		kgo.ConsumeTopics(r.topics...),
		kgo.DisableAutoCommit(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		// Where a partition goes when its position is lost (retention):
		// the oldest event, as Kafka's earliest. The descriptor's offset
		// applies only when the group has no commit; see startOffsets.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AdjustFetchOffsetsFn(r.startOffsets(cl)),
		kgo.RebalanceTimeout(r.rebalanceTimeout()),
		kgo.FetchMaxWait(250 * time.Millisecond),
		// A killed instance holds its partitions until its session times
		// out; Kafka's 45s default is a long stall for a function, 10s
		// (the old default) still rides out a GC pause or a slow broker.
		kgo.SessionTimeout(10 * time.Second),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			r.stats.setAssigned(r.e.ns, m, true)
			r.assigned.Add(int64(countPartitions(m)))
			if len(m) == 0 {
				r.joined.Store(true) // nothing to position: ready as it is
			}
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			r.revoked(m)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			r.revoked(m)
		}),
	}
}

// revoked notes partitions taken away. Under exactly-once it also stops
// the poll being processed: its transaction will abort (the partitions'
// next owner redoes them), so invoking more of it is wasted.
func (r *runner) revoked(m map[string][]int32) {
	if h := r.held.Load(); h != nil {
		h.drop(m)
	}
	r.stats.setAssigned(r.e.ns, m, false)
	r.assigned.Add(-int64(countPartitions(m)))
	r.forget(m)
	if r.exactlyOnce() && countPartitions(m) > 0 {
		if stop := r.stopPoll.Load(); stop != nil {
			(*stop)()
		}
	}
}

// countPartitions is how many partitions m names.
func countPartitions(m map[string][]int32) int {
	n := 0
	for _, ps := range m {
		n += len(ps)
	}
	return n
}

// consume is the at-least-once loop. Rebalances are blocked while a poll
// is processed, so a revoked partition is never given away with work in
// flight; what was done is committed before the next poll. A poll starts
// invocations for pollBudget only: then the done prefix of each partition
// is committed, the rest goes back to the records held for the next
// round (a retry goes on where it was, see retryState) and a waiting
// rebalance goes through in between. Each round takes a share of every
// partition fetched, so partitions run side by side (see held).
func (r *runner) consume(ctx context.Context, rt runtime.Runtime) error {
	r.assigned.Store(0) // a new member: its assignment comes in the callbacks
	r.sized = false
	h := newHeld()
	r.held.Store(h)
	defer r.held.Store(nil)
	var cl *kgo.Client
	cl, err := r.e.cfg.Kafka.NewClient(append(r.groupOpts(&cl), kgo.BlockRebalanceOnPoll())...)
	if err != nil {
		return fmt.Errorf("create consumer for group %s: %w", r.group, err)
	}
	r.groupCl.Store(cl)
	crashed := r.watchCrash(ctx, cl.Close)
	defer func() {
		if !crashed.Load() {
			cl.CloseAllowingRebalance()
		}
	}()
	for {
		// Every round polls, which blocks rebalances while it is
		// processed. It takes all kgo buffered (see held); with records
		// already held, it only takes what is there.
		pctx, cancelPoll := ctx, context.CancelFunc(func() {})
		if h.len() > 0 {
			pctx, cancelPoll = context.WithTimeout(ctx, time.Millisecond)
		}
		fs := cl.PollRecords(pctx, 0)
		cancelPoll()
		if crashed.Load() {
			return errCrashed
		}
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		r.logFetchErrors(fs)
		h.add(fs)
		parts := h.take(r.pollSizeNow(), r.fn.Delivery.Batch)
		if len(parts) == 0 {
			cl.AllowRebalance()
			continue
		}
		r.markInflight(ctx, cl, parts)
		r.curParts = parts
		out := &producer{cl: r.e.prod, async: true}
		start := time.Now()
		bctx, cancel := context.WithTimeout(ctx, r.pollBudget())
		berr := r.runBatch(bctx, rt, out, parts)
		cancel()
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), outputTimeout)
		aerr := out.wait(wctx)
		cancel()
		if crashed.Load() {
			return errCrashed
		}
		if aerr != nil {
			// Which events' outputs were lost is unknown: commit none of
			// the poll and redeliver it from a new consumer.
			cl.AllowRebalance()
			return errors.Join(berr, aerr)
		}
		cerr := r.commit(ctx, cl, parts)
		if cerr == nil && berr == nil {
			h.putBack(parts)
		}
		r.settle(parts, cerr == nil)
		cl.AllowRebalance()
		if ctx.Err() == nil {
			r.adaptPoll(time.Since(start), berr == nil && cerr == nil && allDone(parts), countRecords(parts))
		}
		if err := errors.Join(berr, cerr); err != nil {
			return err
		}
	}
}

// commit commits every partition's done prefix. A partition with nothing
// done gets its position committed again, without the in-flight marker:
// its poll ended cleanly, it did not crash.
func (r *runner) commit(ctx context.Context, cl *kgo.Client, parts []*partBatch) error {
	offsets := map[string]map[int32]kgo.EpochOffset{}
	for _, pb := range parts {
		eo, ok := pb.prefix()
		if !ok {
			eo = kgo.EpochOffset{Epoch: pb.recs[0].LeaderEpoch, Offset: pb.recs[0].Offset}
		}
		if offsets[pb.topic] == nil {
			offsets[pb.topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[pb.topic][pb.partition] = eo
	}
	if len(offsets) == 0 {
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return r.commitSync(cctx, cl, offsets)
}

// commitSync commits offsets for the group and returns the first error,
// of the request or of any partition.
func (r *runner) commitSync(ctx context.Context, cl *kgo.Client, offsets map[string]map[int32]kgo.EpochOffset) error {
	var cerr error
	cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil && cerr == nil {
					cerr = fmt.Errorf("partition %s/%d: %w", t.Topic, p.Partition, err)
				}
			}
		}
	})
	if cerr != nil {
		return fmt.Errorf("commit offsets of group %s: %w", r.group, cerr)
	}
	return nil
}

// consumeTxn is the exactly-once loop: each poll ends in one transaction
// holding its outputs, dead letters and offset commit. Anything short of
// the whole poll done aborts, and the session rewinds to the committed
// offsets.
//
// The transaction is short: invocations run with no transaction open,
// their outputs buffered (see producer), and the transaction begins only
// when the poll is done, to write them and commit the offsets. A slow
// function or a long retry backoff so never holds a transaction open, and
// a crash can leave one open only for the moment of that write; the
// restarted instance's InitProducerID (same slot, same transactional id)
// aborts it at once, or the broker does after txnTimeout.
func (r *runner) consumeTxn(ctx context.Context, rt runtime.Runtime) error {
	r.assigned.Store(0) // a new member: its assignment comes in the callbacks
	r.sized = false
	var cl *kgo.Client
	base, err := r.e.cfg.Kafka.Opts()
	if err != nil {
		return fmt.Errorf("configure transactional consumer: %w", err)
	}
	opts := append(append(base, r.groupOpts(&cl)...),
		kgo.TransactionalID(r.txnID()),
		kgo.TransactionTimeout(r.txnTimeout()),
	)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return fmt.Errorf("create transactional consumer for group %s: %w", r.group, err)
	}
	cl = sess.Client()
	r.groupCl.Store(cl)
	crashed := r.watchCrash(ctx, sess.Close)
	defer func() {
		if !crashed.Load() {
			sess.Close()
		}
	}()
	// kgo takes the producer id lazily, at the first produce. Taking it
	// now fences a killed predecessor with the same transactional id and
	// aborts its open transaction at once; otherwise that transaction's
	// pending offsets keep the group's offset fetch unstable (and this
	// instance idle) until the transaction times out.
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, _, err = cl.ProducerID(pctx)
	cancel()
	if err != nil {
		if crashed.Load() {
			return errCrashed
		}
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("init producer id of transactional id %s: %w", r.txnID(), err)
	}
	for {
		fs := sess.PollRecords(ctx, r.pollSizeNow())
		if crashed.Load() {
			return errCrashed
		}
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		r.logFetchErrors(fs)
		parts := batchOf(fs)
		if len(parts) == 0 {
			continue
		}
		r.markInflight(ctx, cl, parts)
		r.curParts = parts
		out := &producer{cl: cl, txn: true}
		start := time.Now()
		bctx, stop := context.WithCancel(ctx)
		r.stopPoll.Store(&stop)
		berr := r.runBatch(bctx, rt, out, parts)
		r.stopPoll.Store(nil)
		stop()
		if crashed.Load() {
			return errCrashed
		}
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("begin transaction: %w", err)
		}
		try := kgo.TryCommit
		if berr != nil || !allDone(parts) {
			try = kgo.TryAbort
		}
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		if try == kgo.TryCommit {
			if err := out.flush(ectx); err != nil {
				berr, try = err, kgo.TryAbort
			}
		}
		committed, err := sess.End(ectx, try)
		cancel()
		if crashed.Load() {
			return errCrashed
		}
		if !committed && err == nil {
			r.unmark(ctx, cl, parts)
		}
		r.settle(parts, committed)
		if ctx.Err() == nil {
			r.adaptPoll(time.Since(start), committed && err == nil, fs.NumRecords())
		}
		if err != nil {
			return errors.Join(berr, fmt.Errorf("end transaction: %w", err))
		}
		if berr != nil {
			return berr
		}
		if !committed && ctx.Err() == nil {
			r.log.Info("transaction aborted after a rebalance or an unfinished poll; its events will be processed again")
		}
	}
}

// unmark removes the in-flight markers of a poll that ended without
// committing but without crashing either (aborted), so it does not count
// as a crash: its partitions' positions are committed again, outside a
// transaction, with no marker. Best effort; partitions revoked meanwhile
// are refused, their next owner's count is then one too many.
func (r *runner) unmark(ctx context.Context, cl *kgo.Client, parts []*partBatch) {
	offsets := map[string]map[int32]kgo.EpochOffset{}
	for _, pb := range parts {
		if offsets[pb.topic] == nil {
			offsets[pb.topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[pb.topic][pb.partition] = kgo.EpochOffset{Epoch: pb.recs[0].LeaderEpoch, Offset: pb.recs[0].Offset}
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := r.commitSync(cctx, cl, offsets); err != nil {
		r.log.Debug("remove in-flight markers of an aborted poll", kit.KeyError, err)
	}
}

// watchCrash closes the client when Config.crash fires, as kill -9 would
// end it: no commit, no transaction end, no leaving the group.
func (r *runner) watchCrash(ctx context.Context, closeFn func()) *atomic.Bool {
	var crashed atomic.Bool
	if r.e.cfg.crash == nil {
		return &crashed
	}
	go func() {
		select {
		case <-r.e.cfg.crash:
			crashed.Store(true)
			closeFn()
		case <-ctx.Done():
		}
	}()
	return &crashed
}

func (r *runner) logFetchErrors(fs kgo.Fetches) {
	fs.EachError(func(topic string, p int32, err error) {
		// A poll's own short wait (see consume) ends in DeadlineExceeded.
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			r.log.Warn("fetch", "topic", topic, kit.KeyPartition, p, kit.KeyError, err)
		}
	})
}
