package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/spf13/cobra"

	"github.com/buttercompass/butter/deployer/gobuild"
	"github.com/buttercompass/butter/fnbox/runtime"
	"github.com/buttercompass/butter/fnbox/runtime/platforms"
	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/envelope"
)

func (a *app) fnCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "fn", Short: "Work on functions locally"}
	cmd.AddCommand(a.fnTestCmd())
	return cmd
}

func (a *app) fnTestCmd() *cobra.Command {
	var (
		eventFile, fnName string
		timeout           time.Duration
	)
	cmd := &cobra.Command{
		Use:   "test PATH --event FILE|-",
		Short: "Run a function on one event, locally, with nothing else running",
		Long: `Run a function of a deployment (PATH: a directory holding butter.yaml, or the
descriptor itself) on one event and print its logs, the events it emits and
its result. No broker or deployer is needed: emits are printed, not written.
The event is a CloudEvent in JSON (structured mode), or any other JSON value,
which becomes the data of an event of type butter.cli.event.`,
		Example: `  butter fn test examples/enrich --event order.json
  echo '{"total": 10}' | butter fn test examples/enrich --event -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if eventFile == "" {
				return errors.New("--event is required: a JSON file, or - for stdin")
			}
			dir, file := args[0], filepath.Join(args[0], "butter.yaml")
			if st, err := os.Stat(dir); err == nil && !st.IsDir() {
				dir, file = filepath.Dir(dir), dir
			}
			d, err := descriptor.ParseFile(file)
			if err != nil {
				return err
			}
			if d.Platform == descriptor.PlatformGo {
				// Built the way the deployer builds it, in a copy, so the
				// user's directory gets no build output.
				tmp, err := os.MkdirTemp("", "butter-fn-test-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				if dir, d, err = buildGo(cmd.Context(), tmp, dir, file, d); err != nil {
					return err
				}
			}
			fn, err := pickFunction(d, fnName)
			if err != nil {
				return err
			}
			ev, err := a.readEvent(eventFile)
			if err != nil {
				return err
			}
			start, ok := platforms.All()[d.Platform]
			if !ok {
				return fmt.Errorf("butter fn test cannot run platform %s (%s) locally", d.Platform, file)
			}
			ctx := cmd.Context()
			rt, err := start(ctx, runtime.Spec{Deployment: d, Functions: []string{fn.Name}, Dir: dir,
				Stdout: prefixWriter{a.io.Out, "stdout: "}, Stderr: prefixWriter{a.io.Out, "stderr: "}})
			if err != nil {
				return err
			}
			defer rt.Close(context.WithoutCancel(ctx))
			host := &printHost{out: a.io.Out, fn: fn}
			res, err := rt.Invoke(ctx, runtime.Invocation{
				Function: fn.Name,
				Events:   []envelope.Delivery{{Event: ev, Stream: "test", Timestamp: time.Now()}},
				Deadline: time.Now().Add(timeout),
			}, host)
			if err != nil {
				return fmt.Errorf("%s failed: %w", fn.Name, err)
			}
			if res.Data == nil {
				fmt.Fprintln(a.io.Out, "result: none (nothing is written to out)")
				return nil
			}
			fmt.Fprintf(a.io.Out, "result (%s): %s\n", res.ContentType, res.Data)
			return nil
		},
	}
	cmd.Flags().StringVar(&eventFile, "event", "", "the event: a JSON file, or - for stdin")
	cmd.Flags().StringVar(&fnName, "fn", "", "function name (default: the deployment's only function)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "invocation deadline")
	return cmd
}

func pickFunction(d *descriptor.Descriptor, name string) (*descriptor.Function, error) {
	var names []string
	for i := range d.Functions {
		if d.Functions[i].Name == name || (name == "" && len(d.Functions) == 1) {
			return &d.Functions[i], nil
		}
		names = append(names, d.Functions[i].Name)
	}
	return nil, fmt.Errorf("--fn %q: choose one of %v", name, names)
}

// readEvent reads a structured CloudEvent, or wraps any other JSON value.
func (a *app) readEvent(file string) (event.Event, error) {
	var data []byte
	var err error
	if file == "-" {
		data, err = io.ReadAll(a.io.In)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return event.Event{}, fmt.Errorf("read --event: %w", err)
	}
	if !json.Valid(data) {
		return event.Event{}, fmt.Errorf("--event %s: not JSON", file)
	}
	var probe struct {
		SpecVersion string `json:"specversion"`
	}
	if json.Unmarshal(data, &probe) == nil && probe.SpecVersion != "" {
		var e event.Event
		if err := json.Unmarshal(data, &e); err != nil {
			return e, fmt.Errorf("--event %s: not a valid CloudEvent: %w", file, err)
		}
		return e, nil
	}
	e := envelope.New("butter://cli", "butter.cli.event")
	e.SetDataContentType("application/json")
	e.DataEncoded = data
	return e, nil
}

// printHost is the function context of butter fn test: it prints emits
// and logs instead of writing them, and refuses undeclared streams as
// fnbox would.
type printHost struct {
	mu  sync.Mutex
	out io.Writer
	fn  *descriptor.Function
}

var _ runtime.Host = (*printHost)(nil)

func (h *printHost) Emit(_ context.Context, e runtime.Emit) error {
	if e.Stream != h.fn.Bindings.Out && !slices.Contains(h.fn.Bindings.Emits, e.Stream) {
		return fmt.Errorf("emit to %q: %w", e.Stream, runtime.ErrUndeclaredStream)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	fmt.Fprintf(h.out, "emit %s (type %q): %s\n", e.Stream, e.Type, e.Data)
	return nil
}

func (h *printHost) Request(_ context.Context, e runtime.Emit) (runtime.Result, error) {
	return runtime.Result{}, fmt.Errorf("request to %q: butter fn test has no platform to answer requests", e.Stream)
}

func (h *printHost) Log(_ context.Context, level slog.Level, msg string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fmt.Fprintf(h.out, "log %s: %s\n", level, msg)
}

// prefixWriter prefixes what a function prints, so it reads apart from the
// result.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := fmt.Fprintf(p.w, "%s%s", p.prefix, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// buildGo copies the go deployment in dir under tmp and builds its
// functions there with the deployer's builder, returning the copy and the
// descriptor to run (fn naming the binaries). The build cache is the
// user's own, so only what changed is compiled.
func buildGo(ctx context.Context, tmp, dir, file string, d *descriptor.Descriptor) (string, *descriptor.Descriptor, error) {
	src, err := os.ReadFile(file)
	if err != nil {
		return "", nil, err
	}
	code := filepath.Join(tmp, "code")
	if err := os.CopyFS(code, os.DirFS(dir)); err != nil {
		return "", nil, fmt.Errorf("copy %s to build it: %w", dir, err)
	}
	cfg := gobuild.Config{Dir: filepath.Join(tmp, "build")}
	if out, err := exec.CommandContext(ctx, "go", "env", "GOCACHE").Output(); err == nil {
		cfg.Cache = strings.TrimSpace(string(out))
	}
	if err := gobuild.New(cfg).Build(ctx, code, filepath.Base(file), src, d); err != nil {
		return "", nil, err
	}
	run, err := descriptor.ParseFile(filepath.Join(code, gobuild.RunDescriptor))
	if err != nil {
		return "", nil, err
	}
	return code, run, nil
}
