// The tracer's web UI: one page routed by the URL hash, reading the JSON
// API of the same origin. Every text from the API goes in with
// textContent, never as HTML.
"use strict";

const main = document.getElementById("main");
const statusLine = document.getElementById("status");
let cleanup = []; // stops timers and event sources of the current page

// h builds an element: h("td", {class: "num"}, "3", child...).
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) {
    if (kid === undefined || kid === null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

async function api(path) {
  const resp = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(body.detail || body.title || resp.statusText);
  return body;
}

function say(text) { statusLine.textContent = text; }

function fmtMs(ms) {
  if (ms >= 1000) return (ms / 1000).toFixed(2) + " s";
  if (ms >= 10) return ms.toFixed(0) + " ms";
  return ms.toFixed(2) + " ms";
}
function fmtTime(t) { return new Date(t).toLocaleTimeString(); }
function fmtRate(r) { return r >= 10 ? r.toFixed(0) : r.toFixed(1); }
function timeEl(t) { return h("time", { datetime: t }, fmtTime(t)); }
function hashLink(text, route, params) {
  const q = params ? "?" + new URLSearchParams(params).toString() : "";
  return h("a", { href: "#/" + route + q }, text);
}

function spark(values) {
  const w = 80, hgt = 18, max = Math.max(1, ...values);
  const pts = values.map((v, i) => `${(i * w) / Math.max(1, values.length - 1)},${hgt - (v / max) * hgt}`).join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", w);
  svg.setAttribute("height", hgt);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "events per second, last " + values.length + " samples");
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", pts);
  svg.append(line);
  return svg;
}

function every(ms, f) {
  f();
  const id = setInterval(f, ms);
  cleanup.push(() => clearInterval(id));
}

// follow opens a server-sent event stream and calls onItem for each item.
function follow(path, onItem) {
  const es = new EventSource(path);
  es.onmessage = (m) => { try { onItem(JSON.parse(m.data)); } catch (e) { /* ignore a bad line */ } };
  es.onerror = () => say("live stream interrupted; reconnecting…");
  es.onopen = () => say("live");
  cleanup.push(() => es.close());
  return es;
}

function logList(label) {
  return h("ol", { class: "log", "aria-label": label, "aria-live": "polite", tabindex: "0" });
}
function logLine(l) {
  return h("li", { class: "lvl-" + l.level },
    timeEl(l.time), " ", h("strong", {}, l.level.toUpperCase()), " ",
    l.function ? `${l.deployment}/${l.function} ` : `${l.deployment} `,
    l.message,
    l.traceId ? [" ", hashLink("trace", "trace/" + l.traceId)] : null);
}
function appendLog(list, l, maxLines) {
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  list.append(logLine(l));
  while (list.children.length > maxLines) list.firstChild.remove();
  if (atBottom) list.scrollTop = list.scrollHeight;
}

// ---- pages ----

const rateHistory = {}; // deployment/function → recent events/s, for sparklines

async function overviewPage() {
  const table = h("table", {},
    h("caption", {}, "Deployments and their functions (live, every 2 s)"),
    h("thead", {}, h("tr", {},
      ...["Deployment", "Function", "Inputs → out", "Replicas", "Lag", "In/s", "Out/s", "Throughput", "Errors", "Dead letters", "p50", "p99"]
        .map((c, i) => h("th", { scope: "col", class: i >= 3 && i != 7 ? "num" : null }, c)))),
    h("tbody", {}));
  const empty = h("p", { class: "muted", hidden: true }, "No deployments yet. Deploy one with ",
    h("code", {}, "butter deploy DIR"), ".");
  main.replaceChildren(h("h2", {}, "Overview"), table, empty);
  follow("/v1/overview?follow=1", (ov) => {
    const rows = [];
    for (const d of ov.deployments) {
      d.functions.forEach((f, i) => {
        const key = d.name + "/" + f.name;
        const hist = (rateHistory[key] = (rateHistory[key] || []).concat(f.eventsInPerSec).slice(-30));
        rows.push(h("tr", {},
          i === 0 ? h("th", { scope: "rowgroup", rowspan: d.functions.length },
            hashLink(d.name, "deployment/" + encodeURIComponent(d.name)), h("div", { class: "muted" }, d.version)) : null,
          h("td", {}, f.name),
          h("td", {}, (f.inputs || []).join(", "), f.out ? " → " + f.out : ""),
          h("td", { class: "num" + (f.replicas === 0 ? " muted" : "") }, f.replicas),
          h("td", { class: "num" }, f.lag < 0 ? "?" : f.lag),
          h("td", { class: "num" }, fmtRate(f.eventsInPerSec)),
          h("td", { class: "num" }, fmtRate(f.eventsOutPerSec)),
          h("td", {}, spark(hist)),
          h("td", { class: "num" + (f.errors ? " error" : "") }, f.errors),
          h("td", { class: "num" + (f.deadLetters ? " error" : ""), title: f.lastDeadLetter || null }, f.deadLetters),
          h("td", { class: "num" }, f.p50Ms ? fmtMs(f.p50Ms) : "–"),
          h("td", { class: "num" }, f.p99Ms ? fmtMs(f.p99Ms) : "–")));
      });
      if (d.functions.length === 0) rows.push(h("tr", {}, h("th", { scope: "row" }, d.name), h("td", { colspan: 11, class: "muted" }, "no functions")));
    }
    table.tBodies[0].replaceChildren(...rows);
    empty.hidden = ov.deployments.length > 0;
    say("live, updated " + fmtTime(ov.time));
  });
}

async function deploymentPage(name) {
  const info = h("div", {});
  const errors = h("div", {});
  const traces = h("div", {});
  const logs = logList("Live logs of " + name);
  main.replaceChildren(h("h2", {}, "Deployment ", h("code", {}, name)), info,
    h("h3", {}, "Recent errors"), errors, h("h3", {}, "Recent traces"), traces,
    h("h3", { id: "live-logs" }, "Live logs"), logs);
  every(3000, async () => {
    try {
      const ov = await api("/v1/overview");
      const d = ov.deployments.find((x) => x.name === name);
      if (!d) { info.replaceChildren(h("p", { class: "muted" }, "Not deployed (or not yet seen by the tracer).")); return; }
      info.replaceChildren(
        h("p", {}, "Version ", h("code", {}, d.version), d.actor ? ` by ${d.actor}` : "", ", updated ", timeEl(d.updated)),
        h("table", {}, h("caption", {}, "Functions"),
          h("thead", {}, h("tr", {}, ...["Function", "Inputs", "Out", "Dead letters to", "Replicas", "Lag", "Errors", "Dead letters", "Last dead letter", "p99"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, d.functions.map((f) => h("tr", {},
            h("th", { scope: "row" }, f.name), h("td", {}, (f.inputs || []).join(", ")), h("td", {}, f.out || "–"),
            h("td", {}, f.deadLetter || "–"), h("td", { class: "num" }, f.replicas), h("td", { class: "num" }, f.lag < 0 ? "?" : f.lag),
            h("td", { class: "num" + (f.errors ? " error" : "") }, f.errors),
            h("td", { class: "num" + (f.deadLetters ? " error" : "") }, f.deadLetters),
            h("td", { class: f.lastDeadLetter ? "error" : "muted" }, f.lastDeadLetter || "none"),
            h("td", { class: "num" }, f.p99Ms ? fmtMs(f.p99Ms) : "–"))))));
      const errs = await api("/v1/logs?" + new URLSearchParams({ deployment: name, level: "error", limit: "10" }));
      errors.replaceChildren(errs.items.length ? h("ul", {}, errs.items.map((l) => h("li", {}, timeEl(l.time), " ", l.function || "", ": ",
        h("span", { class: "error" }, l.message), l.traceId ? [" ", hashLink("trace", "trace/" + l.traceId)] : null)))
        : h("p", { class: "muted" }, "No errors logged."));
      const tr = await api("/v1/traces?" + new URLSearchParams({ deployment: name, limit: "10" }));
      traces.replaceChildren(traceTable(tr.items));
    } catch (e) { say(e.message); }
  });
  follow("/v1/logs?" + new URLSearchParams({ deployment: name, follow: "1", limit: "50" }), (l) => appendLog(logs, l, 500));
}

function traceTable(items) {
  if (!items.length) return h("p", { class: "muted" }, "No traces.");
  return h("table", {}, h("thead", {}, h("tr", {}, ...["Start", "Root", "Services", "Spans", "Duration", "Status"].map((c, i) => h("th", { scope: "col", class: i === 3 || i === 4 ? "num" : null }, c)))),
    h("tbody", {}, items.map((t) => h("tr", {},
      h("td", {}, timeEl(t.start)),
      h("td", {}, hashLink(t.root || t.traceId, "trace/" + t.traceId), t.rootService ? h("span", { class: "muted" }, " (" + t.rootService + ")") : null),
      h("td", {}, (t.services || []).join(", ")),
      h("td", { class: "num" }, t.spans),
      h("td", { class: "num" }, fmtMs(t.durationMs)),
      h("td", { class: "status-" + t.status }, t.status)))));
}

function filterForm(fields, values, onSubmit) {
  const form = h("form", { class: "filters", role: "search" },
    fields.map(([name, label, opts]) => h("label", {}, label,
      opts ? h("select", { name }, opts.map(([v, l]) => h("option", { value: v, selected: values[name] === v }, l)))
        : h("input", { name, value: values[name] || "", type: "search" }))),
    h("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const p = {};
    for (const [k, v] of new FormData(form)) if (v) p[k] = v;
    onSubmit(p);
  });
  return form;
}

async function tracesPage(params) {
  const list = h("div", {});
  const more = h("button", { type: "button", hidden: true }, "Older traces");
  main.replaceChildren(h("h2", {}, "Traces"),
    filterForm([["deployment", "Deployment"], ["function", "Function"], ["status", "Status", [["", "any"], ["error", "error"]]], ["since", "Since (15m, RFC 3339)"]],
      params, (p) => { location.hash = "#/traces?" + new URLSearchParams(p); }), list, more);
  let items = [];
  async function load(cursor) {
    const q = new URLSearchParams({ ...params, limit: "50" });
    if (cursor) q.set("cursor", cursor);
    try {
      const page = await api("/v1/traces?" + q);
      items = items.concat(page.items);
      list.replaceChildren(traceTable(items));
      more.hidden = !page.next;
      more.onclick = () => load(page.next);
    } catch (e) { list.replaceChildren(h("p", { class: "error" }, e.message)); }
  }
  load();
}

// spanOrder returns spans depth first from the roots, with their depth.
function spanOrder(spans) {
  const ids = new Set(spans.map((s) => s.spanId));
  const kids = {};
  for (const s of spans) {
    const p = s.parentSpanId && ids.has(s.parentSpanId) ? s.parentSpanId : "";
    (kids[p] = kids[p] || []).push(s);
  }
  const out = [];
  const walk = (p, depth) => {
    for (const s of (kids[p] || []).sort((a, b) => new Date(a.start) - new Date(b.start))) {
      out.push([s, depth]);
      walk(s.spanId, depth + 1);
    }
  };
  walk("", 0);
  return out;
}

async function tracePage(id) {
  main.replaceChildren(h("h2", {}, "Trace ", h("code", {}, id)), h("p", { class: "muted" }, "Loading…"));
  let tr;
  try { tr = await api("/v1/traces/" + encodeURIComponent(id)); } catch (e) {
    main.replaceChildren(h("h2", {}, "Trace ", h("code", {}, id)), h("p", { class: "error" }, e.message));
    return;
  }
  const t0 = Math.min(...tr.spans.map((s) => new Date(s.start).getTime()));
  const t1 = Math.max(...tr.spans.map((s) => new Date(s.start).getTime() + s.durationMs));
  const total = Math.max(t1 - t0, 0.001);
  const details = h("section", { "aria-label": "Span details" }, h("p", { class: "muted" }, "Choose a span to see its attributes."));
  const rows = spanOrder(tr.spans).map(([s, depth]) => {
    const left = ((new Date(s.start).getTime() - t0) / total) * 100;
    const width = (s.durationMs / total) * 100;
    const bar = h("div", { class: "bar" + (s.status === "error" ? " err" : ""), title: `${s.name}: ${fmtMs(s.durationMs)}` });
    bar.style.left = left + "%";
    bar.style.width = Math.max(width, 0.2) + "%";
    const name = h("button", { type: "button", "aria-describedby": "dur-" + s.spanId }, s.name);
    name.style.paddingLeft = depth * 1.1 + "rem";
    const row = h("tr", {},
      h("td", { class: "name" }, name, h("div", { class: "muted" }, s.service, s.function ? ` · ${s.deployment}/${s.function}` : "")),
      h("td", { class: "timeline" }, h("div", { class: "track" }, bar)),
      h("td", { class: "num", id: "dur-" + s.spanId }, fmtMs(s.durationMs)),
      h("td", { class: "status-" + s.status }, s.status));
    name.addEventListener("click", () => {
      for (const r of row.parentNode.children) r.classList.remove("selected");
      row.classList.add("selected");
      showSpan(details, s);
    });
    return row;
  });
  main.replaceChildren(h("h2", {}, "Trace ", h("code", {}, id)),
    h("p", {}, `${tr.spans.length} spans over ${fmtMs(total)}, from `, timeEl(new Date(t0).toISOString())),
    h("table", { class: "waterfall" }, h("caption", {}, "Spans on a time axis (choose a name for its attributes)"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Span"), h("th", { scope: "col" }, "Timeline"), h("th", { scope: "col", class: "num" }, "Duration"), h("th", { scope: "col" }, "Status"))),
      h("tbody", {}, rows)),
    details);
}

function showSpan(details, s) {
  const attrs = { service: s.service, kind: s.kind, spanId: s.spanId, parentSpanId: s.parentSpanId || "(root)", start: s.start, durationMs: s.durationMs, status: s.status + (s.statusMessage ? ": " + s.statusMessage : ""), ...(s.attributes || {}) };
  const dl = h("dl", { class: "attrs" });
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === "") continue;
    dl.append(h("dt", {}, k), h("dd", { class: "mono" }, typeof v === "object" ? JSON.stringify(v) : String(v)));
  }
  const evs = (s.events || []).map((e) => h("li", {}, timeEl(e.time), " ", h("strong", {}, e.name), " ", h("span", { class: "mono" }, JSON.stringify(e.attributes || {}))));
  details.replaceChildren(h("h3", {}, s.name), dl, ...(evs.length ? [h("h4", {}, "Events"), h("ul", {}, evs)] : []));
  details.querySelector("h3").setAttribute("tabindex", "-1");
  details.querySelector("h3").focus();
}

function eventNode(e, current) {
  return h("div", { class: "node" + (current ? " current" : "") + (e.deadLetter ? " dead" : "") },
    h("strong", {}, e.type), " ", h("code", {}, e.id), h("br"),
    h("span", { class: "muted" }, `${e.stream}/${e.partition}@${e.offset} · `), timeEl(e.time),
    e.function ? h("span", { class: "muted" }, " · by " + e.function) : null,
    e.traceId ? [" · ", hashLink("trace", "trace/" + e.traceId)] : null,
    e.deadLetter ? h("div", { class: "error" }, `dead letter of ${e.deadLetterFunction}: ${e.deadLetter}`) : null,
    current ? null : [" · ", hashLink("lineage", "lineage", { stream: e.stream, id: e.id })]);
}

async function lineagePage(params) {
  const out = h("div", {});
  main.replaceChildren(h("h2", {}, "Event lineage"),
    filterForm([["stream", "Stream"], ["id", "Event id"]], params, (p) => { location.hash = "#/lineage?" + new URLSearchParams(p); }), out);
  if (!params.stream || !params.id) { out.replaceChildren(h("p", { class: "muted" }, "Give a stream and an event id.")); return; }
  let l;
  try { l = await api("/v1/lineage?" + new URLSearchParams({ stream: params.stream, id: params.id })); } catch (e) {
    out.replaceChildren(h("p", { class: "error" }, e.message));
    return;
  }
  // Ancestors root first, then the event, then its descendants as a tree.
  // A batch's result hangs under whichever event of its batch is here.
  const known = new Set([l.event.id, ...l.descendants.map((d) => d.id)]);
  const kids = {};
  for (const d of l.descendants) {
    const p = d.deadLetter && d.id === l.event.id ? l.event.id
      : known.has(d.causationId) ? d.causationId : ((d.batchIds || []).find((id) => known.has(id)) || l.event.id);
    (kids[p] = kids[p] || []).push(d);
  }
  const seen = new Set();
  const subtree = (id) => {
    if (seen.has(id)) return null;
    seen.add(id);
    const ks = kids[id] || [];
    return ks.length ? h("ul", {}, ks.map((k) => h("li", {}, eventNode(k, false), k.id === id ? null : subtree(k.id)))) : null;
  };
  let tree = h("li", {}, eventNode(l.event, true), subtree(l.event.id));
  for (const a of l.ancestors) tree = h("li", {}, eventNode(a, false), h("ul", {}, tree));
  out.replaceChildren(h("p", {}, `${l.ancestors.length} ancestors, ${l.descendants.length} descendants.`),
    h("ul", { class: "tree", "aria-label": "Causation tree" }, tree));
}

function eventItem(e, byId) {
  const child = e.causationId && byId.has(e.causationId);
  return h("li", { class: "sev-" + (e.severity || "info") + (child ? " child" : "") },
    timeEl(e.time), " ", h("strong", {}, e.type), " ", e.resource ? h("code", {}, e.resource) : null,
    e.actor ? h("span", { class: "muted" }, " by " + e.actor) : null,
    e.data && e.data.error ? h("div", { class: "error" }, e.data.error) : null,
    h("div", { class: "muted mono" }, "id ", e.id, e.correlationId && e.correlationId !== e.id ? [" · chain ", hashLink(e.correlationId, "events", { correlationid: e.correlationId })] : null));
}

async function eventsPage(params) {
  const list = h("ol", { class: "timeline-list", reversed: true, "aria-label": "Platform events, newest first", "aria-live": "polite" });
  main.replaceChildren(h("h2", {}, "Platform events"),
    filterForm([["type", "Type (deployment.create)"], ["resource", "Resource (deployment/NAME)"], ["actor", "Actor"], ["correlationid", "Chain (correlation id)"]],
      params, (p) => { location.hash = "#/events?" + new URLSearchParams(p); }), list);
  const byId = new Set();
  follow("/v1/platform-events?" + new URLSearchParams({ ...params, follow: "1", limit: "200" }), (e) => {
    byId.add(e.id);
    list.prepend(eventItem(e, byId));
    while (list.children.length > 1000) list.lastChild.remove();
  });
}

async function logsPage(params) {
  const logs = logList("Live logs");
  main.replaceChildren(h("h2", {}, "Logs"),
    filterForm([["deployment", "Deployment"], ["function", "Function"], ["level", "Level at least", [["", "any"], ["info", "info"], ["warn", "warn"], ["error", "error"]]], ["q", "Text"]],
      params, (p) => { location.hash = "#/logs?" + new URLSearchParams(p); }), logs);
  follow("/v1/logs?" + new URLSearchParams({ ...params, follow: "1", limit: "200" }), (l) => appendLog(logs, l, 2000));
}

async function streamsPage() {
  const out = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  main.replaceChildren(h("h2", {}, "Streams"), out);
  let page;
  try { page = await api("/v1/streams?limit=1000"); } catch (e) { out.replaceChildren(h("p", { class: "error" }, e.message)); return; }
  out.replaceChildren(h("table", {}, h("caption", {}, "Streams, their partitions and offsets"),
    h("thead", {}, h("tr", {}, ...["Stream", "Events", "Partitions (start–end)"].map((c, i) => h("th", { scope: "col", class: i === 1 ? "num" : null }, c)))),
    h("tbody", {}, page.items.map((s) => h("tr", {},
      h("th", { scope: "row" }, hashLink(s.stream, "stream/" + encodeURIComponent(s.stream)), s.internal ? h("span", { class: "muted" }, " (internal)") : null),
      h("td", { class: "num" }, s.events),
      h("td", {}, s.partitions.map((p, i) => [i ? ", " : "", hashLink(`${p.partition}: ${p.start}–${p.end}`, "stream/" + encodeURIComponent(s.stream), { partition: p.partition })])))))));
}

async function streamPage(name, params) {
  const list = h("div", {});
  const details = h("section", { "aria-label": "Event details" });
  const partition = params.partition || "0";
  main.replaceChildren(h("h2", {}, "Stream ", h("code", {}, name)),
    filterForm([["partition", "Partition"], ["offset", "From offset (negative: back from the end)"]], { partition, offset: params.offset || "-20" },
      (p) => { location.hash = "#/stream/" + encodeURIComponent(name) + "?" + new URLSearchParams(p); }),
    list, details);
  let page;
  try {
    page = await api(`/v1/streams/${encodeURIComponent(name)}/events?` + new URLSearchParams({ partition, offset: params.offset || "-20", limit: "50" }));
  } catch (e) { list.replaceChildren(h("p", { class: "error" }, e.message)); return; }
  if (!page.items.length) { list.replaceChildren(h("p", { class: "muted" }, "No events there.")); return; }
  const rows = page.items.map((ev) => {
    const open = h("button", { type: "button" }, String(ev.offset));
    open.addEventListener("click", () => {
      const dl = h("dl", { class: "attrs" });
      for (const k of Object.keys(ev.attributes).sort()) dl.append(h("dt", {}, k), h("dd", { class: "mono" }, ev.attributes[k]));
      if (ev.key) dl.append(h("dt", {}, "key"), h("dd", { class: "mono" }, ev.key));
      const data = ev.data !== undefined ? JSON.stringify(ev.data, null, 2) : (ev.dataText || "");
      details.replaceChildren(h("h3", { tabindex: "-1" }, `Event at ${name}/${ev.partition}@${ev.offset}`), dl,
        h("h4", {}, "Data" + (ev.dataBase64 ? " (base64)" : "")), h("pre", { class: "mono" }, data),
        h("p", {}, hashLink("Lineage of this event", "lineage", { stream: name, id: ev.attributes.id })));
      details.querySelector("h3").focus();
    });
    return h("tr", {}, h("td", { class: "num" }, open), h("td", { class: "mono" }, ev.attributes.id), h("td", {}, ev.attributes.type),
      h("td", {}, timeEl(ev.attributes.time || ev.timestamp)), h("td", {}, ev.raw ? "raw" : ""));
  });
  list.replaceChildren(h("table", {}, h("caption", {}, `Partition ${partition} (choose an offset for the event's attributes and data)`),
    h("thead", {}, h("tr", {}, ...["Offset", "Id", "Type", "Time", ""].map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, rows)),
    ...(page.next ? [h("p", {}, hashLink("Newer events", "stream/" + encodeURIComponent(name), { partition, offset: page.next }))] : []));
}

// ---- routing ----

function route() {
  for (const f of cleanup) f();
  cleanup = [];
  say("");
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const params = Object.fromEntries(new URLSearchParams(query || ""));
  const [page, ...rest] = path.split("/");
  const arg = decodeURIComponent(rest.join("/"));
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.page === (page || "overview") || (page === "trace" && a.dataset.page === "traces") || (page === "deployment" && a.dataset.page === "overview") || (page === "stream" && a.dataset.page === "streams")) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const pages = {
    "": () => overviewPage(),
    deployment: () => deploymentPage(arg),
    traces: () => tracesPage(params),
    trace: () => tracePage(arg),
    lineage: () => lineagePage(params),
    events: () => eventsPage(params),
    logs: () => logsPage(params),
    streams: () => streamsPage(),
    stream: () => streamPage(arg, params),
  };
  (pages[page] || pages[""])();
  document.title = (page ? page[0].toUpperCase() + page.slice(1) + " · " : "") + "Butter Compass tracer";
}

window.addEventListener("hashchange", () => { route(); main.focus(); });
route();
