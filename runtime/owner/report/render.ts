// Pure: the report page — one HTML file that holds everything it shows and needs (the figures as
// JSON, uPlot and its license notice, the drawing script, the styles); it loads nothing. The
// figures go in as JSON in a script element of type application/json (with "<" escaped), and
// the script writes every string into the page as text, never as markup.
import type { ReportData } from './data.ts';
import type { ChartAssets } from '../../../lib/chart-assets.ts';

/** Series colours; the browser test looks for them in the drawn canvases. */
export const COLORS = {
  size: '#1f77b4',
  files: '#ff7f0e',
  pulled: '#2ca02c',
  pullSeconds: '#9467bd',
  full: '#d62728',
  incremental: '#17becf',
  runSeconds: '#8c564b',
  failed: '#e377c2',
  partial: '#ffbf00',
} as const;

const html = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
/** JSON that cannot end its script element or open a comment. */
const scriptJson = (v: unknown) => JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
/** Library text inside a script element: "</script" would end it early. */
const scriptText = (s: string) => s.replace(/<\/(script)/gi, '<\\/$1');

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 1060px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ccc; }
.meta { color: #666; } .ok { color: #1a7f37; font-weight: 600; } .bad { color: #c62828; font-weight: 600; } .warn { color: #9a6700; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
.chart { margin: 0.8em 0; } .empty { color: #888; font-style: italic; }
footer { margin-top: 3em; color: #666; font-size: 12px; } pre { white-space: pre-wrap; }
`;

// Plain browser JavaScript (no build step): reads the JSON, draws the charts with uPlot.
const CLIENT = String.raw`
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('pv-data').textContent);
  var C = JSON.parse(document.getElementById('pv-colors').textContent);
  var main = document.getElementById('pv-main');
  function el(tag, text, cls) { var e = document.createElement(tag); if (text != null) e.textContent = text; if (cls) e.className = cls; return e; }
  function fmtBytes(v) { if (v == null) return '-'; var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0; v = Math.abs(v); while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; } return (i ? v.toFixed(1) : Math.round(v)) + ' ' + u[i]; }
  function fmtNum(v) { return v == null ? '-' : String(Math.round(v)); }
  function fmtSec(v) { return v == null ? '-' : v < 120 ? v.toFixed(1) + ' s' : (v / 60).toFixed(1) + ' min'; }
  function when(t) { return new Date(t * 1000).toISOString().replace('T', ' ').slice(0, 16) + ' UTC'; }
  var width = Math.max(480, Math.min(1000, document.body.clientWidth - 40));
  function axisFor(fmt, scale, side) { return { scale: scale, side: side, values: function (u, vs) { return vs.map(fmt); }, size: 84, grid: { show: side !== 1 } }; }
  function line(label, color, scale, fmt, w) { return { label: label, stroke: color, width: w || 2, scale: scale, value: function (u, v) { return fmt(v); }, spanGaps: true, points: { show: true, size: 6, fill: color } }; }
  function bars(label, color) { return { label: label, stroke: color, fill: color, width: 1, scale: 'y', value: function (u, v) { return fmtBytes(v); }, paths: uPlot.paths.bars({ size: [0.5, 40] }), points: { show: false } }; }
  function dots(label, color, fmt) { return { label: label, stroke: color, fill: color, scale: 'y', value: function (u, v) { return fmt(v); }, paths: function () { return null; }, points: { show: true, size: 12, fill: color, stroke: color } }; }
  function chart(parent, name, title, xs, series, cols, axes) {
    var box = el('div', null, 'chart'); box.setAttribute('data-chart', name); parent.appendChild(box);
    if (!xs.length) { box.appendChild(el('p', title + ': nothing recorded yet', 'empty')); return; }
    new uPlot({ title: title, width: width, height: 230, scales: { x: { time: true, range: padX } }, series: [{ value: function (u, v) { return v == null ? '-' : when(v); } }].concat(series), axes: [{}].concat(axes) }, [xs].concat(cols), box);
  }
  // room on both sides, so the first and last bars are drawn whole
  function padX(u, min, max) { var pad = Math.max((max - min) * 0.04, 6 * 3600); return [min - pad, max + pad]; }
  function col(pts, f) { return pts.map(function (p) { var v = f(p); return v == null ? null : v; }); }

  document.getElementById('pv-generated').textContent = 'generated ' + D.generatedAt + ' from ' + D.source;

  if (D.watch) {
    var w = el('section'); main.appendChild(w);
    w.appendChild(el('h2', 'Watchdog (' + D.watch.at + ', ' + D.watch.store + '): ' + (D.watch.ok ? 'ok' : 'FAILED')));
    var t = el('table'); w.appendChild(t);
    var head = el('tr'); ['server', 'state', 'newest', 'age', 'chain', 'findings'].forEach(function (h) { head.appendChild(el('th', h)); }); t.appendChild(head);
    D.watch.servers.forEach(function (s) {
      var r = el('tr');
      r.appendChild(el('td', s.server));
      r.appendChild(el('td', s.ok ? 'ok' : 'FAILED', s.ok ? 'ok' : 'bad'));
      r.appendChild(el('td', s.newest ? s.newest.snapshot + ' (' + s.newest.kind + ')' : '-'));
      r.appendChild(el('td', s.newest ? s.newest.ageHours.toFixed(1) + ' h' : '-'));
      r.appendChild(el('td', s.chain ? s.chain.archives + (s.chain.complete ? ' archives, complete' : ' archives, BROKEN') : '-'));
      var f = el('td'); if (!s.findings.length) f.textContent = 'none';
      s.findings.forEach(function (x) { f.appendChild(el('div', x.check + ': ' + x.message, x.level === 'error' ? 'bad' : 'warn')); });
      r.appendChild(f); t.appendChild(r);
    });
  }

  if (D.runs) {
    var rs = el('section'); main.appendChild(rs);
    var bad = D.runs.filter(function (r) { return r.outcome !== 'ok'; });
    rs.appendChild(el('h2', 'Runs: ' + D.runs.length + ' (' + bad.length + ' not ok)'));
    chart(rs, 'runs', 'Run duration; failed and partial runs marked', col(D.runs, function (r) { return r.t; }), [
      line('duration', C.runSeconds, 'y', fmtSec),
      dots('failed / refused / interrupted', C.failed, fmtSec),
      dots('partial', C.partial, fmtSec),
    ], [col(D.runs, function (r) { return r.seconds; }), col(D.runs, function (r) { return r.outcome === 'ok' || r.outcome === 'partial' ? null : r.seconds; }), col(D.runs, function (r) { return r.outcome === 'partial' ? r.seconds : null; })],
    [axisFor(fmtSec, 'y', 3)]);
    if (bad.length) {
      var bt = el('table'); rs.appendChild(bt);
      bad.forEach(function (r) { var tr = el('tr'); tr.appendChild(el('td', when(r.t))); tr.appendChild(el('td', r.outcome, r.outcome === 'partial' ? 'warn' : 'bad')); tr.appendChild(el('td', r.detail || '')); bt.appendChild(tr); });
    }
  }

  D.servers.forEach(function (s) {
    var sec = el('section'); sec.setAttribute('data-server', s.server); main.appendChild(sec);
    sec.appendChild(el('h2', s.server));
    var last = s.snapshots[s.snapshots.length - 1];
    sec.appendChild(el('p', last ? 'newest snapshot ' + last.snapshot + ': ' + fmtNum(last.files) + ' files, ' + fmtBytes(last.bytes) + (last.partial ? ' (PARTIAL)' : '') + '; ' + s.snapshots.length + ' snapshot(s), ' + s.uploads.length + ' upload(s)' : 'no snapshot recorded', 'meta'));
    var xs = col(s.snapshots, function (p) { return p.t; });
    chart(sec, 'size', 'Snapshot size and file count', xs, [line('size', C.size, 'y', fmtBytes, 6), line('files', C.files, 'files', fmtNum)],
      [col(s.snapshots, function (p) { return p.bytes; }), col(s.snapshots, function (p) { return p.files; })], [axisFor(fmtBytes, 'y', 3), axisFor(fmtNum, 'files', 1)]);
    chart(sec, 'pulled', 'Bytes pulled (read anew) and pull duration', xs, [line('pulled', C.pulled, 'y', fmtBytes), line('pull duration', C.pullSeconds, 's', fmtSec)],
      [col(s.snapshots, function (p) { return p.pulledBytes; }), col(s.snapshots, function (p) { return p.seconds; })], [axisFor(fmtBytes, 'y', 3), axisFor(fmtSec, 's', 1)]);
    chart(sec, 'uploads', 'Uploaded offsite: full and incremental archives', col(s.uploads, function (u) { return u.t; }), [bars('full', C.full), bars('incremental', C.incremental)],
      [col(s.uploads, function (u) { return u.kind === 'full' ? u.bytes : null; }), col(s.uploads, function (u) { return u.kind === 'incremental' ? u.bytes : null; })], [axisFor(fmtBytes, 'y', 3)]);
    var partial = s.snapshots.filter(function (p) { return p.partial; });
    if (s.failures.length || partial.length) {
      var ft = el('table'); sec.appendChild(ft);
      s.failures.forEach(function (f) { var tr = el('tr'); tr.appendChild(el('td', when(f.t))); tr.appendChild(el('td', 'failed', 'bad')); tr.appendChild(el('td', f.error)); ft.appendChild(tr); });
      partial.forEach(function (p) { var tr = el('tr'); tr.appendChild(el('td', when(p.t))); tr.appendChild(el('td', 'partial', 'warn')); tr.appendChild(el('td', 'snapshot ' + p.snapshot + ' is partial (files unreadable or vanished)')); ft.appendChild(tr); });
    }
  });
  document.body.setAttribute('data-rendered', 'yes');
})();
`;

export function renderReportHtml(data: ReportData, assets: ChartAssets): string {
  const noticeFirstLine = assets.license.split('\n').find((l) => /copyright/i.test(l))?.trim() ?? '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>${html(data.title)}</title>
<style>${assets.css}</style>
<style>${STYLE}</style>
</head>
<body>
<h1>${html(data.title)}</h1>
<p class="meta" id="pv-generated"></p>
<main id="pv-main"></main>
<footer>
<p>Charts drawn with uPlot ${html(assets.version)} (MIT License, ${html(noticeFirstLine)}), inlined into this page.</p>
<details><summary>uPlot license</summary><pre>${html(assets.license)}</pre></details>
</footer>
<script type="application/json" id="pv-data">${scriptJson(data)}</script>
<script type="application/json" id="pv-colors">${scriptJson(COLORS)}</script>
<script>
/*! uPlot ${assets.version} — ${scriptText(assets.license.replace(/\*\//g, '* /'))} */
${scriptText(assets.js)}
</script>
<script>${CLIENT}</script>
</body>
</html>
`;
}
