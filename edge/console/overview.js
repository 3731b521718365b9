// overview.js - the Overview page (#/overview): NATS servers, streams and
// their durables, each daemon's outbox backlog, sagas by type and state, dead
// letters, the last audit, and a chart of sagas started and completed per
// 10 s over the last 5 minutes; all from GET /api/v1/admin/overview. It
// refreshes itself every REFRESH_MS while the tab is visible and stops once
// another page replaced it.
import { admin } from "./api.js";
import { el, table, stateBadge } from "./dom.js";

const REFRESH_MS = 5000;
const SVG = "http://www.w3.org/2000/svg";
const CHART_W = 600, CHART_H = 160, PAD_L = 36, PAD_B = 20, PAD_T = 8;
// series drawn on the chart: key in a throughput bucket, label, CSS class
const SERIES = [["started", "started", "s-started"], ["completed", "completed", "s-completed"]];

function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

// The throughput buckets as lines; data-values carries each series' numbers
// (the browser test compares them with the endpoint's).
function chart(buckets, seconds) {
  const n = buckets.length;
  const max = Math.max(1, ...buckets.flatMap((b) => SERIES.map(([k]) => b[k])));
  const x = (i) => PAD_L + (n > 1 ? (i * (CHART_W - PAD_L - 4)) / (n - 1) : 0);
  const y = (v) => CHART_H - PAD_B - (v * (CHART_H - PAD_B - PAD_T)) / max;
  const g = svg("svg", { id: "ov-chart", viewBox: `0 0 ${CHART_W} ${CHART_H}`, role: "img",
    "aria-label": `sagas started and completed per ${seconds} s, last ${n * seconds / 60} minutes` });
  g.append(svg("line", { x1: PAD_L, y1: CHART_H - PAD_B, x2: CHART_W, y2: CHART_H - PAD_B, class: "axis" }),
    svg("line", { x1: PAD_L, y1: PAD_T, x2: PAD_L, y2: CHART_H - PAD_B, class: "axis" }),
    svg("text", { x: PAD_L - 4, y: PAD_T + 10, "text-anchor": "end", class: "tick" }, max),
    svg("text", { x: PAD_L - 4, y: CHART_H - PAD_B, "text-anchor": "end", class: "tick" }, 0),
    svg("text", { x: PAD_L, y: CHART_H - 4, class: "tick" }, n ? buckets[0].at.slice(11, 19) : ""),
    svg("text", { x: CHART_W, y: CHART_H - 4, "text-anchor": "end", class: "tick" }, "now"));
  for (const [key, label, cls] of SERIES) {
    const values = buckets.map((b) => b[key]);
    g.append(svg("polyline", { class: `series ${cls}`, "data-series": key, "data-values": values.join(","),
      points: values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ") },
      svg("title", {}, `${label} per ${seconds} s`)));
  }
  return g;
}

function okCell(o) {
  return el("td", { class: o.ok ? "ok" : "error" }, o.ok ? "ok" : o.error ? `down: ${o.error}` : "missing");
}

function serversTable(servers) {
  return table([["Server"], ["Name"], ["Version"], ["JetStream"], ["State"]], servers.map((s) =>
    el("tr", {}, el("td", { class: "mono" }, s.url, s.connected ? " (connected)" : ""), el("td", {}, s.name || ""),
      el("td", {}, s.version || ""), el("td", {}, s.ok ? (s.jetstream ? "yes" : "no") : ""), okCell(s))));
}

function streamsTable(streams) {
  return table([["Stream"], ["Messages"], ["Bytes", "wide"], ["Replicas"], ["Leader", "wide"], ["State"]],
    streams.map((s) => el("tr", { "data-stream": s.name }, el("td", { class: "mono" }, s.name),
      el("td", { class: "num" }, s.messages ?? ""), el("td", { class: "num wide" }, s.bytes ?? ""),
      el("td", { class: "num" }, s.replicas ?? ""), el("td", { class: "wide" }, s.leader || ""), okCell(s))));
}

function consumersTable(streams) {
  const rows = streams.flatMap((s) => (s.consumers || []).map((c) =>
    el("tr", { "data-consumer": `${c.stream}/${c.name}` }, el("td", { class: "mono" }, `${c.stream}/${c.name}`),
      el("td", { class: "num" }, c.pending ?? ""), el("td", { class: "num" }, c.ackPending ?? ""),
      el("td", { class: "num" }, c.redelivered ?? ""), okCell(c))));
  return table([["Durable"], ["Pending"], ["Ack pending"], ["Redelivered"], ["State"]], rows);
}

function daemonsTable(daemons) {
  return table([["Daemon"], ["Outbox backlog"], ["State"]], daemons.map((d) =>
    el("tr", { "data-daemon": d.name }, el("td", { class: "mono" }, d.name),
      el("td", { class: "num" }, d.ok ? (d.outboxBacklog ?? "no outbox") : ""), okCell(d))));
}

function sagasTable(ov) {
  if (ov.sagas === null) return el("p", { class: "error", role: "alert" }, `Sagas cannot be read: ${ov.sagasError}`);
  if (!ov.sagas.length) return el("p", {}, "No saga running, and none finished since ", ov.finishedSince, ".");
  return table([["Type"], ["State"], ["Count"]], ov.sagas.map((s) =>
    el("tr", { "data-saga": `${s.type}/${s.state}` }, el("td", {}, s.type), el("td", {}, stateBadge(s.state)),
      el("td", { class: "num" }, s.count))));
}

function auditCard(a) {
  if (a === null) return el("p", { id: "ov-audit" }, "No audit kept yet: run ", el("code", {}, "layby-ctl audit"), ".");
  const verdict = a.error ? `did not finish: ${a.error}` : a.ok ? "balanced" : `${a.violationCount} violation(s)`;
  const facts = [["At", a.at], ["Result", verdict]];
  if (!a.error) facts.push(["Checked", `${a.products} products, ${a.orders} orders (${a.inFlight} in flight)`]);
  for (const v of (a.violations || []).slice(0, 5)) facts.push([v.kind, `${v.id}: ${v.detail}`]);
  return el("table", { id: "ov-audit", "data-ok": String(!!a.ok) },
    facts.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", { class: k === "Result" && !a.ok ? "error" : "" }, v))));
}

function card(title, ...body) {
  return el("div", { class: "card" }, el("h2", {}, title), ...body);
}

function draw(root, ov) {
  const sum = (k) => ov.throughput.reduce((t, b) => t + b[k], 0);
  root.replaceChildren(
    el("div", { class: "card" }, el("h1", {}, "Overview"),
      el("p", { class: "mono", id: "ov-stamp" }, `as of ${ov.at} (refreshes every ${REFRESH_MS / 1000} s)`),
      el("p", {}, "Dead letters: ", el("strong", { id: "ov-dlq" }, ov.deadLetters),
        ov.deadLetters ? " (layby-ctl dlq list)" : "")),
    card("Throughput",
      ov.throughput ? chart(ov.throughput, ov.bucketSeconds) : el("p", { class: "error" }, "no saga figures"),
      el("p", { class: "legend" }, el("span", { class: "s-started" }, "■ started"), " ",
        el("span", { class: "s-completed" }, "■ completed"),
        ov.throughput ? ` per ${ov.bucketSeconds} s: ${sum("started")} started, ${sum("completed")} completed in 5 minutes` : "")),
    card("Sagas by type and state", el("div", { id: "ov-sagas" }, sagasTable(ov)),
      ov.finishedSince ? el("p", { class: "note" }, "Finished states count the sagas finished since ", ov.finishedSince, ".") : null),
    card("Last audit", auditCard(ov.lastAudit)),
    card("NATS servers", el("div", { id: "ov-servers" }, serversTable(ov.servers))),
    card("Streams", el("div", { id: "ov-streams" }, streamsTable(ov.streams))),
    card("Durables", el("div", { id: "ov-consumers" }, consumersTable(ov.streams))),
    card("Outbox backlog", el("div", { id: "ov-daemons" }, daemonsTable(ov.daemons))));
}

// show and failure are app.js's: show replaces the view, failure renders an error.
export async function overviewPage(show, failure) {
  const root = el("div", { id: "overview", "data-refreshed": "0" });
  let refreshed = 0, timer = null, inFlight = false;
  const load = async () => {
    if (!root.isConnected && refreshed > 0) { stop(); return; } // another page replaced it
    if (document.hidden || inFlight) return;
    inFlight = true;
    try {
      draw(root, await admin.overview());
    } catch (e) {
      root.replaceChildren(failure(e));
      if (e.status === 401 || e.status === 403) stop();
    } finally {
      inFlight = false;
      root.dataset.refreshed = String(++refreshed);
    }
  };
  const visible = () => { if (!document.hidden) load(); };
  function stop() {
    clearInterval(timer);
    document.removeEventListener("visibilitychange", visible);
  }
  show(root);
  await load();
  timer = setInterval(load, REFRESH_MS);
  document.addEventListener("visibilitychange", visible);
}
