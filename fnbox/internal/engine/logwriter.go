package engine

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/buttercompass/butter/proto/kit"
	"github.com/buttercompass/butter/proto/obs"
)

// LogLimits bound what one fnbox instance writes to _butter.logs: function
// stdout, stderr and context.log together. Without them a function
// printing in a loop turns each line into a record (300 MB of output made
// 307,200 records in 15 s), filling the logs topic and the producer that
// results share.
type LogLimits struct {
	// Rate is the lines per second an instance may log on average.
	// Default 1000.
	Rate int
	// Burst is how many lines may go at once before Rate applies.
	// Default 2000.
	Burst int
	// MaxLine is the longest line kept, in bytes; a longer one is cut
	// there and marked. Default 16 KiB.
	MaxLine int
	// NoticeEvery is how often at most a "N log lines dropped" record is
	// written while lines are dropped. Default 1s.
	NoticeEvery time.Duration
}

// DefaultLogLimits returns the limits of an fnbox given no flags.
func DefaultLogLimits() LogLimits {
	return LogLimits{Rate: 1000, Burst: 2000, MaxLine: 16 << 10, NoticeEvery: time.Second}
}

// Environment variables that set LogLimits fields left zero. An fnbox
// started by the deployer's process runtime inherits the environment of
// the deployer (butter up), so setting them there sets every instance's.
const (
	EnvLogRate    = "BUTTER_FNBOX_LOG_RATE"
	EnvLogBurst   = "BUTTER_FNBOX_LOG_BURST"
	EnvLogMaxLine = "BUTTER_FNBOX_LOG_MAX_LINE"
)

// withDefaults fills the zero fields from the environment, else from
// DefaultLogLimits.
func (l LogLimits) withDefaults() LogLimits {
	d := DefaultLogLimits()
	if l.Rate <= 0 {
		l.Rate = kit.EnvInt(EnvLogRate, d.Rate)
	}
	if l.Burst <= 0 {
		l.Burst = kit.EnvInt(EnvLogBurst, max(d.Burst, 2*l.Rate))
	}
	if l.MaxLine <= 0 {
		l.MaxLine = kit.EnvInt(EnvLogMaxLine, d.MaxLine)
	}
	// A zero or negative value from the environment means the default,
	// not "log nothing".
	if l.Rate <= 0 {
		l.Rate = d.Rate
	}
	if l.Burst <= 0 {
		l.Burst = max(d.Burst, 2*l.Rate)
	}
	if l.MaxLine <= 0 {
		l.MaxLine = d.MaxLine
	}
	if l.NoticeEvery <= 0 {
		l.NoticeEvery = d.NoticeEvery
	}
	return l
}

// truncatedMark ends a line that was cut; %d is LogLimits.MaxLine.
const truncatedMark = " …[truncated: line longer than %d bytes]"

// logMetrics count what the limits cost.
type logMetrics struct {
	dropped, truncated *prometheus.CounterVec
}

func newLogMetrics(reg prometheus.Registerer) *logMetrics {
	m := &logMetrics{
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "butter_fnbox_log_lines_dropped_total",
			Help: "Function log lines not written to _butter.logs because the instance was over its log rate.",
		}, []string{"deployment"}),
		truncated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "butter_fnbox_log_lines_truncated_total",
			Help: "Function log lines cut at the maximum line size.",
		}, []string{"deployment"}),
	}
	if reg != nil {
		reg.MustRegister(m.dropped, m.truncated)
	}
	return m
}

// logLimiter applies LogLimits to an instance's log lines: a token bucket
// of Rate lines per second holding up to Burst, lines cut at MaxLine, and
// instead of silence one record per NoticeEvery saying how many lines were
// dropped.
type logLimiter struct {
	lim                LogLimits
	dropped, truncated prometheus.Counter
	// write sends a record, bypassing the limiter (the drop notice).
	write func(obs.Log)
	now   func() time.Time

	mu     sync.Mutex
	tokens float64
	last   time.Time
	drops  int         // dropped since the last notice
	notice *time.Timer // pending notice; nil when none
}

func newLogLimiter(lim LogLimits, m *logMetrics, deployment string, write func(obs.Log)) *logLimiter {
	lim = lim.withDefaults()
	return &logLimiter{lim: lim, dropped: m.dropped.WithLabelValues(deployment), truncated: m.truncated.WithLabelValues(deployment),
		write: write, now: time.Now, tokens: float64(lim.Burst)}
}

// admit reports whether l may be written, cutting its message to MaxLine
// first. A refused line is counted, and a notice is scheduled.
func (lm *logLimiter) admit(l *obs.Log) bool {
	if len(l.Message) > lm.lim.MaxLine {
		cut := lm.lim.MaxLine
		for cut > 0 && !utf8.RuneStart(l.Message[cut]) {
			cut-- // whole characters only
		}
		l.Message = l.Message[:cut] + fmt.Sprintf(truncatedMark, lm.lim.MaxLine)
		lm.truncated.Inc()
	}
	lm.mu.Lock()
	defer lm.mu.Unlock()
	now := lm.now()
	if !lm.last.IsZero() {
		lm.tokens = min(float64(lm.lim.Burst), lm.tokens+now.Sub(lm.last).Seconds()*float64(lm.lim.Rate))
	}
	lm.last = now
	if lm.tokens >= 1 {
		lm.tokens--
		return true
	}
	lm.drops++
	lm.dropped.Inc()
	if lm.notice == nil {
		lm.notice = time.AfterFunc(lm.lim.NoticeEvery, lm.flush)
	}
	return false
}

// flush writes the notice of the lines dropped since the last one.
func (lm *logLimiter) flush() {
	lm.mu.Lock()
	n := lm.drops
	lm.drops, lm.notice = 0, nil
	lm.mu.Unlock()
	if n == 0 {
		return
	}
	lm.write(obs.Log{Level: obs.LevelWarn, Message: fmt.Sprintf(
		"fnbox: %d log lines dropped: over this instance's limit of %d lines/s (burst %d); see --log-rate, butter_fnbox_log_lines_dropped_total",
		n, lm.lim.Rate, lm.lim.Burst)})
}

// stop writes a pending notice now, for an engine that stops.
func (lm *logLimiter) stop() {
	lm.mu.Lock()
	t := lm.notice
	lm.mu.Unlock()
	if t != nil && t.Stop() {
		lm.flush()
	}
}

// LogWriter returns a writer that sends every line written to it to
// _butter.logs as a Log of the given origin (obs.OriginStdout or
// obs.OriginStderr) and level: what runtime.Spec's Stdout and Stderr want.
// The lines are the deployment's, not of one function or event: a runtime
// process may host several functions. Lines count against the instance's
// LogLimits; a line longer than MaxLine is cut and the rest of it, up to
// the next newline, is not buffered but skipped.
func (e *Engine) LogWriter(origin, level string) io.Writer {
	return &lineWriter{max: e.logs.lim.MaxLine, emit: func(line string) {
		e.writeLog(obs.Log{Level: level, Message: line, Origin: origin})
	}}
}

type lineWriter struct {
	// max is the longest line kept; a longer one is emitted as its first
	// max+1 bytes, so the limiter sees it is too long and marks it.
	max  int
	emit func(string)

	mu   sync.Mutex
	buf  []byte // the start of a line whose newline has not come yet
	skip bool   // within the rest of a line already emitted cut
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if w.skip {
			if i < 0 {
				return n, nil
			}
			w.skip, p = false, p[i+1:]
			continue
		}
		room := w.max + 1 - len(w.buf)
		if i < 0 || i > room {
			// No end of line within what is kept.
			if len(p) < room {
				w.buf = append(w.buf, p...)
				return n, nil
			}
			w.buf = append(w.buf, p[:room]...)
			w.emit(string(w.buf))
			w.buf, w.skip, p = w.buf[:0], true, p[room:]
			continue
		}
		line := p[:i]
		if len(w.buf) > 0 {
			w.buf = append(w.buf, line...)
			line = w.buf
		}
		w.emit(string(bytes.TrimRight(line, "\r")))
		w.buf, p = w.buf[:0], p[i+1:]
	}
	return n, nil
}
