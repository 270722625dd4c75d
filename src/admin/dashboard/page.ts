// The operator dashboard: one static page with its style and a small script inline (no framework, no CDN, works
// offline). The script polls GET /admin/dashboard every second while the tab is visible, computes rates from
// successive samples, keeps the last 5 minutes for its SVG charts itself, and purges through POST /admin/purge.
// The proxy does nothing for it between two polls.
import { createHash } from "node:crypto"
import { script } from "./script.ts"

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
  <section class="row" id="pools-row" style="display:none">
    <div class="card"><h2>Server-connection pools <span class="aside muted">PostgreSQL and MySQL, per backend, database and user</span></h2>
      <div class="scroll"><table><thead><tr><th>Listener</th><th>Backend</th><th>Database / role</th><th class="num">Active / idle / size</th><th class="num">Cancelling</th><th class="num">Waiting</th><th class="num">Longest wait</th><th class="num">Transactions</th></tr></thead>
        <tbody id="pools"></tbody></table></div></div>
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
