# Butter Compass python host: runs every function of one deployment in this
# process (or, started with --shared, the functions of many deployments,
# each a "set") and talks to fnbox in JSON lines on fd 4 (fnbox -> host)
# and fd 3 (host -> fnbox), leaving stdout and stderr to the user's code.
# The protocol is described in package stdio (protocol.go).
#
# Where the time goes, per event: a sync handler (the common case) never
# touches the asyncio loop. The thread that read its invocation hands the
# reading over to another worker thread and runs it itself, writing the
# reply in one write(2) (see _read). Only async handlers, and answers to
# their context calls, go through the loop.
#
# Start-up is on every cold start: modules that only some functions need
# (asyncio, inspect, traceback, datetime...) are imported when first used,
# and the asyncio loop starts only for a deployment with an async handler.
import itertools
import json
import os
import queue
import sys
import threading
import time

asyncio = None  # imported by _ensure_loop

_out_lock = threading.Lock()
# shared: this host serves many deployments' sets, loaded at any time.
_shared = "--shared" in sys.argv[1:]
_handlers = {}  # (set, function name) -> handler
_sync = {}  # (set, function name) -> True when its handler is a plain function
_modules = {}  # (set, path) -> module
_sets_lock = threading.Lock()  # guards the set bookkeeping below
_set_dirs = {}  # set -> its dir, on sys.path while a set of it is loaded
_dir_refs = {}  # dir -> how many sets put it on sys.path
_loading = set()  # sets being loaded
_cancelled = set()  # sets unloaded while they loaded
_load_ids = itertools.count(1)
_owner = None  # contextvars.ContextVar of the _Owner writing, in a shared host
_calls = {}
_tasks = {}
_call_ids = itertools.count(1)
_loop = None
_loop_lock = threading.Lock()
# Sync handlers run in threads so one blocking handler does not stall the
# others; the pool is large because handlers mostly wait on I/O. Threads
# start on demand and wait on one queue.
_max_workers = int(os.environ.get("BUTTER_PYTHON_THREADS", "64"))
_work = queue.SimpleQueue()
_workers_lock = threading.Lock()
_workers = 0
_idle = 0
_backlog = 0


def _default(o):
    import datetime
    if isinstance(o, (datetime.datetime, datetime.date)):
        return o.isoformat()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


_encode_json = json.JSONEncoder(separators=(",", ":"), default=_default).encode


def _write(line):
    with _out_lock:
        view = memoryview(line)
        while view:
            view = view[os.write(3, view):]


def send(msg):
    _write((_encode_json(msg) + "\n").encode())


def is_json_type(ct):
    ct = (ct or "").split(";")[0].strip().lower()
    return ct in ("application/json", "text/json") or ct.endswith("+json")


def encode(v, content_type=None):
    """Wire form of data: str is text, bytes binary, None nothing, else JSON."""
    if v is None:
        return {}
    if isinstance(v, (bytes, bytearray, memoryview)):
        import base64
        return {"data": base64.b64encode(bytes(v)).decode(), "base64": True,
                "contentType": content_type or "application/octet-stream"}
    if isinstance(v, str):
        return {"data": v, "contentType": content_type or "text/plain"}
    return {"data": v, "contentType": content_type or "application/json"}


def decode(msg):
    r = msg.get("result")
    if r is None:
        return None
    if msg.get("base64"):
        import base64
        return base64.b64decode(r)
    return r


class Event(dict):
    """An event: a dict that also reads as attributes (event.data)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class ButterError(Exception):
    """A refused or failed context call; code says why (undeclared_stream...)."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


def _in_loop():
    if _loop is None:
        return False
    try:
        return asyncio.get_running_loop() is _loop
    except RuntimeError:
        return False


class Context:
    """The function's view of fnbox: emit, request, log, deadline."""

    __slots__ = ("invocation_id", "function_name", "_deadline_ms", "traceparent", "tracestate")

    def __init__(self, inv):
        self.invocation_id = inv["id"]
        self.function_name = inv["fn"]
        self._deadline_ms = inv.get("deadline") or 0
        # W3C trace context of fnbox's invoke span: parent your own spans on it.
        self.traceparent = inv.get("traceparent")
        self.tracestate = inv.get("tracestate")

    @property
    def deadline(self):
        # Computed when read: most handlers never look at it.
        if not self._deadline_ms:
            return None
        import datetime
        return datetime.datetime.fromtimestamp(self._deadline_ms / 1000, tz=datetime.timezone.utc)

    def remaining_ms(self):
        if not self._deadline_ms:
            return float("inf")
        return max(0, self._deadline_ms - time.time() * 1000)

    remainingMs = remaining_ms

    def log(self, *args, level="info"):
        parts = [a if isinstance(a, str) else json.dumps(a, default=_default) for a in args]
        send({"id": self.invocation_id, "op": "log", "level": level, "message": " ".join(parts)})

    def emit(self, stream, data=None, opts=None, **kw):
        """Write an event; awaitable in async handlers, blocking in sync ones."""
        return self._call("emit", stream, data, opts, kw, lambda msg: None)

    def request(self, stream, data=None, opts=None, **kw):
        """Emit and wait for the reply event's data."""
        return self._call("request", stream, data, opts, kw, decode)

    def _call(self, op, stream, data, opts, kw, convert):
        o = dict(opts or {}, **kw)
        cid = next(_call_ids)
        msg = {"id": self.invocation_id, "call": cid, "op": op, "stream": stream,
               "type": o.get("type"), "subject": o.get("subject"), "key": o.get("key")}
        msg.update(encode(data, o.get("contentType") or o.get("content_type")))
        if _in_loop():
            fut = _loop.create_future()
            _calls[cid] = fut
            send(msg)

            async def wait():
                return convert(await fut)
            return wait()
        # A sync handler in a worker thread: block until fnbox answers (the
        # reader thread completes the future).
        cf = _Waiter()
        _calls[cid] = cf
        send(msg)
        return convert(cf.result())


class _Waiter:
    """A result a worker thread waits for, set by the reader thread."""

    __slots__ = ("_done", "_result", "_error")

    def __init__(self):
        self._done = threading.Event()
        self._result = self._error = None

    def done(self):
        return self._done.is_set()

    def set_result(self, r):
        self._result = r
        self._done.set()

    def set_exception(self, e):
        self._error = e
        self._done.set()

    def result(self):
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._result


def _ensure_loop():
    """Starts the asyncio loop in a thread of its own, once."""
    global _loop, asyncio
    with _loop_lock:
        if _loop is not None:
            return _loop
        import asyncio as aio
        import warnings
        asyncio = aio
        # The loop module code got from asyncio.get_event_loop() at import,
        # if it asked for one: the handlers must run on that loop.
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                loop = aio.get_event_loop_policy().get_event_loop()
        except RuntimeError:  # none set, on versions that do not make one
            loop = None
        if loop is None or loop.is_closed() or loop.is_running():
            loop = aio.new_event_loop()
        threading.Thread(target=loop.run_forever, name="asyncio", daemon=True).start()
        _loop = loop
        return loop


def _is_async(h):
    import inspect
    return inspect.iscoroutinefunction(h)


def _where(exc, path, rel):
    import traceback
    if isinstance(exc, SyntaxError) and exc.filename == path and exc.lineno:
        return f"{rel}:{exc.lineno}"
    line = None
    for fr in traceback.extract_tb(exc.__traceback__):
        if fr.filename == path:
            line = fr.lineno
    return f"{rel}:{line}" if line else rel


def load(fn, d, set_=""):
    """Loads one function of a set: (handler, None) or (None, load error)."""
    import importlib.util
    path = os.path.realpath(os.path.join(d, fn["file"]))
    try:
        mod = _modules.get((set_, path))
        if mod is None:
            rel = os.path.relpath(path, d)
            name = rel[:-3] if rel.endswith(".py") else rel
            name = name.replace(os.sep, ".")
            if set_:
                # A private name per load: two sets' handler.py never
                # collide, and a set is loaded afresh (its own module
                # state), also the same dir's during a rolling update.
                import re
                name = f"_butter{next(_load_ids)}_" + re.sub(r"\W", "_", name)
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None:
                raise ImportError(f"cannot import {fn['file']}: not a python module (want a .py file)")
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            spec.loader.exec_module(mod)
            with _sets_lock:  # _drop lists them from other threads
                _modules[(set_, path)] = mod
    except BaseException as e:  # noqa: BLE001 - any failure is a load error to report
        import traceback
        msg = e.msg if isinstance(e, SyntaxError) else str(e)
        return None, {"fn": fn["name"], "where": _where(e, path, fn["file"]),
                      "message": f"{type(e).__name__}: {msg}", "stack": traceback.format_exc()}
    h = mod
    for part in fn["export"].split("."):
        h = getattr(h, part, None)
    if not callable(h):
        names = [k for k, v in vars(mod).items() if callable(v) and not k.startswith("_")
                 and getattr(v, "__module__", None) == mod.__name__]
        return None, {"fn": fn["name"], "where": fn["file"],
                      "message": f"function \"{fn['export']}\" is {'missing' if h is None else 'not callable'}"
                                 f" (functions defined: {', '.join(names) or 'none'};"
                                 f" use def {fn['export']}(event, context): ...)"}
    return h, None


def _reply(inv, result):
    """The reply line of an invocation that returned result."""
    enc = encode(result)
    return (_encode_json({"id": inv["id"], "result": enc.get("data"), "contentType": enc.get("contentType"),
                          "base64": enc.get("base64", False)}) + "\n").encode()


def _error_reply(inv, e):
    import traceback
    return (_encode_json({"id": inv["id"], "error": {"message": str(e) or type(e).__name__,
                                                     "stack": traceback.format_exc()}}) + "\n").encode()


def _arg(inv):
    events = [Event(e) for e in inv["events"]]
    return events if inv.get("batch") or len(events) != 1 else events[0]


async def _await(aw):
    return await aw


def _run_sync(inv):
    """Runs a sync handler's invocation in this worker thread and replies."""
    token = _owner.set(_Owner(inv.get("set", ""), inv["id"])) if _shared else None
    try:
        h = _handlers.get((inv.get("set", ""), inv["fn"]))
        if h is None:
            raise LookupError(f"unknown function {inv['fn']}")
        result = h(_arg(inv), Context(inv))
        if result is not None and not isinstance(result, (dict, list, str, bytes, int, float)):
            import inspect
            if inspect.isawaitable(result):
                loop = _ensure_loop()  # imports asyncio
                result = asyncio.run_coroutine_threadsafe(_await(result), loop).result()
        line = _reply(inv, result)  # fails here, as the function's error, if unsendable
    except BaseException as e:  # noqa: BLE001 - the function's failure, reported to fnbox
        line = _error_reply(inv, e)
    if token is not None:
        _owner.get().flush()  # before the reply: fnbox has the lines when Invoke returns
        _owner.reset(token)
    # Sent even when fnbox gave up on it (deadline): fnbox ignores the
    # reply, which tells it the host is not stuck in the call.
    _write(line)


# _READ is the reader's role, handed from thread to thread like an
# invocation: the worker that takes it off the queue reads fd 4.
_READ = object()
_pending = []  # the start of a line longer than one read, for the next reader


def _worker(item=None):
    global _idle, _backlog
    while True:
        if item is None:
            item = _work.get()
        if item is _READ:
            _read()
        else:
            _run_sync(item)
        item = None
        with _workers_lock:
            if _backlog:
                _backlog -= 1  # takes a queued invocation next: stays busy
            else:
                _idle += 1


def _hand_off_reading():
    """Gives the reader's role to an idle or new worker; False when every
    worker is busy (the reader then keeps reading: someone must, to answer
    the busy handlers' context calls)."""
    global _workers, _idle
    with _workers_lock:
        if _idle:
            _idle -= 1
            start = False
        elif _workers < _max_workers:
            _workers += 1
            start = True
        else:
            return False
    if start:
        threading.Thread(target=_worker, daemon=True).start()
    _work.put(_READ)
    return True


def _submit(inv):
    """Hands a sync invocation to an idle worker, starting one if none is.

    A worker is reserved here, not when it takes the invocation off the
    queue: two invocations submitted at once must not both count on the
    same idle worker and run one after the other."""
    global _workers, _idle, _backlog
    with _workers_lock:
        start = False
        if _idle:
            _idle -= 1
        elif _workers < _max_workers:
            _workers += 1
            start = True
        else:
            _backlog += 1  # every worker is busy: the first to finish takes it
    if start:
        threading.Thread(target=_worker, daemon=True).start()
    _work.put(inv)


async def invoke(inv):
    if _shared:
        _owner.set(_Owner(inv.get("set", ""), inv["id"]))  # the task's own context
    try:
        h = _handlers.get((inv.get("set", ""), inv["fn"]))
        if h is None:
            raise LookupError(f"unknown function {inv['fn']}")
        result = await h(_arg(inv), Context(inv))
        line = _reply(inv, result)  # fails here, as the function's error, if unsendable
    except asyncio.CancelledError:
        # fnbox gave up on it (deadline) and ignores the reply, which tells
        # it the host is not stuck in the call.
        line = (_encode_json({"id": inv["id"], "error": {"message": "cancelled"}}) + "\n").encode()
    except BaseException as e:  # noqa: BLE001 - the function's failure, reported to fnbox
        line = _error_reply(inv, e)
    finally:
        _tasks.pop(inv["id"], None)
    if _shared:
        _owner.get().flush()
    _write(line)


def _load(msg):
    """Loads a set's functions: all of them, or none when one fails."""
    s = msg.get("set") or ""
    d = msg["dir"]
    token = _owner.set(_Owner(s, None)) if _shared else None
    try:
        # The deployment's own modules import each other as top-level
        # names. In a shared host every set's dir is on sys.path, so those
        # names are shared: the first set to import "util" gives everyone
        # its util (docs/runtimes.md).
        if s:
            with _sets_lock:
                _set_dirs[s] = d
                _dir_refs[d] = _dir_refs.get(d, 0) + 1
                if _dir_refs[d] == 1:
                    sys.path.insert(0, d)
        else:
            sys.path.insert(0, d)
        loaded, errors = [], []
        for fn in msg["load"]:
            h, err = load(fn, d, s)
            if err:
                errors.append(err)
            else:
                loaded.append((fn["name"], h, not _is_async(h)))
        with _sets_lock:
            _loading.discard(s)
            if s in _cancelled or errors:
                _cancelled.discard(s)
                if s:
                    _drop(s)
                loaded = []
            for name, h, sync in loaded:
                _handlers[(s, name)] = h
                _sync[(s, name)] = sync
        if not all(sync for _, _, sync in loaded):
            _ensure_loop()
    finally:
        if token is not None:
            _owner.get().flush()
            _owner.reset(token)
    answer = {"loadErrors": errors} if errors else {"ready": True}
    if s:
        answer["set"] = s
    send(answer)


def _drop(s):
    """Forgets a set's modules and its dir on sys.path; holds _sets_lock."""
    for key in [k for k in _modules if k[0] == s]:
        sys.modules.pop(_modules.pop(key).__name__, None)
    d = _set_dirs.pop(s, None)
    if d is not None:
        _dir_refs[d] -= 1
        if not _dir_refs[d]:
            del _dir_refs[d]
            try:
                sys.path.remove(d)
            except ValueError:
                pass


def _unload(s):
    with _sets_lock:
        if s in _loading:
            _cancelled.add(s)  # _load drops it when done
        for key in [k for k in _handlers if k[0] == s]:
            del _handlers[key]
            _sync.pop(key, None)
        _drop(s)


class _Owner:
    """Who writes to stdout/stderr in a shared host: a set's invocation or
    load. Lines are sent whole: print() writes the text and the newline
    apart."""

    __slots__ = ("set", "id", "bufs")

    def __init__(self, s, iid):
        self.set = s
        self.id = iid
        self.bufs = {"stdout": "", "stderr": ""}

    def out(self, op, text):
        msg = {"set": self.set, "op": op, "message": text}
        if self.id:
            msg["id"] = self.id
        send(msg)

    def write(self, op, s):
        buf = self.bufs[op] + s
        i = buf.rfind("\n")
        if i < 0 and len(buf) < 65536:
            self.bufs[op] = buf
            return
        if i < 0:
            i = len(buf) - 1  # a long line without a newline: pass it on
        self.bufs[op] = buf[i + 1:]
        self.out(op, buf[:i + 1])

    def flush(self):
        for op, buf in self.bufs.items():
            if buf:
                self.bufs[op] = ""
                self.out(op, buf)


class _Output:
    """sys.stdout or sys.stderr of a shared host: what an invocation or a
    load writes goes to fnbox for its deployment; anything else to the
    real stream (the pool's log)."""

    def __init__(self, real, op):
        self._real = real
        self._op = op

    def write(self, s):
        o = _owner.get()
        if o is None or not isinstance(s, str):
            return self._real.write(s)
        o.write(self._op, s)
        return len(s)

    def flush(self):
        if _owner.get() is None:
            self._real.flush()

    def __getattr__(self, name):
        return getattr(self._real, name)


def _answer(msg):
    fut = _calls.pop(msg["call"], None)
    if fut is None or fut.done():
        return
    err = msg.get("error")
    if err:
        fut.set_exception(ButterError(err.get("message"), err.get("code")))
    else:
        fut.set_result(msg)


def _cancel(iid):
    task = _tasks.get(iid)
    if task:
        task.cancel()


def handle(msg):
    """Dispatches one message from fnbox; runs in the reader thread."""
    if msg.get("id") and "fn" in msg:
        if _sync.get((msg.get("set", ""), msg["fn"]), True):
            _submit(msg)
        else:
            _loop.call_soon_threadsafe(_start_task, msg)
    elif msg.get("call"):
        fut = _calls.get(msg["call"])
        if isinstance(fut, _Waiter):
            _answer(msg)  # a worker thread waits on it: no need for the loop
        else:
            _loop.call_soon_threadsafe(_answer, msg)
    elif msg.get("cancel"):
        # A sync handler's thread cannot be stopped: it replies when done.
        if _loop is not None:
            _loop.call_soon_threadsafe(_cancel, msg["cancel"])
    elif "load" in msg:
        if _shared:
            # In a thread of its own: a slow import must not hold up the
            # other sets' invocations and answers.
            with _sets_lock:
                _loading.add(msg.get("set") or "")
            threading.Thread(target=_load, args=(msg,), name="load", daemon=True).start()
        else:
            # In the main thread; the invocations come only after the answer.
            _load(msg)
    elif "unload" in msg:
        _unload(msg["unload"])


def _start_task(msg):
    _tasks[msg["id"]] = _loop.create_task(invoke(msg))


def _read():
    """Reads fnbox's messages while this thread is the reader.

    A plain function's invocation that ends a read runs right here, once
    another worker took over reading: the event then goes from the pipe to
    the handler without a thread hand-off (one costs ~15-30 us on a busy
    machine, a third of a no-op call)."""
    global _pending
    while True:
        chunk = os.read(4, 1 << 16)
        if not chunk:
            # fnbox closed our input: it wants us gone, in-flight work or not.
            with _out_lock:
                os._exit(0)
        if b"\n" not in chunk:
            _pending.append(chunk)
            continue
        if _pending:
            _pending.append(chunk)
            chunk = b"".join(_pending)
            _pending = []
        *lines, rest = chunk.split(b"\n")
        if rest:
            _pending.append(rest)
        last = len(lines) - 1
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            msg = json.loads(line)
            if (i == last and msg.get("id") and "fn" in msg and _sync.get((msg.get("set", ""), msg["fn"]), True)
                    and _hand_off_reading()):
                _run_sync(msg)
                return
            handle(msg)


def main():
    if _shared:
        global _owner
        import contextvars
        _owner = contextvars.ContextVar("butter_owner", default=None)
        sys.stdout = _Output(sys.stdout, "stdout")
        sys.stderr = _Output(sys.stderr, "stderr")
    # The main thread is the first reader (it loads the code: the load is
    # fnbox's first message, alone) and a worker like the others after,
    # one more than BUTTER_PYTHON_THREADS: whoever reads does not count, so
    # there is always a thread to read the answers busy handlers wait for.
    _worker(_READ)


if __name__ == "__main__":
    main()
