// The status page's stylesheet, inlined into the document (no external assets: the page must
// work on a shard's private network, with no access to the internet). Colours carry the role
// (primary green, sync blue, async violet, deposed red, unassigned grey) and the health
// (ok green, warn amber, bad red) in the same way everywhere on the page.
export const PAGE_STYLE = `
:root {
  --bg: #f4f6f9; --panel: #ffffff; --ink: #1b2430; --muted: #5d6b7d; --line: #dde3ea;
  --primary: #1f8a4c; --sync: #2563c9; --async: #7c4dcc; --deposed: #c53030; --unassigned: #7a8594;
  --ok: #1f8a4c; --warn: #b7791f; --bad: #c53030; --unknown: #8a94a3;
  --mono: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
}
* { box-sizing: border-box; }
html, body { margin: 0; padding: 0; }
svg.ns { position: absolute; }
body { background: var(--bg); color: var(--ink); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", Roboto, sans-serif; }
header.top { display: flex; flex-wrap: wrap; align-items: center; gap: 10px 18px; padding: 12px 24px; background: #16202c; color: #e8edf3; }
header.top h1 { font-size: 18px; margin: 0; font-weight: 650; letter-spacing: .2px; }
header.top h1 .sub { font-weight: 400; color: #9fb0c3; margin-left: 6px; }
header.top .facts { display: flex; flex-wrap: wrap; gap: 6px 16px; color: #c9d4e0; font-size: 13px; }
header.top .facts b { color: #fff; font-weight: 600; }
header.top .spacer { flex: 1; }
.live { display: inline-flex; align-items: center; gap: 6px; font-size: 13px; padding: 3px 10px; border-radius: 999px; background: #24303e; color: #c9d4e0; }
.live .dot { width: 9px; height: 9px; border-radius: 50%; background: var(--unknown); }
.live.is-live .dot { background: #3ccf7a; box-shadow: 0 0 0 3px rgba(60,207,122,.25); }
.live.is-reconnecting .dot { background: #f0b429; }
.live.is-down .dot { background: #f05252; }
main { padding: 16px 24px 32px; max-width: 1500px; }
section.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 14px 18px 16px; margin-bottom: 16px; }
section.panel > h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .8px; color: var(--muted); margin: 0 0 12px; font-weight: 650; }
section.panel > h2 .note { text-transform: none; letter-spacing: 0; font-weight: 400; margin-left: 8px; }
.alerts { display: flex; flex-direction: column; gap: 6px; margin-bottom: 16px; }
.alerts:empty { display: none; }
.alert { border-radius: 8px; padding: 8px 12px; border: 1px solid; font-size: 13.5px; }
.alert.bad { background: #fdeeee; border-color: #f3c1c1; color: #8f1d1d; }
.alert.warn { background: #fdf6e7; border-color: #f1dba8; color: #7a5210; }
.alert.info { background: #eaf2fd; border-color: #bfd5f5; color: #1e4f9a; }
.alert a { color: inherit; }
.chain { display: flex; flex-wrap: wrap; align-items: stretch; gap: 10px 0; }
.card { width: 270px; border: 1px solid var(--line); border-top: 5px solid var(--unassigned); border-radius: 9px; background: #fff; padding: 10px 12px 10px; box-shadow: 0 1px 2px rgba(20,30,45,.06); }
.card.role-primary { border-top-color: var(--primary); }
.card.role-sync { border-top-color: var(--sync); }
.card.role-async { border-top-color: var(--async); }
.card.role-deposed { border-top-color: var(--deposed); background: #fffafa; }
.card.is-gone { opacity: .72; }
.card .head { display: flex; align-items: center; justify-content: space-between; gap: 8px; }
.card .peer-id { font-size: 17px; font-weight: 700; font-family: var(--mono); overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.card .peer-id a { color: inherit; text-decoration: none; }
.card .peer-id a:hover { text-decoration: underline; }
.role { font-size: 11px; font-weight: 700; letter-spacing: .6px; text-transform: uppercase; color: #fff; padding: 2px 8px; border-radius: 999px; background: var(--unassigned); white-space: nowrap; }
.role.primary { background: var(--primary); } .role.sync { background: var(--sync); } .role.async { background: var(--async); }
.role.deposed { background: var(--deposed); } .role.unassigned { background: var(--unassigned); }
.health { display: flex; align-items: center; gap: 7px; margin: 8px 0 6px; font-weight: 600; }
.health .dot, td .dot { width: 10px; height: 10px; border-radius: 50%; background: var(--unknown); flex: none; display: inline-block; }
.ok .dot, .dot.ok { background: var(--ok); } .warn .dot, .dot.warn { background: var(--warn); } .bad .dot, .dot.bad { background: var(--bad); }
.health.ok { color: var(--ok); } .health.warn { color: var(--warn); } .health.bad { color: var(--bad); } .health.unknown { color: var(--unknown); }
.card dl { display: grid; grid-template-columns: auto 1fr; gap: 2px 10px; margin: 0; font-size: 12.5px; }
.card dt { color: var(--muted); }
.card dd { margin: 0; font-family: var(--mono); font-size: 12px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.card .decision { margin-top: 7px; padding-top: 6px; border-top: 1px dashed var(--line); font-size: 12px; color: var(--muted); display: -webkit-box; -webkit-line-clamp: 2; -webkit-box-orient: vertical; overflow: hidden; }
.card .decision b { color: var(--ink); font-weight: 600; }
.progress { height: 6px; background: #e8ecf1; border-radius: 3px; margin-top: 6px; overflow: hidden; }
.progress > div { height: 100%; background: var(--sync); width: 0; }
.link { width: 150px; display: flex; flex-direction: column; align-items: center; justify-content: center; padding: 0 4px; text-align: center; font-size: 12px; }
.link svg { width: 100%; height: 22px; display: block; }
.link .kind { font-weight: 700; text-transform: uppercase; letter-spacing: .5px; font-size: 11px; }
.link .lag { font-family: var(--mono); font-size: 12.5px; color: var(--ink); }
.link .st { color: var(--muted); }
.link.ok { color: var(--ok); } .link.warn { color: var(--warn); } .link.bad { color: var(--bad); } .link.unknown { color: var(--unknown); }
.offchain { margin-top: 14px; padding-top: 12px; border-top: 1px solid var(--line); }
.offchain h3 { margin: 0 0 8px; font-size: 12.5px; color: var(--muted); font-weight: 600; }
.offchain .cards { display: flex; flex-wrap: wrap; gap: 12px; }
.empty { color: var(--muted); font-style: italic; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th { text-align: left; font-weight: 600; color: var(--muted); font-size: 12px; border-bottom: 1px solid var(--line); padding: 6px 10px 6px 0; white-space: nowrap; }
td { border-bottom: 1px solid #eef1f5; padding: 6px 10px 6px 0; vertical-align: top; }
td.mono { font-family: var(--mono); font-size: 12px; white-space: nowrap; }
td .cell { display: inline-flex; align-items: center; gap: 6px; white-space: nowrap; }
td.reason { color: var(--muted); max-width: 420px; }
tr.gen-change td { background: #f7faff; }
.badge { display: inline-block; font-size: 10.5px; font-weight: 700; letter-spacing: .4px; text-transform: uppercase; padding: 1px 6px; border-radius: 4px; margin-left: 6px; vertical-align: 1px; }
.badge.failover { background: #fde8e8; color: var(--bad); }
.badge.newsync { background: #e6effc; color: var(--sync); }
.badge.frozen { background: #fdf0d5; color: #8a5a00; }
.badge.onwm { background: #efe7fb; color: var(--async); }
.timeline svg { display: block; max-width: 100%; }
.timeline .legend { font-size: 12px; color: var(--muted); margin-top: 4px; }
.scroll { max-height: 340px; overflow-y: auto; }
footer { color: var(--muted); font-size: 12px; padding: 0 24px 24px; }
footer a { color: var(--muted); margin-right: 12px; }
`;
