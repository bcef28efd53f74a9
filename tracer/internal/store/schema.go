package store

// schemaVersion changes with schema; an index of another version is
// rebuilt from the topics.
const schemaVersion = 5

// schema creates the index. Times are Unix nanoseconds; JSON columns hold
// what is only ever returned whole. Tables keyed by (topic, partition,
// offset) or by span id make a record applied twice a no-op, though the
// offsets committed with each batch already prevent that.
//
// Every index is paid for by every insert, so each one is here for a
// query. Trace ids are random, so whatever is keyed by them is written
// all over its B-tree: spans are a rowid table (rows appended in arrival
// order) with a small unique index on (trace_id, span_id) for a trace's
// spans, rather than a table clustered on the trace id whose large rows
// would split pages everywhere. A partial, covering index holds the
// invoke spans only (the overview's percentiles). Spans are pruned
// through their trace, whose end time is indexed. trace_tags is looked
// up by trace id only (its primary key). Events are indexed by function
// and by dead-letter function only when they have one (partial indexes:
// the queries also ask for a non-empty one), not every request event a gateway
// writes.
const schema = `
CREATE TABLE IF NOT EXISTS offsets (
	topic TEXT NOT NULL, part INTEGER NOT NULL, next INTEGER NOT NULL,
	PRIMARY KEY (topic, part)) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS spans (
	trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_id TEXT NOT NULL,
	service TEXT NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL,
	start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,
	status TEXT NOT NULL, status_msg TEXT NOT NULL,
	deployment TEXT NOT NULL, function TEXT NOT NULL,
	attrs TEXT NOT NULL, events TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS spans_id ON spans (trace_id, span_id);
CREATE INDEX IF NOT EXISTS spans_invoke ON spans (deployment, function, start_ns, end_ns)
	WHERE name LIKE 'invoke %';

CREATE TABLE IF NOT EXISTS traces (
	trace_id TEXT PRIMARY KEY, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,
	root TEXT NOT NULL, root_service TEXT NOT NULL,
	spans INTEGER NOT NULL, errors INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS traces_start ON traces (start_ns, trace_id);
CREATE INDEX IF NOT EXISTS traces_end ON traces (end_ns);

CREATE TABLE IF NOT EXISTS trace_tags (
	trace_id TEXT NOT NULL, service TEXT NOT NULL, deployment TEXT NOT NULL, function TEXT NOT NULL,
	PRIMARY KEY (trace_id, service, deployment, function)) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS logs (
	topic TEXT NOT NULL, part INTEGER NOT NULL, off INTEGER NOT NULL,
	time_ns INTEGER NOT NULL, deployment TEXT NOT NULL, function TEXT NOT NULL,
	instance TEXT NOT NULL, level TEXT NOT NULL, message TEXT NOT NULL,
	origin TEXT NOT NULL, event_id TEXT NOT NULL, trace_id TEXT NOT NULL,
	UNIQUE (topic, part, off));
CREATE INDEX IF NOT EXISTS logs_time ON logs (time_ns, part, off);
CREATE INDEX IF NOT EXISTS logs_fn ON logs (deployment, function, time_ns);

CREATE TABLE IF NOT EXISTS events (
	stream TEXT NOT NULL, part INTEGER NOT NULL, off INTEGER NOT NULL,
	id TEXT NOT NULL, type TEXT NOT NULL, source TEXT NOT NULL, subject TEXT NOT NULL,
	time_ns INTEGER NOT NULL, causation TEXT NOT NULL, correlation TEXT NOT NULL,
	trace_id TEXT NOT NULL, function TEXT NOT NULL,
	dlq TEXT NOT NULL, dlq_function TEXT NOT NULL, batch TEXT NOT NULL,
	PRIMARY KEY (stream, part, off)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_id ON events (id);
CREATE INDEX IF NOT EXISTS events_cause ON events (causation);
CREATE INDEX IF NOT EXISTS events_fn ON events (function, time_ns) WHERE function <> '';
CREATE INDEX IF NOT EXISTS events_dlq ON events (dlq_function, time_ns) WHERE dlq_function <> '';
CREATE INDEX IF NOT EXISTS events_time ON events (time_ns);

CREATE TABLE IF NOT EXISTS causes (
	cause TEXT NOT NULL, stream TEXT NOT NULL, part INTEGER NOT NULL, off INTEGER NOT NULL,
	PRIMARY KEY (cause, stream, part, off)) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS pevents (
	part INTEGER NOT NULL, off INTEGER NOT NULL,
	id TEXT NOT NULL, type TEXT NOT NULL, source TEXT NOT NULL, time_ns INTEGER NOT NULL,
	resource TEXT NOT NULL, actor TEXT NOT NULL, category TEXT NOT NULL, severity TEXT NOT NULL,
	causation TEXT NOT NULL, correlation TEXT NOT NULL, data TEXT NOT NULL,
	UNIQUE (part, off));
CREATE INDEX IF NOT EXISTS pevents_time ON pevents (time_ns, part, off);
CREATE INDEX IF NOT EXISTS pevents_correlation ON pevents (correlation);

CREATE TABLE IF NOT EXISTS instances (
	deployment TEXT NOT NULL, function TEXT NOT NULL, instance TEXT NOT NULL,
	time_ns INTEGER NOT NULL, in_flight INTEGER NOT NULL, processed INTEGER NOT NULL,
	errors INTEGER NOT NULL, p95 REAL NOT NULL, stopping INTEGER NOT NULL,
	prev_time_ns INTEGER NOT NULL, prev_processed INTEGER NOT NULL,
	PRIMARY KEY (deployment, function, instance)) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS deployments (
	name TEXT PRIMARY KEY, version TEXT NOT NULL, actor TEXT NOT NULL,
	updated_ns INTEGER NOT NULL, functions TEXT NOT NULL) WITHOUT ROWID;
`
