// Butter Compass node host: runs every function of one deployment in this
// process (or, started with --shared, the functions of many deployments,
// each a "set") and talks to fnbox in JSON lines on fd 4 (fnbox → host)
// and fd 3 (host → fnbox), leaving stdout and stderr to the user's code.
// The protocol is described in package stdio (protocol.go).
"use strict";
const net = require("net");
const path = require("path");
const util = require("util");
const { pathToFileURL } = require("url");

// Pipe handles, not fs streams: a blocking fs.read pending in the thread
// pool would keep process.exit() from ever finishing.
const out = new net.Socket({ fd: 3, readable: false, writable: true });
function send(msg) {
  out.write(JSON.stringify(msg) + "\n");
}

// shared: this host serves many deployments' sets, loaded at any time.
const shared = process.argv.slice(2).includes("--shared");
const handlers = new Map(); // key(set, function name) → handler
const sets = new Map(); // set → [{file, module}] of the entry files it loaded
const cancelled = new Set(); // sets unloaded while they loaded
function key(set, name) {
  return set ? set + "\0" + name : name;
}

// In a shared host, what an invocation or a load writes to stdout or
// stderr goes to fnbox tagged with its set, for its deployment's logs:
// AsyncLocalStorage follows the invocation through its awaits and timers.
// Anything else (no owner) goes to the host's own stdout/stderr.
let owner = null;
if (shared) {
  const { AsyncLocalStorage } = require("async_hooks");
  owner = new AsyncLocalStorage();
  for (const [stream, op] of [[process.stdout, "stdout"], [process.stderr, "stderr"]]) {
    const write = stream.write;
    stream.write = function (chunk, encoding, cb) {
      const o = owner.getStore();
      if (!o) return write.apply(this, arguments);
      const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString(typeof encoding === "string" ? encoding : "utf8");
      send({ set: o.set, id: o.id, op, message: text });
      const done = typeof encoding === "function" ? encoding : cb;
      if (typeof done === "function") process.nextTick(done);
      return true;
    };
  }
}
const pendingCalls = new Map(); // call id → {resolve, reject}
let nextCall = 1;

// A stray exception must not take down every other function's in-flight
// work: report it on stderr (it reaches the logs) and keep serving.
process.on("uncaughtException", (err) => console.error("uncaught exception:", err));
process.on("unhandledRejection", (err) => console.error("unhandled rejection:", err));

function isJSONType(ct) {
  ct = (ct || "").split(";")[0].trim().toLowerCase();
  return ct === "application/json" || ct.endsWith("+json") || ct === "text/json";
}

// encode turns a JS value into the wire form of data: strings are text,
// Buffers binary, undefined/null nothing, anything else JSON.
function encode(v, contentType) {
  if (v === undefined || v === null) return {};
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) {
    return { data: Buffer.from(v).toString("base64"), base64: true, contentType: contentType || "application/octet-stream" };
  }
  if (typeof v === "string") return { data: v, contentType: contentType || "text/plain" };
  return { data: v, contentType: contentType || "application/json" };
}

function decode(msg) {
  if (msg.result === undefined || msg.result === null) return undefined;
  if (msg.base64) return Buffer.from(msg.result, "base64");
  return msg.result;
}

// where finds "file:line" of the user's module in an error, for load errors.
function where(err, file, rel) {
  const text = String((err && err.stack) || "");
  const idx = text.indexOf(file + ":");
  if (idx >= 0) {
    const m = /^:(\d+)/.exec(text.slice(idx + file.length));
    if (m) return rel + ":" + m[1];
  }
  return rel;
}

// load loads one function of set into handlers; entries collects the
// entry files set loaded. In a shared host each set evaluates its entry
// files afresh (a new require.cache entry, an ES module URL of its own), so
// two sets never share a handler's module; what those files require is
// cached by path as usual.
async function load(fn, dir, set, entries) {
  const file = path.resolve(dir, fn.file);
  const url = pathToFileURL(file).href + (set ? "?butter-set=" + encodeURIComponent(set) : "");
  let mod;
  try {
    try {
      if (file.endsWith(".mjs")) {
        mod = await import(url);
      } else {
        const seen = set ? entries.find((e) => e.file === file) : null;
        if (seen) {
          mod = seen.module.exports; // another function of the same set and file
        } else {
          if (set) delete require.cache[file];
          mod = require(file);
          if (set && require.cache[file]) entries.push({ file, module: require.cache[file] });
        }
      }
    } catch (err) {
      if (err && err.code === "ERR_REQUIRE_ESM") mod = await import(url);
      else throw err;
    }
  } catch (err) {
    const name = (err && err.name) || "Error";
    const message = err && err.message !== undefined ? err.message : String(err);
    return { error: { fn: fn.name, where: where(err, file, fn.file), message: name + ": " + message, stack: String((err && err.stack) || "") } };
  }
  let h = mod;
  for (const part of fn.export.split(".")) {
    h = h == null ? undefined : h[part];
  }
  if (typeof h !== "function" && mod && mod.default && typeof mod.default === "object") {
    h = fn.export.split(".").reduce((o, p) => (o == null ? undefined : o[p]), mod.default);
  }
  if (typeof h !== "function") {
    const names = mod && typeof mod === "object" ? Object.keys(mod).filter((k) => typeof mod[k] === "function") : [];
    return {
      error: {
        fn: fn.name,
        where: fn.file,
        message: `export "${fn.export}" is ${h === undefined ? "missing" : "not a function"}` +
          ` (exported functions: ${names.length ? names.join(", ") : "none"}; use exports.${fn.export} = (event, context) => ...)`,
      },
    };
  }
  return h;
}

function call(id, op, fields) {
  const call = nextCall++;
  return new Promise((resolve, reject) => {
    pendingCalls.set(call, { resolve, reject });
    send(Object.assign({ id, call, op }, fields));
  });
}

function makeContext(inv) {
  const deadlineMs = inv.deadline || 0;
  const log = (level) => (...args) => send({ id: inv.id, op: "log", level, message: util.format(...args) });
  const ctx = {
    invocationId: inv.id,
    functionName: inv.fn,
    deadline: deadlineMs ? new Date(deadlineMs) : null,
    // W3C trace context of fnbox's invoke span: parent your own spans on it.
    traceparent: inv.traceparent || null,
    tracestate: inv.tracestate || null,
    remainingMs: () => (deadlineMs ? Math.max(0, deadlineMs - Date.now()) : Infinity),
    emit: (stream, data, opts = {}) =>
      call(inv.id, "emit", Object.assign({ stream, type: opts.type, subject: opts.subject, key: opts.key }, encode(data, opts.contentType)))
        .then(() => undefined),
    request: (stream, data, opts = {}) =>
      call(inv.id, "request", Object.assign({ stream, type: opts.type, subject: opts.subject, key: opts.key }, encode(data, opts.contentType)))
        .then(decode),
    log: log("info"),
  };
  ctx.log.debug = log("debug");
  ctx.log.info = log("info");
  ctx.log.warn = log("warn");
  ctx.log.error = log("error");
  return ctx;
}

function toEvent(e) {
  return e; // the wire form is already the event users see
}

async function invoke(inv) {
  const h = handlers.get(key(inv.set, inv.fn));
  let line;
  try {
    if (!h) throw new Error(`unknown function ${inv.fn}`);
    const events = inv.events.map(toEvent);
    const result = await h(events.length === 1 && !inv.batch ? events[0] : events, makeContext(inv));
    const enc = encode(result);
    // Encoded here, so a result that cannot be sent fails as the function's error.
    line = JSON.stringify({ id: inv.id, result: enc.data, contentType: enc.contentType, base64: enc.base64 }) + "\n";
  } catch (err) {
    let message, stack;
    if (err instanceof Error) {
      message = err.message;
      stack = err.stack;
    } else {
      message = typeof err === "string" ? err : util.inspect(err);
    }
    line = JSON.stringify({ id: inv.id, error: { message, stack } }) + "\n";
  }
  out.write(line);
}

// loadSet loads a set's functions: all of them, or none when one fails.
async function loadSet(msg) {
  const set = msg.set || "";
  const errors = [];
  const loaded = [];
  const entries = [];
  for (const fn of msg.load) {
    const r = await load(fn, msg.dir, set, entries);
    if (typeof r === "function") loaded.push([fn.name, r]);
    else errors.push(r.error);
  }
  if (cancelled.delete(set) || errors.length) {
    forget(set, entries);
  } else {
    for (const [name, h] of loaded) handlers.set(key(set, name), h);
    if (set) sets.set(set, entries);
  }
  const answer = errors.length ? { loadErrors: errors } : { ready: true };
  if (set) answer.set = set;
  send(answer);
}

// forget drops a set's entry modules from require.cache, unless a later
// load of the same file replaced them.
function forget(set, entries) {
  for (const e of entries) {
    if (require.cache[e.file] === e.module) delete require.cache[e.file];
  }
}

function unload(set, loading) {
  if (loading) cancelled.add(set); // loadSet drops it when done
  for (const k of [...handlers.keys()]) {
    if (k.startsWith(set + "\0")) handlers.delete(k);
  }
  forget(set, sets.get(set) || []);
  sets.delete(set);
}

async function handle(msg) {
  if (msg.load) {
    if (owner) await owner.run({ set: msg.set || "" }, () => loadSet(msg));
    else await loadSet(msg);
  } else if (msg.call) {
    const p = pendingCalls.get(msg.call);
    if (!p) return;
    pendingCalls.delete(msg.call);
    if (msg.error) {
      const err = new Error(msg.error.message);
      err.code = msg.error.code;
      p.reject(err);
    } else {
      p.resolve(msg);
    }
  } else if (msg.id) {
    if (owner) owner.run({ set: msg.set || "", id: msg.id }, () => invoke(msg));
    else invoke(msg);
  }
}

// main reads fnbox's messages: lines split by hand from each chunk (an
// async line iterator costs a promise per line). A set's invocations wait
// while its functions load, as module code may be asynchronous (import());
// other sets', and answers to their calls, do not.
function main() {
  const input = new net.Socket({ fd: 4, readable: true, writable: false });
  let rest = "";
  const loading = new Map(); // set → messages waiting for its load
  const dispatch = (line) => {
    if (!line) return;
    const msg = JSON.parse(line);
    if (msg.unload !== undefined) {
      unload(msg.unload, loading.has(msg.unload));
      return;
    }
    const set = msg.set || "";
    if (msg.load) {
      loading.set(set, []);
      handle(msg).finally(() => {
        const queued = loading.get(set) || [];
        loading.delete(set);
        for (const m of queued) handle(m);
      });
    } else if (msg.id && msg.fn && loading.has(set)) {
      loading.get(set).push(msg);
    } else {
      handle(msg);
    }
  };
  input.setEncoding("utf8");
  input.on("data", (chunk) => {
    let start = 0;
    let nl = chunk.indexOf("\n");
    if (nl < 0) {
      rest += chunk;
      return;
    }
    if (rest) {
      dispatch(rest + chunk.slice(0, nl));
      rest = "";
      start = nl + 1;
      nl = chunk.indexOf("\n", start);
    }
    while (nl >= 0) {
      dispatch(chunk.slice(start, nl));
      start = nl + 1;
      nl = chunk.indexOf("\n", start);
    }
    rest = chunk.slice(start);
  });
  input.on("end", () => {
    // fnbox closed our input: it wants us gone, in-flight work or not.
    out.end(() => process.exit(0));
  });
  input.on("error", (err) => {
    console.error("butter node host: reading from fnbox:", err);
    process.exit(70);
  });
}

main();
