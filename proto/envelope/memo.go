package envelope

import (
	"mime"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cloudevents/sdk-go/v2/types"
)

// memo remembers the outcome of a pure function of a string key (parsing
// a source URI, a content type) for the hot path, where the same few
// values come back on every event. Reads take no lock and allocate
// nothing; a write copies the map, which is fine because writes stop once
// the few distinct values have been seen. At most memoMax keys of up to
// memoKeyMax bytes are kept, so records with ever-new values cannot grow it
// without bound: those are computed every time instead.
type memo[K comparable, V any] struct {
	mu sync.Mutex
	m  atomic.Pointer[map[K]V]
}

const (
	memoMax    = 512
	memoKeyMax = 512
)

func (c *memo[K, V]) get(k K) (V, bool) {
	if m := c.m.Load(); m != nil {
		v, ok := (*m)[k]
		return v, ok
	}
	var zero V
	return zero, false
}

func (c *memo[K, V]) put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil && len(*old) >= memoMax {
		return
	}
	m := make(map[K]V, 1+lenOf(old))
	if old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	m[k] = v
	c.m.Store(&m)
}

func lenOf[K comparable, V any](m *map[K]V) int {
	if m == nil {
		return 0
	}
	return len(*m)
}

// parsedSource is a source attribute as sdk-go's SetSource reads it.
type parsedSource struct {
	ref types.URIRef
	// parsed reports that url.Parse accepted it (SetSource then sets it).
	parsed bool
	// valid reports that it also passes Validate: non-empty once rendered.
	valid bool
	// str is ref rendered (ref.String()), as ToRecord writes it.
	str string
}

var sources memo[string, parsedSource]

// parseSource is url.Parse(s) with Validate's verdict, memoized.
func parseSource(s string) parsedSource {
	if p, ok := sources.get(s); ok {
		return p
	}
	var p parsedSource
	if u, err := url.Parse(s); err == nil {
		p = parsedSource{ref: types.URIRef{URL: *u}, parsed: true}
		p.str = p.ref.String()
		p.valid = strings.TrimSpace(p.str) != ""
	}
	if len(s) <= memoKeyMax {
		sources.put(strings.Clone(s), p)
	}
	return p
}

var sourceStrings memo[url.URL, string]

// sourceString is ref.String(), memoized.
func sourceString(ref types.URIRef) string {
	if s, ok := sourceStrings.get(ref.URL); ok {
		return s
	}
	s := ref.String()
	if len(s) <= memoKeyMax {
		sourceStrings.put(ref.URL, s)
	}
	return s
}

// contentTypeCheck is what decoding and validation make of a content type.
type contentTypeCheck struct {
	// parses reports that mime.ParseMediaType accepts it as it is.
	parses bool
	// valid reports that Validate accepts it: non-empty and parsable once
	// trimmed.
	valid bool
}

var contentTypes memo[string, contentTypeCheck]

// checkContentType checks ct as FromRecord and Validate do, memoized.
func checkContentType(ct string) contentTypeCheck {
	if c, ok := contentTypes.get(ct); ok {
		return c
	}
	var c contentTypeCheck
	_, _, err := mime.ParseMediaType(ct)
	c.parses = err == nil
	if t := strings.TrimSpace(ct); t != "" {
		_, _, err := mime.ParseMediaType(t)
		c.valid = err == nil
	}
	if len(ct) <= memoKeyMax {
		contentTypes.put(strings.Clone(ct), c)
	}
	return c
}
