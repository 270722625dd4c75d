// The operator dashboard: one static page with its style and a small script inline (no framework, no CDN, works
// offline). The script polls GET /admin/dashboard every second while the tab is visible, computes rates from
// successive samples, keeps the last 5 minutes for its SVG charts itself, and purges through POST /admin/purge.
// The proxy does nothing for it between two polls.
import { createHash } from "node:crypto"

const style = `
:root { --bg:#f4f6f9; --card:#fff; --line:#e3e7ee; --text:#1c2330; --muted:#6b7585; --accent:#2563eb;
  --accent-soft:rgba(37,99,235,.12); --bad:#dc2626; --bad-soft:rgba(220,38,38,.12); --ok:#15803d; --warn:#b45309; }
* { box-sizing:border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
  background:var(--bg); color:var(--text); }
header { background:#111827; color:#e5e7eb; padding:12px 24px; display:flex; align-items:baseline; gap:16px;
  flex-wrap:wrap; }
header h1 { margin:0; font-size:18px; font-weight:650; color:#fff; letter-spacing:.2px; }
header .ver { font-size:12px; color:#9ca3af; }
header #meta { color:#cbd5e1; font-size:13px; }
header #live { margin-left:auto; font-size:12.5px; color:#9ca3af; display:flex; align-items:center; gap:6px; }
.dot { width:8px; height:8px; border-radius:50%; background:#6b7280; display:inline-block; }
.dot.on { background:#22c55e; box-shadow:0 0 0 3px rgba(34,197,94,.2); }
.dot.off { background:#ef4444; }
main { max-width:1320px; margin:0 auto; padding:18px 24px 32px; display:grid; gap:16px; }
.row { display:grid; gap:16px; grid-template-columns:repeat(auto-fit,minmax(300px,1fr)); }
.row.two { grid-template-columns:repeat(auto-fit,minmax(520px,1fr)); }
.row.side { grid-template-columns:minmax(300px,1fr) minmax(420px,2fr); align-items:start; }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:14px 16px; min-width:0; }
.card h2 { margin:0 0 10px; font-size:13px; font-weight:600; color:var(--muted); text-transform:uppercase;
  letter-spacing:.6px; display:flex; align-items:center; gap:10px; }
.card h2 .aside { margin-left:auto; text-transform:none; letter-spacing:0; font-weight:400; }
.listener .name { font-size:16px; font-weight:650; }
.listener .addr { color:var(--muted); font-size:12.5px; margin-left:6px; font-family:ui-monospace,Menlo,Consolas,monospace; }
.listener .big { font-size:34px; font-weight:650; line-height:1.1; margin:8px 0 2px; font-variant-numeric:tabular-nums; }
.listener .big small { font-size:13px; font-weight:400; color:var(--muted); margin-left:6px; }
.stats { display:grid; grid-template-columns:repeat(4,1fr); gap:6px; margin-top:10px; }
.stats div { background:#f8fafc; border-radius:6px; padding:6px 8px; }
.stats b { display:block; font-size:15px; font-variant-numeric:tabular-nums; }
.stats span { font-size:11.5px; color:var(--muted); }
.totals { color:var(--muted); font-size:12.5px; margin-top:8px; }
.chips { margin-top:6px; display:flex; flex-wrap:wrap; gap:4px; }
.chip { font-size:11.5px; padding:1px 7px; border-radius:999px; background:var(--bad-soft); color:var(--bad); }
.chip.none { background:#eef2f7; color:var(--muted); }
svg.chart { width:100%; height:150px; display:block; }
svg.chart text { font-size:10.5px; fill:var(--muted); }
.legend { font-size:12px; color:var(--muted); margin-top:4px; display:flex; gap:14px; flex-wrap:wrap; }
.legend i { display:inline-block; width:10px; height:3px; border-radius:2px; vertical-align:middle; margin-right:5px; }
table { width:100%; border-collapse:collapse; font-size:13px; }
th { text-align:left; font-weight:600; color:var(--muted); font-size:12px; border-bottom:1px solid var(--line);
  padding:6px 8px; }
td { padding:6px 8px; border-bottom:1px solid #f0f2f6; vertical-align:middle; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
td.mono { font-family:ui-monospace,Menlo,Consolas,monospace; font-size:12.5px; }
td.err { color:var(--bad); max-width:320px; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
tr.empty td { color:var(--muted); text-align:center; padding:16px; }
.badge { font-size:11.5px; padding:2px 8px; border-radius:999px; font-weight:600; }
.badge.closed { background:rgba(21,128,61,.12); color:var(--ok); }
.badge.open { background:var(--bad-soft); color:var(--bad); }
.badge.half-open, .badge.waiting { background:rgba(180,83,9,.12); color:var(--warn); }
.muted { color:var(--muted); }
input[type=search], input[type=password] { font:inherit; padding:5px 9px; border:1px solid var(--line); border-radius:6px; width:220px;
  text-transform:none; letter-spacing:0; }
button { font:inherit; font-size:12.5px; padding:3px 10px; border-radius:6px; border:1px solid #cbd5e1;
  background:#fff; color:var(--text); cursor:pointer; }
button:hover { border-color:var(--accent); color:var(--accent); }
button.purge-any { text-transform:none; letter-spacing:0; font-weight:400; }
.scroll { max-height:420px; overflow:auto; }
pre#config { margin:0; max-height:360px; overflow:auto; background:#0f172a; color:#e2e8f0; border-radius:8px;
  padding:12px 14px; font:12px/1.5 ui-monospace,Menlo,Consolas,monospace; }
dl.kv { display:grid; grid-template-columns:max-content 1fr; gap:4px 16px; margin:0; font-size:13px; }
dl.kv dt { color:var(--muted); }
dl.kv dd { margin:0; font-variant-numeric:tabular-nums; overflow-wrap:anywhere; }
#toast { position:fixed; right:20px; bottom:20px; background:#111827; color:#fff; padding:10px 14px;
  border-radius:8px; font-size:13px; opacity:0; transition:opacity .2s; pointer-events:none; max-width:420px; }
#toast.show { opacity:.95; }
#auth { max-width:560px; margin:60px auto; }
`

const script = String.raw`
"use strict";
var WINDOW_MS = 300000, POLL_MS = 1000, HDR = { "x-polyproxy-dashboard": "1" };
var COLORS = ["#2563eb", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#ea580c"];
var prev = null, series = [], samples = 0, timer = null, stopped = false, lastConfig = "", last = null;

function $(id) { return document.getElementById(id); }
function h(tag, attrs) {
  var e = document.createElement(tag), k, i;
  for (k in attrs || {}) {
    var v = attrs[k];
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.slice(0, 2) === "on") e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (i = 2; i < arguments.length; i++) add(e, arguments[i]);
  return e;
}
function add(e, c) {
  if (c === null || c === undefined || c === false) return;
  if (Array.isArray(c)) { c.forEach(function (x) { add(e, x); }); return; }
  e.append(c instanceof Node ? c : String(c));
}
function fill(id, nodes) { var e = $(id); e.replaceChildren(); add(e, nodes); }
function fmt(n) { return Math.round(n).toLocaleString("en-US"); }
function rate(n) { return n >= 100 ? fmt(n) : n >= 10 ? n.toFixed(1) : n.toFixed(2).replace(/\.?0+$/, "") || "0"; }
function bytes(n) {
  var u = ["B", "KB", "MB", "GB", "TB"], i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? Math.round(n) : n.toFixed(n >= 100 ? 0 : 1)) + " " + u[i];
}
function ago(s) {
  if (s < 90) return s + " s";
  if (s < 5400) return Math.round(s / 60) + " min";
  if (s < 172800) return (s / 3600).toFixed(1) + " h";
  return (s / 86400).toFixed(1) + " d";
}
function sum(o) { var t = 0; for (var k in o) t += o[k]; return t; }
function toast(text) {
  var t = $("toast"); t.textContent = text; t.className = "show";
  clearTimeout(toast.timer); toast.timer = setTimeout(function () { t.className = ""; }, 3500);
}

function rates(d) {
  var out = {};
  var dt = prev ? (d.now - prev.now) / 1000 : 0;
  Object.keys(d.listeners).forEach(function (name) {
    var l = d.listeners[name], p = prev && prev.listeners[name];
    function r(a, b) { return p && dt > 0 ? Math.max(0, (a - b) / dt) : 0; }
    out[name] = {
      accepted: r(l.accepted, p && p.accepted), errors: r(sum(l.errors), p && sum(p.errors)),
      inb: r(l.bytesFromClient, p && p.bytesFromClient), outb: r(l.bytesFromBackend, p && p.bytesFromBackend)
    };
  });
  return out;
}

function renderListeners(d, r) {
  var names = Object.keys(d.listeners).sort();
  if (names.length === 0) { fill("listeners", h("div", { class: "card muted" }, "No listener.")); return; }
  fill("listeners", names.map(function (name, i) {
    var l = d.listeners[name], x = r[name];
    var reasons = Object.keys(l.errors).filter(function (k) { return l.errors[k] > 0; }).sort();
    return h("div", { class: "card listener", "data-listener": name },
      h("div", null, h("span", { class: "name" }, h("i", { class: "dot", style: "background:" + COLORS[i % COLORS.length] }), " ", name),
        h("span", { class: "addr" }, l.protocol !== name ? l.protocol + " · " : "", l.host + ":" + l.port)),
      h("div", { class: "big" }, h("span", { class: "active" }, fmt(l.active)), h("small", null, "open connections")),
      h("div", { class: "stats" },
        h("div", null, h("b", { class: "accepted-rate" }, rate(x.accepted)), h("span", null, "accepted/s")),
        h("div", null, h("b", { class: "error-rate" }, rate(x.errors)), h("span", null, "errors/s")),
        h("div", null, h("b", null, bytes(x.inb) + "/s"), h("span", null, "from clients")),
        h("div", null, h("b", null, bytes(x.outb) + "/s"), h("span", null, "from backends"))),
      h("div", { class: "totals" }, fmt(l.accepted) + " accepted · " + fmt(l.closed) + " closed · " +
        bytes(l.bytesFromClient) + " in · " + bytes(l.bytesFromBackend) + " out"),
      h("div", { class: "chips" }, reasons.length === 0 ? h("span", { class: "chip none" }, "no errors") :
        reasons.map(function (k) { return h("span", { class: "chip", "data-reason": k }, k + " " + fmt(l.errors[k])); })));
  }));
}

var SVGNS = "http://www.w3.org/2000/svg";
function s(tag, attrs) { var e = document.createElementNS(SVGNS, tag); for (var k in attrs) e.setAttribute(k, attrs[k]); return e; }
function nice(v) {
  if (v <= 0) return 1;
  var p = Math.pow(10, Math.floor(Math.log10(v))), m = v / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}
function span(now) {
  // Since the page opened, up to the last 5 minutes (at least 30 s): the first samples fill the width.
  var first = null;
  for (var i = 0; i < series.length && first === null; i++) if (series[i]) first = series[i].t;
  return Math.min(WINDOW_MS, Math.max(30000, first === null ? 0 : now - first));
}
function ago2(ms) { var s = Math.round(ms / 1000); return s >= 60 ? "-" + (s % 60 === 0 ? s / 60 + " min" : (s / 60).toFixed(1) + " min") : "-" + s + " s"; }
function chart(id, lines, now, unit) {
  var svg = $(id), W = Math.max(300, svg.clientWidth || 600), H = 150, L = 44, R = 8, T = 10, B = 20, SPAN = span(now);
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  svg.replaceChildren();
  var max = 0;
  lines.forEach(function (ln) { ln.points.forEach(function (p) { if (p && p[1] > max) max = p[1]; }); });
  max = nice(max * 1.1);
  function X(t) { return L + (W - L - R) * (1 - (now - t) / SPAN); }
  function Y(v) { return T + (H - T - B) * (1 - v / max); }
  [0, 0.5, 1].forEach(function (f) {
    var y = Y(max * f);
    svg.append(s("line", { x1: L, x2: W - R, y1: y, y2: y, stroke: "#e8ebf0", "stroke-width": 1 }));
    var t = s("text", { x: L - 6, y: y + 3.5, "text-anchor": "end" });
    t.textContent = (max * f >= 10 || f === 0 ? fmt(max * f) : rate(max * f)) + unit;
    svg.append(t);
  });
  [[ago2(SPAN), now - SPAN, "start"], [ago2(SPAN / 2), now - SPAN / 2, "middle"], ["now", now, "end"]].forEach(function (a) {
    var t = s("text", { x: X(a[1]), y: H - 5, "text-anchor": a[2] }); t.textContent = a[0]; svg.append(t);
  });
  lines.forEach(function (ln) {
    var segs = [[]];
    ln.points.forEach(function (p) {
      if (p === null) { if (segs[segs.length - 1].length) segs.push([]); return; }
      segs[segs.length - 1].push(X(p[0]).toFixed(1) + "," + Y(p[1]).toFixed(1));
    });
    segs.forEach(function (pts) {
      if (pts.length === 0) return;
      if (pts.length === 1) pts.push(pts[0]);
      if (ln.area) {
        var first = pts[0].split(","), lastp = pts[pts.length - 1].split(",");
        svg.append(s("path", { d: "M" + first[0] + "," + Y(0) + " L" + pts.join(" L") + " L" + lastp[0] + "," + Y(0) + " Z",
          fill: ln.area, stroke: "none" }));
      }
      svg.append(s("polyline", { points: pts.join(" "), fill: "none", stroke: ln.color, "stroke-width": ln.width || 1.6,
        "stroke-linejoin": "round" }));
    });
  });
}
function renderCharts(d) {
  var names = Object.keys(d.listeners).sort(), now = d.now;
  var total = series.map(function (p) { return p && [p.t, p.active]; });
  var lines = [{ points: total, color: "#334155", area: "rgba(51,65,85,.08)", width: 2 }];
  if (names.length > 1) names.forEach(function (n, i) {
    lines.push({ points: series.map(function (p) { return p && [p.t, p.per[n] || 0]; }), color: COLORS[i % COLORS.length], width: 1.2 });
  });
  chart("chart-active", lines, now, "");
  chart("chart-errors", [
    { points: series.map(function (p) { return p && [p.t, p.accepted]; }), color: "#94a3b8", width: 1.2 },
    { points: series.map(function (p) { return p && [p.t, p.errors]; }), color: "#dc2626", area: "rgba(220,38,38,.10)", width: 2 }
  ], now, "/s");
  var acc = 0, err = 0, peak = 0;
  series.forEach(function (p) { if (p) { acc += p.accepted; err += p.errors; if (p.active > peak) peak = p.active; } });
  fill("legend-active", [h("span", null, h("i", { style: "background:#334155" }), "all listeners"),
    names.length > 1 ? names.map(function (n, i) { return h("span", null, h("i", { style: "background:" + COLORS[i % COLORS.length] }), n); }) : null,
    h("span", null, "peak " + fmt(peak))]);
  fill("legend-errors", [h("span", null, h("i", { style: "background:#dc2626" }), "errors/s"),
    h("span", null, h("i", { style: "background:#94a3b8" }), "accepted/s"),
    h("span", { id: "error-share" }, acc > 0 ? (100 * err / acc).toFixed(1) + " % of accepted (5 min)" : "no traffic yet")]);
}

function filterText() { return $("search").value.trim().toLowerCase(); }
function renderResources(d) {
  var q = filterText(), waiting = d.coldStartWaiting || {};
  var rows = d.resources.busiest.filter(function (r) { return q === "" || r.id.toLowerCase().indexOf(q) >= 0; });
  var nWaiting = sum(waiting), nCold = Object.keys(waiting).length;
  fill("resources-count", (d.workers > 1 ? "≈" : "") + fmt(d.resources.open) + " with open connections" +
    (nWaiting > 0 ? " · cold start: " + fmt(nWaiting) + " waiting for " + nCold : ""));
  var any = $("purge-any");
  any.hidden = q === "" || rows.some(function (r) { return r.id.toLowerCase() === q; });
  any.textContent = "purge “" + $("search").value.trim() + "”";
  fill("resources", rows.length === 0 ? h("tr", { class: "empty" }, h("td", { colspan: 5 }, q ? "No busy resource matches." : "No open connection.")) :
    rows.map(function (r) {
      var w = waiting[r.id];
      return h("tr", { "data-resource": r.id },
        h("td", { class: "mono" }, r.id),
        h("td", { class: "num active" }, fmt(r.active)),
        h("td", { class: "mono backend" }, r.backend || h("span", { class: "muted" }, "not cached")),
        h("td", null, w ? h("span", { class: "badge waiting" }, "waking · " + w + " waiting") : h("span", { class: "muted" }, "—")),
        h("td", { class: "num" }, h("button", { class: "purge", title: "Drop the cached route: the next connection asks the resolver again", onclick: function () { purge(r.id); } }, "purge")));
    }));
}

function renderBackends(d) {
  var byAddr = {}, order = [];
  function get(addr) { if (!byAddr[addr]) { byAddr[addr] = { backend: addr, names: {}, resources: [] }; order.push(addr); } return byAddr[addr]; }
  d.backends.forEach(function (b) { var e = get(b.backend); e.health = b; });
  d.resources.busiest.forEach(function (r) {
    if (!r.address) return;
    var e = get(r.address); e.resources.push(r.id); if (r.backend && r.backend !== r.address) e.names[r.backend] = 1;
  });
  order.sort(function (a, b) {
    var sa = byAddr[a].health ? byAddr[a].health.state : "closed", sb = byAddr[b].health ? byAddr[b].health.state : "closed";
    var rank = { open: 0, "half-open": 1, closed: 2 };
    return rank[sa] - rank[sb] || (a < b ? -1 : 1);
  });
  fill("backends", order.length === 0 ? h("tr", { class: "empty" }, h("td", { colspan: 6 }, "No backend yet.")) :
    order.map(function (addr) {
      var e = byAddr[addr], b = e.health || { state: "closed", totalFailures: 0, consecutiveFailures: 0, retryInMs: 0 };
      var names = Object.keys(e.names);
      return h("tr", { "data-backend": addr },
        h("td", { class: "mono" }, addr, names.length ? h("div", { class: "muted" }, names.join(", ")) : null),
        h("td", null, h("span", { class: "badge " + b.state }, b.state), b.state === "open" ? h("span", { class: "muted" }, " retry in " + Math.ceil(b.retryInMs / 1000) + " s") : null),
        h("td", { class: "num" }, fmt(b.consecutiveFailures) + " / " + fmt(b.totalFailures)),
        h("td", { class: "mono" }, e.resources.length ? e.resources.slice(0, 4).join(", ") + (e.resources.length > 4 ? " +" + (e.resources.length - 4) : "") : h("span", { class: "muted" }, "—")),
        h("td", { class: "err", title: b.lastError || "" }, b.lastError || h("span", { class: "muted" }, "—")));
    }));
}

function renderInfo(d) {
  var c = d.cache, looks = c.hits + c.misses;
  var items = [["cached routes", fmt(c.size)], ["cache hits", fmt(c.hits) + (looks ? " (" + (100 * c.hits / looks).toFixed(1) + " %)" : "")],
    ["cache misses", fmt(c.misses)]];
  Object.keys(d.resolver || {}).forEach(function (k) {
    var v = d.resolver[k];
    items.push(["resolver " + k, typeof v === "number" ? fmt(v) : typeof v === "object" ? JSON.stringify(v) : String(v)]);
  });
  fill("info", items.map(function (kv) { return [h("dt", null, kv[0]), h("dd", null, kv[1])]; }));
  var text = JSON.stringify(d.config, null, 2);
  if (text !== lastConfig) { $("config").textContent = text; lastConfig = text; }
}

function render(d) {
  var r = rates(d);
  var active = 0, per = {}, acc = 0, err = 0;
  Object.keys(d.listeners).forEach(function (n) { active += d.listeners[n].active; per[n] = d.listeners[n].active; acc += r[n].accepted; err += r[n].errors; });
  if (prev) series.push({ t: d.now, active: active, per: per, accepted: acc, errors: err });
  else series.push({ t: d.now, active: active, per: per, accepted: 0, errors: 0 });
  while (series.length && (series[0] === null || series[0].t < d.now - WINDOW_MS)) series.shift();
  $("version").textContent = "v" + d.version;
  $("meta").textContent = (d.workers === 1 ? "1 process · pid " + d.pids.join(", ") : d.workers + " workers · pids " + d.pids.join(", ")) +
    " · up " + ago(d.uptimeSeconds) + " · " + (d.ready ? "ready" : "not ready (starting or draining)");
  renderListeners(d, r);
  renderCharts(d);
  renderResources(d);
  renderBackends(d);
  renderInfo(d);
  prev = d; last = d;
  samples++;
  document.body.setAttribute("data-samples", String(samples));
}

function setLive(ok, why) {
  $("live-dot").className = "dot " + (ok ? "on" : "off");
  $("live-text").textContent = ok ? "live · " + new Date().toLocaleTimeString() : "no answer" + (why ? ": " + why : "");
}

function unauthorized() {
  stopped = true;
  fill("main", h("div", { id: "auth", class: "card" }, h("h2", null, "Token needed"),
    h("p", null, "The admin token was refused (expired session or a new admin.token)."),
    h("form", { method: "get", action: "/" }, h("input", { type: "password", name: "token", placeholder: "admin token", autocomplete: "off" }), " ",
      h("button", { type: "submit" }, "Open"))));
  setLive(false, "unauthorized");
}

function poll() {
  timer = null;
  if (stopped) return;
  if (document.hidden) return;
  fetch("/admin/dashboard", { headers: HDR, cache: "no-store", credentials: "same-origin" }).then(function (res) {
    if (res.status === 401) { unauthorized(); return; }
    if (!res.ok) throw new Error("HTTP " + res.status);
    return res.json().then(function (d) { render(d); setLive(true); });
  }).catch(function (e) { setLive(false, e.message); }).then(function () {
    if (!stopped && !document.hidden) timer = setTimeout(poll, POLL_MS);
  });
}

function purge(id) {
  fetch("/admin/purge?id=" + encodeURIComponent(id), { method: "POST", headers: HDR, credentials: "same-origin" }).then(function (res) {
    if (res.status === 401) { unauthorized(); return; }
    return res.json().then(function (body) {
      if (!res.ok) throw new Error(body.error || "HTTP " + res.status);
      toast("Purged the route of “" + id + "”: its next connection asks the resolver again.");
      $("last-purge").textContent = id;
    });
  }).catch(function (e) { toast("Purge failed: " + e.message); });
}

// Hidden tab: no polling at all. Back: a gap in the charts, then samples again.
document.addEventListener("visibilitychange", function () {
  if (document.hidden) { if (timer) { clearTimeout(timer); timer = null; } series.push(null); prev = null; }
  else if (!timer && !stopped) poll();
});
$("search").addEventListener("input", function () { if (last) renderResources(last); });
$("purge-any").addEventListener("click", function () { var q = $("search").value.trim(); if (q) purge(q); });
window.addEventListener("resize", function () { if (last) renderCharts(last); });
poll();
`

const body = `<header>
  <h1>polyproxy</h1><span class="ver" id="version"></span><span id="meta">connecting…</span>
  <span id="live"><i class="dot" id="live-dot"></i><span id="live-text">waiting for the first sample</span></span>
</header>
<main id="main">
  <section class="row" id="listeners"></section>
  <section class="row two">
    <div class="card"><h2>Open connections <span class="aside muted">up to the last 5 minutes</span></h2>
      <svg class="chart" id="chart-active" role="img" aria-label="open connections, last 5 minutes"></svg>
      <div class="legend" id="legend-active"></div></div>
    <div class="card"><h2>Errors per second <span class="aside muted">up to the last 5 minutes</span></h2>
      <svg class="chart" id="chart-errors" role="img" aria-label="errors per second, last 5 minutes"></svg>
      <div class="legend" id="legend-errors"></div></div>
  </section>
  <section class="row two">
    <div class="card"><h2>Busiest resources <span class="aside muted" id="resources-count"></span></h2>
      <div style="display:flex;gap:8px;margin-bottom:8px;align-items:center">
        <input type="search" id="search" placeholder="search resources…" aria-label="search resources">
        <button class="purge-any" id="purge-any" hidden></button>
        <span class="muted" style="margin-left:auto;font-size:12px">last purge: <span id="last-purge">—</span></span>
      </div>
      <div class="scroll"><table><thead><tr><th>Resource</th><th class="num">Active</th><th>Backend</th><th>Cold start</th><th></th></tr></thead>
        <tbody id="resources"></tbody></table></div></div>
    <div class="card"><h2>Backends <span class="aside muted">circuit breakers</span></h2>
      <div class="scroll"><table><thead><tr><th>Backend</th><th>Breaker</th><th class="num">Failures (now / total)</th><th>Resources</th><th>Last error</th></tr></thead>
        <tbody id="backends"></tbody></table></div></div>
  </section>
  <section class="row side">
    <div class="card"><h2>Routing cache and resolver</h2><dl class="kv" id="info"></dl></div>
    <div class="card"><h2>Effective config <span class="aside muted">secrets redacted</span></h2><pre id="config"></pre></div>
  </section>
</main>
<div id="toast" role="status" aria-live="polite"></div>`

const hash = (text: string) => `'sha256-${createHash("sha256").update(text).digest("base64")}'`

/** Served with the page: nothing but its own inline script and styles, no network but the admin API itself. */
export const pageHeaders = {
  "content-type": "text/html; charset=utf-8",
  "cache-control": "no-store",
  "content-security-policy": `default-src 'none'; script-src ${hash(script)}; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'`,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer"
} as const

export const dashboardPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>polyproxy · dashboard</title><style>${style}</style></head>
<body>
${body}
<script>${script}</script>
</body></html>
`

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!)

/** GET / without a valid token: a form that sends it once as ?token= (answered with a session cookie, session.ts). */
export const tokenPage = (problem?: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>polyproxy · admin token</title><style>${style}</style></head>
<body><header><h1>polyproxy</h1></header>
<div id="auth" class="card"><h2>Admin token</h2>
<p>This admin endpoint needs its token (<code>admin.token</code>).${problem ? ` <b>${escapeHtml(problem)}</b>` : ""}</p>
<form method="get" action="/"><input type="password" name="token" placeholder="admin token" autocomplete="off" autofocus>
<button type="submit">Open the dashboard</button></form></div>
</body></html>
`
