package stdio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/fnbox/runtime/ctxhttp"
)

// errHostExited fails the invocations in flight when the host process
// dies; the next Invoke starts a new one.
var errHostExited = fmt.Errorf("function host process exited: %w", runtime.ErrCrashed)

// hostConfig is how to start a host process: the Runtime's (one
// deployment, its dir as cwd) or the Pool's (shared, a private cwd).
type hostConfig struct {
	plat   platform
	prog   string   // the interpreter: plat.command, or what a pyenv shim would run
	script string   // the host program's file
	args   []string // after the script: --shared for a pool's host
	dir    string   // the host's working directory
	env    []string
	// stdout and stderr receive the process's own output: the user's in
	// process mode, output no invocation or load owns in a shared host.
	stdout, stderr io.Writer
	logger         *slog.Logger
	// output receives a shared host's {"op": "stdout"|"stderr"} messages:
	// a line an invocation or a load wrote; nil outside a pool.
	output func(m hostMsg)
}

// hostProc is one running host process and the invocations it serves.
type hostProc struct {
	cmd    *exec.Cmd
	cfg    *hostConfig
	logger *slog.Logger
	tail   *tailWriter

	wmu sync.Mutex
	w   *os.File // the host's fd 4

	done chan struct{}   // closed once the process is gone
	err  error           // why it is gone; set before done is closed
	seq  atomic.Uint64   // invocation ids
	mu   sync.Mutex      // guards invs, overdue, loading and sets
	invs map[string]*inv // invocations waiting for a reply
	// overdue are invocations that timed out and have not finished in
	// the host: past stuckGrace the host is stuck on one and is killed.
	overdue map[string]bool
	// loading are the load answers awaited, by set; sets are the sets
	// this process loaded (and has not been told to unload).
	loading map[string]chan hostMsg
	sets    map[string]bool
}

// stuckGrace is how long a host may go on with an invocation past its
// deadline. A handler that never returns (node cannot interrupt a
// synchronous loop, python cannot cancel a thread) would otherwise hold
// the host, and every later invocation would time out behind it; killed,
// the host is started again by the next invocation, as Lambda resets an
// environment after a timeout.
const stuckGrace = 5 * time.Second

// inv is one invocation in flight in a host.
type inv struct {
	id    string // the invocation's id in the protocol
	ctx   context.Context
	host  runtime.Host
	reply chan hostMsg // buffered: the reader never blocks on it

	mu    sync.Mutex
	over  bool
	calls sync.WaitGroup // context calls being served
}

// begin counts a context call; false once the invocation is over, so the
// Host is never used after Invoke returned.
func (v *inv) begin() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.over {
		return false
	}
	v.calls.Add(1)
	return true
}

// end refuses further calls and waits for those being served.
func (v *inv) end() {
	v.mu.Lock()
	v.over = true
	v.mu.Unlock()
	v.calls.Wait()
}

// startProc starts a host program that has loaded nothing yet.
func startProc(cfg *hostConfig) (*hostProc, error) {
	toHostR, toHostW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("create host pipe: %w", err)
	}
	fromHostR, fromHostW, err := os.Pipe()
	if err != nil {
		toHostR.Close()
		toHostW.Close()
		return nil, fmt.Errorf("create host pipe: %w", err)
	}
	args := append(append(append([]string{}, cfg.plat.args...), cfg.script), cfg.args...)
	cmd := exec.Command(cfg.prog, args...)
	cmd.Dir = cfg.dir
	cmd.Env = cfg.env
	cmd.ExtraFiles = []*os.File{fromHostW, toHostR} // fd 3, fd 4
	tail := &tailWriter{}
	cmd.Stdout = cfg.stdout
	cmd.Stderr = io.MultiWriter(orDiscard(cfg.stderr), tail)
	// Own process group: Close kills whatever the user's code spawned too.
	cmd.SysProcAttr = runtime.ProcAttr()
	// A grandchild holding stdout must not keep Wait (and so restarts) hanging.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		for _, f := range []*os.File{toHostR, toHostW, fromHostR, fromHostW} {
			f.Close()
		}
		return nil, fmt.Errorf("start %s host: %w (%s)", cfg.plat.name, err, cfg.plat.install)
	}
	toHostR.Close()
	fromHostW.Close()
	p := &hostProc{
		cmd: cmd, cfg: cfg, logger: cfg.logger, tail: tail, w: toHostW,
		done: make(chan struct{}), invs: map[string]*inv{},
		loading: map[string]chan hostMsg{}, sets: map[string]bool{},
	}
	go p.read(fromHostR)
	go func() {
		err := cmd.Wait()
		toHostW.Close()
		p.err = fmt.Errorf("%w: %v%s", errHostExited, err, p.tail.String())
		close(p.done)
	}()
	return p, nil
}

// load loads a set of functions into the host: a load failure is an
// error wrapping runtime.ErrLoad. The caller decides what a failure does
// to the process (a lone Runtime kills it; a pool keeps it for the other
// sets).
func (p *hostProc) load(ctx context.Context, set string, loads []loadFn, dir string) error {
	answer := make(chan hostMsg, 1)
	p.mu.Lock()
	p.loading[set] = answer
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.loading, set)
		p.mu.Unlock()
	}()
	if err := p.send(loadMsg{Load: loads, Dir: dir, Set: set}); err != nil {
		return fmt.Errorf("load functions: %w", err)
	}
	timer := time.NewTimer(loadTimeout)
	defer timer.Stop()
	select {
	case m := <-answer:
		if len(m.LoadErrors) > 0 {
			return loadErr(m.LoadErrors)
		}
		p.mu.Lock()
		p.sets[set] = true
		p.mu.Unlock()
		return nil
	case <-p.done:
		return fmt.Errorf("load functions: %w: %w", p.err, runtime.ErrLoad)
	case <-timer.C:
		return fmt.Errorf("load functions: no answer from the %s host after %v: does the module's top-level code block? %w", p.cfg.plat.name, loadTimeout, runtime.ErrLoad)
	case <-ctx.Done():
		return fmt.Errorf("load functions: %w", ctx.Err())
	}
}

// unload tells the host to drop a set's functions; best effort, as a
// host that is gone has dropped them already.
func (p *hostProc) unload(set string) {
	p.mu.Lock()
	delete(p.sets, set)
	p.mu.Unlock()
	if err := p.send(unloadMsg{Unload: set}); err != nil {
		p.logger.Debug("unload functions", "set", set, "err", err)
	}
}

// loaded reports whether the host has set's functions.
func (p *hostProc) loaded(set string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sets[set]
}

// loadErr formats the host's load errors as one error wrapping ErrLoad,
// naming the file and line first as compilers do.
func loadErr(errs []loadError) error {
	var b strings.Builder
	for i, e := range errs {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %s (function %q)", e.Where, e.Message, e.Fn)
	}
	return fmt.Errorf("%s: %w", b.String(), runtime.ErrLoad)
}

// read dispatches the host's messages until its fd 3 closes.
func (p *hostProc) read(r io.ReadCloser) {
	defer r.Close()
	dec := json.NewDecoder(r)
	for {
		var m hostMsg
		if err := dec.Decode(&m); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
				p.logger.Error("host protocol broken; stopping the host", "err", err)
			}
			// Without its protocol channel the host is useless, even if
			// alive: make sure it goes, so done closes.
			p.kill()
			return
		}
		switch {
		case m.Ready || m.LoadErrors != nil:
			p.mu.Lock()
			answer := p.loading[m.Set]
			delete(p.loading, m.Set)
			p.mu.Unlock()
			if answer != nil {
				answer <- m
			} // else: a late answer to a load that timed out
		case m.Op == "stdout" || m.Op == "stderr":
			// In order, like logs: a line printed before the function
			// returned is written before Invoke returns.
			if p.cfg.output != nil {
				p.cfg.output(m)
			}
		case m.Op != "":
			p.call(m)
		case m.ID != "":
			p.mu.Lock()
			v := p.invs[m.ID]
			delete(p.invs, m.ID)
			delete(p.overdue, m.ID)
			p.mu.Unlock()
			if v != nil {
				v.reply <- m
			} // else: a late reply to an invocation that timed out
		}
	}
}

// call serves a context call from the host. Logs are handled in order,
// right here, so a log line written before the function returned is
// recorded before Invoke returns; emits and requests block on the broker,
// so they run on their own goroutines.
func (p *hostProc) call(m hostMsg) {
	p.mu.Lock()
	v := p.invs[m.ID]
	p.mu.Unlock()
	if m.Op == "log" {
		if v != nil && v.begin() {
			v.host.Log(v.ctx, ctxhttp.ParseLevel(m.Level), m.Message)
			v.calls.Done()
		} else {
			p.logger.Info("log line of a finished invocation", "invocation", m.ID, "msg", m.Message)
		}
		return
	}
	if m.Call == 0 {
		p.logger.Warn("host sent a context call without a call id; ignored", "op", m.Op)
		return
	}
	if v == nil || !v.begin() {
		p.answer(answerMsg{Call: m.Call, Error: &wireError{Message: "the invocation is over", Code: ctxhttp.CodeUnknownInvocation}})
		return
	}
	go func() {
		defer v.calls.Done()
		data, ct, err := decodeData(m.Data, m.ContentType, m.Base64)
		if err != nil {
			p.answer(answerMsg{Call: m.Call, Error: &wireError{Message: err.Error(), Code: ctxhttp.CodeBadRequest}})
			return
		}
		e := runtime.Emit{Stream: m.Stream, Data: data, ContentType: ct, Type: m.Type, Subject: m.Subject, Key: m.Key}
		switch m.Op {
		case "emit":
			err = v.host.Emit(v.ctx, e)
			if err == nil {
				p.answer(answerMsg{Call: m.Call, OK: true})
				return
			}
		case "request":
			var res runtime.Result
			res, err = v.host.Request(v.ctx, e)
			if err == nil {
				p.answer(encodeAnswer(m.Call, res))
				return
			}
		default:
			err = fmt.Errorf("unknown context operation %q: use emit, request or log", m.Op)
		}
		p.answer(answerMsg{Call: m.Call, Error: &wireError{Message: err.Error(), Code: errCode(v.ctx, err)}})
	}()
}

// errCode classifies a Host error like ctxhttp does, so both APIs report
// refusals the same way.
func errCode(ctx context.Context, err error) string {
	switch {
	case errors.Is(err, runtime.ErrUndeclaredStream):
		return ctxhttp.CodeUndeclaredStream
	case ctx.Err() != nil || errors.Is(err, runtime.ErrTimeout):
		return ctxhttp.CodeTimeout
	}
	return ctxhttp.CodeFailed
}

// answer sends a call's answer; a failure means the host is going away,
// which the invocation notices through done.
func (p *hostProc) answer(a answerMsg) {
	if err := p.send(a); err != nil {
		p.logger.Debug("answer context call", "err", err)
	}
}

// send writes one message line to the host.
func (p *hostProc) send(v any) error {
	var b []byte
	if m, ok := v.(invokeMsg); ok {
		b = m.appendJSON(make([]byte, 0, m.size()+1)) // the hot path, without reflection
	} else {
		var err error
		if b, err = json.Marshal(v); err != nil {
			return fmt.Errorf("encode message for host: %w", err)
		}
	}
	b = append(b, '\n')
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if _, err := p.w.Write(b); err != nil {
		return fmt.Errorf("write to host: %w", err)
	}
	return nil
}

// invoke registers an invocation and sends it.
func (p *hostProc) invoke(ctx context.Context, host runtime.Host, msg invokeMsg) (*inv, error) {
	msg.ID = strconv.FormatUint(p.seq.Add(1), 10)
	v := &inv{id: msg.ID, ctx: ctx, host: host, reply: make(chan hostMsg, 1)}
	p.mu.Lock()
	p.invs[msg.ID] = v
	p.mu.Unlock()
	if err := p.send(msg); err != nil {
		p.forget(msg.ID)
		return nil, err
	}
	return v, nil
}

// forget drops an invocation fnbox stopped waiting for and tells the host.
func (p *hostProc) forget(id string) {
	p.mu.Lock()
	_, waiting := p.invs[id]
	delete(p.invs, id)
	p.mu.Unlock()
	if waiting {
		_ = p.send(cancelMsg{Cancel: id}) // best effort: the host may be gone
	}
}

// timedOut forgets an invocation whose deadline passed and kills the host
// if it has not finished it within stuckGrace (its late reply says it did).
func (p *hostProc) timedOut(id string) {
	p.mu.Lock()
	if p.overdue == nil {
		p.overdue = map[string]bool{}
	}
	p.overdue[id] = true
	p.mu.Unlock()
	p.forget(id)
	time.AfterFunc(stuckGrace, func() {
		p.mu.Lock()
		stuck := p.overdue[id]
		delete(p.overdue, id)
		p.mu.Unlock()
		if stuck && p.alive() {
			p.logger.Warn("function host still runs an invocation past its deadline; killing it, the next invocation starts a new one", "invocation", id, "grace", stuckGrace.String())
			p.kill()
		}
	})
}

// alive reports whether the process is still running.
func (p *hostProc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop asks the host to exit by closing its input, and kills its process
// group if it has not exited when ctx is done.
func (p *hostProc) stop(ctx context.Context) error {
	p.wmu.Lock()
	p.w.Close()
	p.wmu.Unlock()
	select {
	case <-p.done:
		p.kill() // leftovers of the user's code in the group
		return nil
	case <-ctx.Done():
		p.kill()
		<-p.done
		return fmt.Errorf("stop host: %w", ctx.Err())
	}
}

// kill kills the host's process group.
func (p *hostProc) kill() {
	if p.cmd.Process != nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// tailWriter keeps the last lines written to it, to say why a host died.
type tailWriter struct {
	mu  sync.Mutex
	buf []byte
}

const tailSize = 2048

func (t *tailWriter) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > tailSize {
		t.buf = t.buf[len(t.buf)-tailSize:]
	}
	return len(b), nil
}

// String returns "; stderr: <tail>" or "" when nothing was written.
func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := string(bytes.TrimSpace(t.buf))
	if s == "" {
		return ""
	}
	return "; stderr: " + s
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
