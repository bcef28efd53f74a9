// Package ctxhttp serves the function context API (emit, request, log) over
// HTTP, for functions that run in their own processes and cannot share
// fnbox's memory: exec commands, http servers and Go SDK programs (DESIGN
// §5). One Server serves every invocation of a runtime; each invocation is
// registered with its Host and gets an unguessable id that the function
// sends back in the Butter-Invocation header, so a call always reaches the
// Host of the invocation that made it.
//
// The API, relative to $BUTTER_CONTEXT_URL (every request needs the header
// Butter-Invocation: $BUTTER_INVOCATION):
//
//	POST /emit    {"stream", "data", "dataBase64", "contentType", "type", "subject", "key"}
//	              → 204; 403 {"error","code":"undeclared_stream"} when refused
//	POST /request same body → 200 with the reply's data as the body and its
//	              content type; 204 when the reply has no data
//	POST /log     {"level": "info", "message": "..."}, or any text body as
//	              the message → 204
//
// data is any JSON value: a string is sent as text/plain, anything else as
// application/json, unless contentType says otherwise; dataBase64 carries
// binary data instead. Errors answer {"error": message, "code": code}, with
// 404 for an unknown or finished invocation, 400 for a bad body, 504 when
// the invocation's deadline passed and 502 when fnbox failed.
package ctxhttp

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/buttercompass/butter/fnbox/runtime"
)

// Names shared with the functions' side of the API.
const (
	// HeaderInvocation carries the invocation id on every call.
	HeaderInvocation = "Butter-Invocation"
	// EnvURL is the environment variable holding the server's base URL.
	EnvURL = "BUTTER_CONTEXT_URL"
	// EnvInvocation is the environment variable holding the invocation id,
	// for platforms that start a process per invocation (exec).
	EnvInvocation = "BUTTER_INVOCATION"
)

// Error codes in error answers, so functions can tell a refusal from a
// failure without parsing messages.
const (
	CodeUndeclaredStream  = "undeclared_stream"
	CodeUnknownInvocation = "unknown_invocation"
	CodeBadRequest        = "bad_request"
	CodeTimeout           = "timeout"
	CodeFailed            = "failed"
)

// maxBody bounds a call's body: events are Kafka records, which default to
// a 1 MiB limit, so anything much larger cannot be written anyway.
const maxBody = 8 << 20

// Server is the context API endpoint of one runtime. It is safe for
// concurrent use.
type Server struct {
	ln     net.Listener
	srv    *http.Server
	logger *slog.Logger

	mu   sync.Mutex
	invs map[string]*invocation
}

// invocation is one registered invocation; calls counts the calls being
// served so done can wait for them and the Host is never used after
// Invoke returned.
type invocation struct {
	ctx   context.Context
	host  runtime.Host
	mu    sync.Mutex
	over  bool
	calls sync.WaitGroup
}

// Listen starts a Server on addr; "127.0.0.1:0" picks a free loopback port,
// which is what runtimes use: only processes on this machine need it.
// A nil logger discards.
func Listen(addr string, logger *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for the context API on %s: %w", addr, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{ln: ln, logger: logger, invs: map[string]*invocation{}}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("context API server stopped", "err", err)
		}
	}()
	return s, nil
}

// URL returns the base URL functions call, the value of BUTTER_CONTEXT_URL.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops the server; calls still running are cut off when ctx is done.
func (s *Server) Close(ctx context.Context) error {
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
		return fmt.Errorf("close context API server: %w", err)
	}
	return nil
}

// Register ties an invocation to host until done is called, and returns
// the id the function must send in HeaderInvocation. Calls are served with
// ctx, the invocation's context. done waits for calls in progress, so call
// it before Invoke returns.
func (s *Server) Register(ctx context.Context, host runtime.Host) (id string, done func()) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("read random invocation id: %v", err)) // crypto/rand never fails on Linux
	}
	id = hex.EncodeToString(b[:])
	inv := &invocation{ctx: ctx, host: host}
	s.mu.Lock()
	s.invs[id] = inv
	s.mu.Unlock()
	return id, func() {
		s.mu.Lock()
		delete(s.invs, id)
		s.mu.Unlock()
		inv.mu.Lock()
		inv.over = true
		inv.mu.Unlock()
		inv.calls.Wait()
	}
}

// begin looks up the invocation of r and counts a call on it; false means
// it is unknown or over.
func (s *Server) begin(r *http.Request) (*invocation, bool) {
	s.mu.Lock()
	inv := s.invs[r.Header.Get(HeaderInvocation)]
	s.mu.Unlock()
	if inv == nil {
		return nil, false
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.over {
		return nil, false
	}
	inv.calls.Add(1)
	return inv, true
}

// EmitBody is the body of /emit and /request.
type EmitBody struct {
	Stream      string          `json:"stream"`
	Data        json.RawMessage `json:"data,omitempty"`
	DataBase64  string          `json:"dataBase64,omitempty"`
	ContentType string          `json:"contentType,omitempty"`
	Type        string          `json:"type,omitempty"`
	Subject     string          `json:"subject,omitempty"`
	Key         string          `json:"key,omitempty"`
}

// LogBody is the JSON body of /log.
type LogBody struct {
	Level   string `json:"level,omitempty"`
	Message string `json:"message"`
}

// ServeHTTP serves the API; it is exported so the API can be mounted on
// another server too.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		fail(w, http.StatusMethodNotAllowed, CodeBadRequest, "use POST")
		return
	}
	op := strings.TrimPrefix(r.URL.Path, "/")
	if op != "emit" && op != "request" && op != "log" {
		fail(w, http.StatusNotFound, CodeBadRequest, fmt.Sprintf("no operation %q: use /emit, /request or /log", r.URL.Path))
		return
	}
	inv, ok := s.begin(r)
	if !ok {
		fail(w, http.StatusNotFound, CodeUnknownInvocation,
			"unknown or finished invocation: send the "+HeaderInvocation+" header the invocation was given, while it runs")
		return
	}
	defer inv.calls.Done()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		fail(w, http.StatusRequestEntityTooLarge, CodeBadRequest, fmt.Sprintf("read body: %v", err))
		return
	}
	if op == "log" {
		level, msg := ParseLog(r.Header.Get("Content-Type"), body)
		inv.host.Log(inv.ctx, level, msg)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var eb EmitBody
	if err := json.Unmarshal(body, &eb); err != nil {
		fail(w, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("decode %s body: %v", op, err))
		return
	}
	e, err := eb.Emit()
	if err != nil {
		fail(w, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	if op == "emit" {
		if err := inv.host.Emit(inv.ctx, e); err != nil {
			failHost(w, inv.ctx, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	res, err := inv.host.Request(inv.ctx, e)
	if err != nil {
		failHost(w, inv.ctx, err)
		return
	}
	if res.Data == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if res.ContentType != "" {
		w.Header().Set("Content-Type", res.ContentType)
	}
	w.Write(res.Data)
}

// Emit converts the body into a runtime.Emit, applying the data rules of
// the package doc.
func (b EmitBody) Emit() (runtime.Emit, error) {
	if b.Stream == "" {
		return runtime.Emit{}, errors.New("stream is required")
	}
	e := runtime.Emit{Stream: b.Stream, Type: b.Type, Subject: b.Subject, Key: b.Key, ContentType: b.ContentType}
	switch {
	case b.DataBase64 != "":
		d, err := base64.StdEncoding.DecodeString(b.DataBase64)
		if err != nil {
			return runtime.Emit{}, fmt.Errorf("dataBase64 is not base64: %w", err)
		}
		e.Data = d
		if e.ContentType == "" {
			e.ContentType = "application/octet-stream"
		}
	case len(b.Data) == 0 || string(b.Data) == "null":
		// No data: an event with an empty body, as emit(stream) means.
	default:
		var s string
		isString := json.Unmarshal(b.Data, &s) == nil
		switch {
		case isString && (e.ContentType == "" || !runtime.IsJSON(e.ContentType)):
			e.Data = []byte(s)
			if e.ContentType == "" {
				e.ContentType = "text/plain"
			}
		default:
			e.Data = []byte(b.Data)
			if e.ContentType == "" {
				e.ContentType = "application/json"
			}
		}
	}
	return e, nil
}

// ParseLog reads a /log body: {"level","message"} when it is JSON of that
// shape, else the whole body is an info message (so `curl --data-binary`
// of a text line works).
func ParseLog(contentType string, body []byte) (slog.Level, string) {
	var lb LogBody
	if runtime.IsJSON(contentType) || (len(body) > 0 && body[0] == '{') {
		if err := json.Unmarshal(body, &lb); err == nil && lb.Message != "" {
			return ParseLevel(lb.Level), lb.Message
		}
	}
	return slog.LevelInfo, strings.TrimRight(string(body), "\r\n")
}

// ParseLevel maps a function's level name to slog; unknown names are info,
// because a log line must never be lost over its level.
func ParseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug", "trace":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error", "fatal", "critical":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// failHost answers a Host error with a status that says whose fault it is.
func failHost(w http.ResponseWriter, ctx context.Context, err error) {
	switch {
	case errors.Is(err, runtime.ErrUndeclaredStream):
		fail(w, http.StatusForbidden, CodeUndeclaredStream, err.Error())
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, runtime.ErrTimeout):
		fail(w, http.StatusGatewayTimeout, CodeTimeout, err.Error())
	default:
		fail(w, http.StatusBadGateway, CodeFailed, err.Error())
	}
}

// fail writes an error answer.
func fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg, "code": code})
}
