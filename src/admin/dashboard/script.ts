// The dashboard page's inline script (page.ts serves it with a CSP hash): polls GET /admin/dashboard every second
// while the tab is visible, computes rates from successive samples, keeps the last 5 minutes for its SVG charts, and
// purges through POST /admin/purge. Plain ES5 in a string: no build step, no framework, works offline.

export const script = String.raw`
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

// "pg-alt": its type and protocol label, each unless the name (or the type) already says it.
function kind(name, l) {
  var type = l.type || name;
  return (type !== name ? type + " · " : "") + (l.protocol !== name && l.protocol !== type ? l.protocol + " · " : "");
}

function renderListeners(d, r) {
  var names = Object.keys(d.listeners).sort();
  if (names.length === 0) { fill("listeners", h("div", { class: "card muted" }, "No listener.")); return; }
  fill("listeners", names.map(function (name, i) {
    var l = d.listeners[name], x = r[name];
    var reasons = Object.keys(l.errors).filter(function (k) { return l.errors[k] > 0; }).sort();
    return h("div", { class: "card listener", "data-listener": name },
      h("div", null, h("span", { class: "name" }, h("i", { class: "dot", style: "background:" + COLORS[i % COLORS.length] }), " ", name),
        h("span", { class: "addr" }, kind(name, l), l.host + ":" + l.port)),
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

// Shown only once a listener has made a server-connection pool (PostgreSQL transaction mode, MySQL with auth).
function renderPools(d) {
  var pools = d.pools || [];
  $("pools-row").style.display = pools.length ? "" : "none";
  if (!pools.length) return;
  fill("pools", pools.map(function (p) {
    var cap = p.size === 0 ? "no cap" : fmt(p.size);
    var size = p.workers > 1 ? cap + " × " + p.workers : cap;
    return h("tr", { "data-pool": p.listener + " " + p.backend + " " + p.database + " " + p.user },
      h("td", null, p.listener), h("td", { class: "mono" }, p.backend), h("td", { class: "mono" }, p.database + " / " + p.user),
      h("td", { class: "num" }, fmt(p.active) + " / " + fmt(p.idle) + " / " + size),
      h("td", { class: "num", title: "given back, serving nobody until a cancel or KILL in flight to them is over" }, fmt(p.cancelling || 0)),
      h("td", { class: "num" }, fmt(p.waiting)), h("td", { class: "num" }, p.maxWaitMs ? fmt(p.maxWaitMs) + " ms" : "—"),
      h("td", { class: "num" }, fmt(p.transactions)));
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
  renderPools(d);
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
