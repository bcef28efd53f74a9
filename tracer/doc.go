// Package tracer is the module of the tracer service (DESIGN §8): it
// indexes the platform's spans, function logs, platform events and the
// lineage of user streams, and answers the API and web UI on :8082. See
// docs/tracer.md.
package tracer
