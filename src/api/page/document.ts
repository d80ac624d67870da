// The status page (GET /): one HTML document with its style and script inline, and nothing
// fetched from anywhere but the peer that served it (a shard often runs on a network with no
// access to the internet, and an operator opens this page when things are going wrong). The
// Content-Security-Policy says so to the browser too: only this document's own script and style
// (by hash) run, and the page may connect to its own origin only.
import { createHash } from 'node:crypto';
import { PAGE_SCRIPT } from './script.js';
import { PAGE_STYLE } from './style.js';

function cspHash(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<title>Manatee shard</title>
<link rel="icon" href="data:,">
<style>${PAGE_STYLE}</style>
</head>
<body>
<svg id="svg-ns" class="ns" width="0" height="0" aria-hidden="true"></svg>
<header class="top">
  <h1>Manatee<span class="sub">shard status</span></h1>
  <div id="facts"></div>
  <span class="spacer"></span>
  <span id="live" class="live is-connecting"><span class="dot"></span><span id="live-text">connecting…</span></span>
</header>
<main>
  <div id="alerts" class="alerts"></div>
  <section class="panel"><h2>Topology<span class="note">primary → sync → asyncs; each link: WAL bytes behind · age of the newest replayed data</span></h2><div id="topology"></div></section>
  <section class="panel"><h2>Peers</h2><div id="peers"></div></section>
  <section class="panel timeline"><h2>Generations<span class="note">each band is a generation, coloured by its primary; each tick a committed change</span></h2><div id="timeline"></div><div id="history"></div></section>
  <noscript><p>This page needs JavaScript. The same data is at <a href="shard">/shard</a> and <a href="history">/history</a>.</p></noscript>
</main>
<footer><span id="updated"></span><br><a href="shard">/shard</a><a href="history">/history</a><a href="status">/status</a><a href="metrics">/metrics</a><a href="openapi.json">/openapi.json</a></footer>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;

/** The response headers of the page: what it may load (itself only) and how it may be cached. */
export const STATUS_PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-cache',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'content-security-policy': [
    "default-src 'none'",
    `script-src ${cspHash(PAGE_SCRIPT)}`,
    `style-src ${cspHash(PAGE_STYLE)}`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; '),
};
