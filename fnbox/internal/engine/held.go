package engine

import (
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// held is what polls fetched that the at-least-once loop has not
// processed yet, per partition in offset order. kgo hands a poll's records
// out a partition at a time (all it buffered of the first partition, then
// the next), so a poll cut at the poll size would hold one partition and
// the others would wait for it, one invocation at a time whatever the
// function's concurrency. The loop takes everything kgo buffered into
// held and processes each round a fair share of every partition, side by
// side; what a round leaves undone goes back to the front of its
// partition. A partition revoked or lost is dropped: its next owner
// starts again from the committed offset.
type held struct {
	mu      sync.Mutex
	parts   map[tp][]*kgo.Record
	order   []tp        // partitions with records, in the order first seen
	dropped map[tp]bool // revoked since the last take
}

func newHeld() *held {
	return &held{parts: map[tp][]*kgo.Record{}, dropped: map[tp]bool{}}
}

// add appends a poll's records.
func (h *held) add(fs kgo.Fetches) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		k := tp{p.Topic, p.Partition}
		if len(h.parts[k]) == 0 {
			h.order = append(h.order, k)
		}
		h.parts[k] = append(h.parts[k], p.Records...)
	})
}

// len is how many records are held.
func (h *held) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, rs := range h.parts {
		n += len(rs)
	}
	return n
}

// take removes a round's records: about total in all, at least min of
// each partition (a full batch), spread evenly over the partitions held.
func (h *held) take(total, least int) []*partBatch {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.dropped)
	if len(h.order) == 0 {
		return nil
	}
	per := max(least, (total+len(h.order)-1)/len(h.order), 1)
	now := time.Now()
	parts := make([]*partBatch, 0, len(h.order))
	keep := h.order[:0]
	for _, k := range h.order {
		rs := h.parts[k]
		n := min(per, len(rs))
		parts = append(parts, &partBatch{topic: k.topic, partition: k.partition, recs: rs[:n:n], done: make([]bool, n), polled: now})
		if rest := rs[n:]; len(rest) > 0 {
			h.parts[k] = rest
			keep = append(keep, k)
		} else {
			delete(h.parts, k)
		}
	}
	h.order = keep
	return parts
}

// putBack returns what a round left undone to the front of its partition,
// unless the partition was dropped meanwhile.
func (h *held) putBack(parts []*partBatch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, pb := range parts {
		k := tp{pb.topic, pb.partition}
		n := pb.doneCount()
		if n == len(pb.recs) || h.dropped[k] {
			continue
		}
		if len(h.parts[k]) == 0 {
			h.order = append([]tp{k}, h.order...)
		}
		h.parts[k] = append(pb.recs[n:len(pb.recs):len(pb.recs)], h.parts[k]...)
	}
}

// drop forgets the records of partitions taken away.
func (h *held) drop(m map[string][]int32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for topic, ps := range m {
		for _, p := range ps {
			k := tp{topic, p}
			h.dropped[k] = true
			delete(h.parts, k)
		}
	}
	keep := h.order[:0]
	for _, k := range h.order {
		if len(h.parts[k]) > 0 {
			keep = append(keep, k)
		}
	}
	h.order = keep
}

// countRecords is how many records a round has.
func countRecords(parts []*partBatch) int {
	n := 0
	for _, pb := range parts {
		n += len(pb.recs)
	}
	return n
}
