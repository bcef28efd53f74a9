package bench

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Units of the figures in a report.
const (
	// UnitEventsPerSecond is a throughput: higher is better.
	UnitEventsPerSecond = "events/s"
	// UnitMilliseconds is a latency: lower is better.
	UnitMilliseconds = "ms"
	// UnitRequestsPerSecond is a rate of HTTP requests answered: higher is
	// better.
	UnitRequestsPerSecond = "requests/s"
)

// ErrBadRow is wrapped by Report.Add when a row cannot be placed in the
// table; the message says which row and why.
var ErrBadRow = errors.New("bad report row")

// Row is one line of the report table: a figure measured in this run and,
// unless it is a raw limit itself, the raw limit it is compared with.
type Row struct {
	// Name says what was measured, e.g. RowProduce; unique in a report.
	Name string
	// Value is the figure, in Unit.
	Value float64
	// Unit is UnitEventsPerSecond or UnitMilliseconds (any string works,
	// but a row and its limit must share one).
	Unit string
	// Limit is the Name of the raw Kafka row this figure is compared with.
	// Empty means the row is a raw limit: it compares with itself.
	Limit string
	// Count is how many events (or round trips) the figure was measured
	// over.
	Count int
	// NoLimit marks a platform figure that no raw row bounds (a rate in
	// requests/s, a timer's own lag): the table shows "—" as its limit and
	// ratio. Limit must then be empty.
	NoLimit bool
}

// Report is the outcome of one run: what machine, and the rows measured on
// it. Later parts (fnbox, gateway) add rows naming a raw row as their Limit;
// the ratio is computed when the report is written, from figures of the same
// run, so a slower or faster machine moves both sides together.
type Report struct {
	// Date is when the run started.
	Date time.Time
	// GoVersion is runtime.Version() of the measuring binary.
	GoVersion string
	// FranzGoVersion is the franz-go module version the clients used.
	FranzGoVersion string
	// GOOS and GOARCH say what the binary was built for.
	GOOS, GOARCH string
	// GOMAXPROCS and NumCPU say how many cores the run could use.
	GOMAXPROCS, NumCPU int
	// Events is N, the number of events of the throughput measurements.
	Events int
	// Requests is the number of timed request→reply round trips, Warmup
	// the number made before timing.
	Requests, Warmup int
	// RecordBytes is the mean size of a produced record: key, value and
	// headers, as the protocol carries them before batch framing.
	RecordBytes float64
	// Elapsed is how long the whole run took.
	Elapsed time.Duration
	// LoadAverage is the machine's 1-minute load average when the run
	// started (/proc/loadavg), or "" where it cannot be read: other work
	// on the machine shares the cores the figures were measured on.
	LoadAverage string

	rows  []Row
	notes []string
}

// Note adds a paragraph saying what rows not among the raw ones measure,
// printed as a bullet after those of the raw rows; the same text twice is
// printed once.
func (r *Report) Note(text string) {
	if !slices.Contains(r.notes, text) {
		r.notes = append(r.notes, text)
	}
}

// Add appends rows. A row must have a name not yet used and, when it names
// a Limit, that limit must be a raw row already added with the same unit, so
// a typo cannot produce a ratio against nothing.
func (r *Report) Add(rows ...Row) error {
	for _, row := range rows {
		if row.Name == "" {
			return fmt.Errorf("%w: a row has no name", ErrBadRow)
		}
		if _, ok := r.Row(row.Name); ok {
			return fmt.Errorf("%w: %q is already in the report", ErrBadRow, row.Name)
		}
		if row.NoLimit && row.Limit != "" {
			return fmt.Errorf("%w: %q has no limit but names %q as its limit: set one or the other", ErrBadRow, row.Name, row.Limit)
		}
		if row.Limit != "" {
			lim, ok := r.Row(row.Limit)
			switch {
			case !ok:
				return fmt.Errorf("%w: %q compares with %q, which is not in the report: add raw rows first", ErrBadRow, row.Name, row.Limit)
			case lim.Limit != "" || lim.NoLimit:
				return fmt.Errorf("%w: %q compares with %q, which is not a raw limit", ErrBadRow, row.Name, row.Limit)
			case lim.Unit != row.Unit:
				return fmt.Errorf("%w: %q is in %s but its limit %q is in %s", ErrBadRow, row.Name, row.Unit, row.Limit, lim.Unit)
			}
		}
		r.rows = append(r.rows, row)
	}
	return nil
}

// Rows returns the rows in the order they were added.
func (r *Report) Rows() []Row { return append([]Row(nil), r.rows...) }

// Row returns the row called name.
func (r *Report) Row(name string) (Row, bool) {
	for _, row := range r.rows {
		if row.Name == name {
			return row, true
		}
	}
	return Row{}, false
}

// LimitOf returns the raw row row is compared with: itself for a raw row.
func (r *Report) LimitOf(row Row) Row {
	if row.Limit == "" {
		return row
	}
	lim, _ := r.Row(row.Limit) // Add checked it exists.
	return lim
}

// Ratio returns figure ÷ raw limit: 1.0 for a raw row; below 1 a throughput
// reaches that fraction of what Kafka alone does, above 1 a latency is that
// many times Kafka's own. It is 0 for a row with NoLimit.
func (r *Report) Ratio(row Row) float64 {
	if row.NoLimit {
		return 0
	}
	lim := r.LimitOf(row)
	if lim.Value == 0 {
		return 0
	}
	return row.Value / lim.Value
}

// WriteMarkdown writes the report as the markdown of docs/benchmarks.md.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmarks\n\n")
	fmt.Fprintf(&b, "Measured %s with %s (%s/%s), franz-go %s, GOMAXPROCS=%d, NumCPU=%d; the run took %s.\n\n",
		r.Date.UTC().Format("2006-01-02 15:04 MST"), r.GoVersion, r.GOOS, r.GOARCH, r.FranzGoVersion,
		r.GOMAXPROCS, r.NumCPU, r.Elapsed.Round(100*time.Millisecond))
	if r.LoadAverage != "" {
		fmt.Fprintf(&b, "Load average when the run started: %s on %d cores. ", r.LoadAverage, r.NumCPU)
	}
	b.WriteString("The broker, the bench's clients, the gateway, the timer, the deployer, loadmon, fnbox, the function processes and containers all share this machine's cores " +
		"with whatever else runs on it, so on a small or busy machine the fnbox rows fall further below their " +
		"limits than they would on a dedicated one; exec at batch 1, a process per event, suffers most.\n\n")
	b.WriteString("What this is: the raw limits of this machine on the embedded broker (started in-process, " +
		"segments on disk in a temporary data directory, no fsync), driven by franz-go clients. The raw rows are Kafka's own: " +
		"plain franz-go records carrying the same headers as the platform's CloudEvents (binary mode: seven headers, six `ce_*` and " +
		"`content-type`), nothing decoded or encoded inside the clock. The \"(with codec)\" rows repeat them through the " +
		"platform's envelope codec (`envelope.FromRecord`, `envelope.Child`, `envelope.ToRecord`), and the codec row gives " +
		"the codec's own cost per event; ")
	fmt.Fprintf(&b, "mean record %.0f B including key and headers. Every figure of a platform part "+
		"is compared with the raw row of the same run; ratio = figure ÷ raw limit, so below 1 a rate "+
		"reaches that fraction of Kafka alone and above 1 a latency is that many times Kafka's own.\n\n", r.RecordBytes)
	fmt.Fprintf(&b, "- **%s**: %d events produced to a %d-partition topic by one client with default "+
		"linger, acks=all and idempotence; records built before the clock starts, clock stops when the last is acknowledged. "+
		"**%s**: the same with each event built (`envelope.New`) and encoded (`envelope.ToRecord`) inside the clock.\n",
		RowProduce, r.Events, benchPartitions, RowProduceCodec)
	fmt.Fprintf(&b, "- **%s**: a fresh client reads those %d events back from the first offset up to the "+
		"end offsets the broker reports, counting records without decoding them, after one untimed read of the same events; clock starts before the client is made. "+
		"**%s**: the same decoding each record with `envelope.FromRecord`.\n", RowConsume, r.Events, RowConsumeCodec)
	fmt.Fprintf(&b, "- **%s**: a consumer group member (auto-commit off) produces a child record per polled input to an "+
		"output topic (a plain record with the input's key, value and headers copied), flushes, then commits: the at-least-once "+
		"loop of a function instance at Kafka's speed. Clock runs from the partition assignment to the commit of the %dth event. "+
		"**%s**: the same loop decoding each input (`envelope.FromRecord`) and writing a real child event "+
		"(`envelope.Child`, `envelope.ToRecord`) — what the platform's own loop pays before any function runs.\n",
		RowPipeline, r.Events, RowPipelineCodec)
	fmt.Fprintf(&b, "- **%s**: %d sequential round trips after %d warm-up, linger 0 on both sides: the "+
		"requester produces a request event with `replyto` and waits for the reply; a responder with its "+
		"own client consumes requests and produces the reply.\n", rowRoundTrip, r.Requests, r.Warmup)
	for _, n := range r.notes {
		b.WriteString("- " + n + "\n")
	}
	b.WriteString("\n")
	b.WriteString("Reproduce with `make bench` (writes this file); `go run ./cmd/butter-bench -quick` in `e2e/` is a smoke run. " +
		"Figures move with the machine and its load: compare ratios, not absolute numbers, across machines. " +
		"*over* is how many events (round trips for request→reply, HTTP requests for the gateway, ticks for the timer, runs for cold start, wake and backlog, deployments for idle memory) a figure was measured over; — means no raw row bounds the figure.\n\n")

	b.WriteString("| measurement | figure | unit | over | raw Kafka limit (same run) | ratio |\n")
	b.WriteString("| --- | ---: | --- | ---: | ---: | ---: |\n")
	for _, row := range r.rows {
		limit, ratio := "—", "—"
		if !row.NoLimit {
			lim := r.LimitOf(row)
			limit, ratio = formatFigure(lim.Value), fmt.Sprintf("%.2f", r.Ratio(row))
			if row.Limit != "" {
				limit += " (" + lim.Name + ")"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %s | %s |\n", row.Name, formatFigure(row.Value), row.Unit, row.Count, limit, ratio)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// formatFigure prints large rates as whole numbers and small latencies with
// the digits that matter.
func formatFigure(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}
