package bench

import (
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/envelope"
)

// Event sources and types of the bench.
const (
	sourceProducer  = "/butter/bench/producer"
	sourcePipeline  = "/butter/bench/pipeline"
	sourceRequester = "/butter/bench/requester"
	sourceResponder = "/butter/bench/responder"

	typeEvent   = "com.buttercompass.bench.event"
	typeResult  = "com.buttercompass.bench.result"
	typeRequest = "com.buttercompass.bench.request"
	typeReply   = "com.buttercompass.bench.reply"

	contentTypeJSON = "application/json"

	// keys is how many partition keys events cycle through: enough to
	// spread over every partition, few enough that batches fill.
	keys = 1024
)

// newEvent returns event seq of the throughput measurements: a small JSON
// business event with a partition key, about 250 bytes as a record with its
// headers.
func newEvent(seq int) event.Event {
	e := envelope.New(sourceProducer, typeEvent)
	e.SetExtension(envelope.ExtPartitionKey, "key-"+strconv.Itoa(seq%keys))
	data := fmt.Sprintf(`{"seq":%d,"sku":"b-%04d","qty":%d}`, seq, seq%9973, 1+seq%7)
	if err := e.SetData(contentTypeJSON, []byte(data)); err != nil {
		panic(err) // []byte data never fails to set
	}
	return e
}

// newRecord encodes newEvent(seq) for topic.
func newRecord(topic string, seq int) (*kgo.Record, error) {
	r, err := envelope.ToRecord(topic, newEvent(seq))
	if err != nil {
		return nil, fmt.Errorf("encode bench event %d: %w", seq, err)
	}
	return r, nil
}

// child returns the record of the event a function would write for the
// delivery d: caused by it, on its key so order holds, with its data.
func child(topic, source, typ string, d envelope.Delivery) (*kgo.Record, error) {
	e := envelope.Child(d.Event, source, typ)
	if k := envelope.Extension(d.Event, envelope.ExtPartitionKey); k != "" {
		e.SetExtension(envelope.ExtPartitionKey, k)
	}
	if data := d.Event.Data(); len(data) > 0 {
		if err := e.SetData(d.Event.DataContentType(), data); err != nil {
			return nil, fmt.Errorf("copy data of event %s: %w", d.Event.ID(), err)
		}
	}
	r, err := envelope.ToRecord(topic, e)
	if err != nil {
		return nil, fmt.Errorf("encode child of event %s: %w", d.Event.ID(), err)
	}
	return r, nil
}

// recordSize is the size of r as the protocol carries it, less the varint
// framing: key, value, header keys and values.
func recordSize(r *kgo.Record) int {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// promiseErrors collects the errors of asynchronous produces; the first
// is kept, the rest counted.
type promiseErrors struct {
	mu    sync.Mutex
	first error
	n     int
}

// promise is a kgo produce promise that records a failure.
func (p *promiseErrors) promise(r *kgo.Record, err error) {
	if err == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.first == nil {
		p.first = fmt.Errorf("produce to %s: %w", r.Topic, err)
	}
	p.n++
}

// err returns nil if every produce so far succeeded.
func (p *promiseErrors) err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.first == nil {
		return nil
	}
	if p.n == 1 {
		return p.first
	}
	return fmt.Errorf("%w (and %d more failed produces)", p.first, p.n-1)
}

// errNotDone is wrapped when a measurement's counts do not add up, meaning
// the broker lost, duplicated or misplaced events.
var errNotDone = errors.New("event counts do not add up")
