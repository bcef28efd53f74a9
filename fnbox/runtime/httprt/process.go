package httprt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/buttercompass/butter/fnbox/runtime"
)

// process is one running function server.
type process struct {
	cmd    *osexec.Cmd
	argv   []string
	url    string
	conns  *conns
	stderr *runtime.LineWriter
	stdout *runtime.LineWriter
	// exitCtx is cancelled when the process exited; err is then its exit
	// status.
	exitCtx context.Context
	err     error
}

// startProcess starts argv serving on a free port and waits until the port
// accepts connections.
func startProcess(ctx context.Context, argv []string, dir string, env []string, stdout, stderr io.Writer) (*process, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("pick a port for %s: %w", argv[0], err)
	}
	cmd := osexec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(env, EnvPort+"="+strconv.Itoa(port))
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p := &process{cmd: cmd, argv: argv, url: "http://" + addr, conns: &conns{addr: addr},
		stdout: &runtime.LineWriter{Dst: stdout}, stderr: &runtime.LineWriter{Dst: stderr}}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	// Own process group, so stopping the server stops what it started too.
	cmd.SysProcAttr = runtime.ProcAttr()
	// A grandchild holding stdout must not keep Wait hanging, or a dead
	// server would never be seen as dead and restarted.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %v: %w", argv[0], err, runtime.ErrLoad)
	}
	exitCtx, exited := context.WithCancel(context.Background())
	p.exitCtx = exitCtx
	go func() {
		p.err = cmd.Wait() // written before exited: read after <-exitCtx.Done()
		p.conns.close()
		p.stdout.Flush()
		p.stderr.Flush()
		exited()
	}()
	if err := p.waitReady(ctx, addr); err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before the server binds it; the server then fails to start,
// which the caller sees.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls addr until it accepts a connection.
func (p *process) waitReady(ctx context.Context, addr string) error {
	timeout := time.NewTimer(ReadyTimeout)
	defer timeout.Stop()
	// Polled often at first: a Go server listens within milliseconds, and
	// each tick of waiting is cold start. Slower servers are polled every
	// 20ms.
	wait := time.Millisecond
	tick := time.NewTimer(wait)
	defer tick.Stop()
	name := filepath.Base(p.argv[0])
	cmdline := strings.Join(append([]string{name}, p.argv[1:]...), " ")
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		wait = min(2*wait, 20*time.Millisecond)
		tick.Reset(wait)
		select {
		case <-p.exitCtx.Done():
			msg := p.stderr.Last()
			if msg == "" {
				msg = fmt.Sprint(p.err)
			}
			return fmt.Errorf("%s exited before serving $PORT: %s: %w", cmdline, msg, runtime.ErrLoad)
		case <-timeout.C:
			return fmt.Errorf("%s did not accept connections on $PORT (%s) within %v: serve HTTP on the port in $PORT: %w", cmdline, addr, ReadyTimeout, runtime.ErrLoad)
		case <-ctx.Done():
			return fmt.Errorf("start %s: %w", cmdline, ctx.Err())
		case <-tick.C:
		}
	}
}

func (p *process) dead() bool { return p.exitCtx.Err() != nil }

// exitedSoon reports whether the process exits within exitGrace, for a
// call whose connection failed.
func (p *process) exitedSoon(ctx context.Context) bool {
	t := time.NewTimer(exitGrace)
	defer t.Stop()
	select {
	case <-p.exitCtx.Done():
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return p.dead()
}

// exitErr is the exit status; call only once dead.
func (p *process) exitErr() error {
	<-p.exitCtx.Done()
	return p.err
}

// exitFailure is the failure of a call cut off by the server's death: the
// function's fault, so retried (the server restarts on the next call).
func (p *process) exitFailure() error {
	<-p.exitCtx.Done()
	msg := fmt.Sprintf("%s exited while handling the event (%v)", filepath.Base(p.argv[0]), p.err)
	if last := p.stderr.Last(); last != "" {
		msg += ": " + last
	}
	return &runtime.FunctionError{Message: msg, Stack: p.stderr.Tail()}
}

func (p *process) kill() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exitCtx.Done()
}

// stop sends SIGTERM to the process group and SIGKILL when ctx is done.
func (p *process) stop(ctx context.Context) error {
	if p.dead() {
		return nil
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal: %w", err)
	}
	select {
	case <-p.exitCtx.Done():
		return nil
	case <-ctx.Done():
		p.kill()
		return fmt.Errorf("killed after SIGTERM: %w", ctx.Err())
	}
}
