// app.js - the console's pages: sign-in, sagas (list, filters, keyset pages),
// a saga (record, steps diagram, timeline with decoded bodies, the layby-ctl
// command that fixes a STUCK one) and stuck sagas refreshing by themselves;
// an order's page (orders.js) and dead letters (deadletters.js) are drawn
// by their own modules with `ui`. Read-only: changes are layby-ctl's.
import { admin, signIn, signOut, signedIn, ApiError } from "./api.js";
import { deadLetterPage, deadLettersPage } from "./deadletters.js";
import { el, table, stateBadge, json } from "./dom.js";
import { orderPage } from "./orders.js";
import { overviewPage } from "./overview.js";

// Entries drawn at once. 100, not the server's default 200: on a loaded
// 2-core machine, building 200 rows took up to 1.4 s, and 100 rows take half that.
const TIMELINE_PAGE = 100;
const REFRESH_MS = 5000;
const STATES = ["", "RUNNING", "COMPENSATING", "STUCK", "COMPLETED", "FAILED", "RESOLVED", "CANCELLED"];

const view = document.getElementById("view");
const form = document.getElementById("signin");
const nav = document.getElementById("nav");
let timer = null;

// Marks the view busy while promise runs (for screen readers); then says
// which route it drew and how many draws so far (the browser test waits on
// data-drawn rather than guessing when a page is done).
let drawn = 0;
async function busy(promise, route = location.hash) {
  view.setAttribute("aria-busy", "true");
  try { await promise; } finally {
    view.dataset.route = route;
    view.dataset.drawn = String(++drawn);
    view.setAttribute("aria-busy", "false");
  }
}

function show(...nodes) {
  if (timer !== null) { clearInterval(timer); timer = null; }
  view.replaceChildren(...nodes);
}

function failure(e) {
  if (e instanceof ApiError && e.status === 401) { signOut(); render(); return el("p"); }
  const text = e instanceof ApiError && e.status === 403
    ? "This account is not an admin: the console needs the ADMIN role."
    : `Could not load: ${e.message}`;
  return el("p", { class: "error", role: "alert" }, text);
}

// --- sagas -------------------------------------------------------------------

function sagaRows(items) {
  return items.map((s) => el("tr", {},
    el("td", { class: "mono" }, el("a", { href: `#/saga/${s.sagaId}` }, s.sagaId)),
    el("td", {}, s.type, " v", s.version),
    el("td", {}, stateBadge(s.state)),
    el("td", { class: "wide" }, s.step, " ", s.stepName),
    el("td", { class: "wide mono" }, s.updated)));
}

function sagaTable(items) {
  return table([["Saga"], ["Type"], ["State"], ["Step", "wide"], ["Updated", "wide"]], sagaRows(items));
}

async function sagasPage(filter, title) {
  const f = { ...filter };
  const stateSel = el("select", { name: "state" }, STATES.map((s) =>
    el("option", { value: s, selected: s === (f.state || "") }, s || "any")));
  const typeIn = el("input", { name: "type", value: f.type || "", placeholder: "order_place", size: 12 });
  const sinceIn = el("input", { name: "since", value: f.since || "", placeholder: "2026-12-03T00:00:00Z", size: 22 });
  const orderIn = el("input", { name: "orderId", value: f.orderId || "", placeholder: "order id", size: 36 });
  const list = el("div");
  const more = el("button", { type: "button", hidden: true }, "Next page");
  const apply = async (ev) => {
    if (ev) ev.preventDefault();
    Object.assign(f, { state: stateSel.value, type: typeIn.value.trim(), since: sinceIn.value.trim(),
                       orderId: orderIn.value.trim(), cursor: "" });
    list.replaceChildren();
    await busy(load());
  };
  const load = async () => {
    try {
      const page = await admin.sagas(f);
      list.append(page.items.length ? sagaTable(page.items) : el("p", {}, "No saga matches."));
      f.cursor = page.nextCursor || "";
      more.hidden = !page.nextCursor;
    } catch (e) { list.append(failure(e)); more.hidden = true; }
  };
  more.addEventListener("click", load);
  show(el("div", { class: "card" }, el("h1", {}, title),
    el("form", { class: "filters", onsubmit: apply },
      el("label", {}, "State ", stateSel), el("label", {}, "Type ", typeIn),
      el("label", {}, "Changed since ", sinceIn), el("label", {}, "Order ", orderIn),
      el("button", { type: "submit" }, "Filter")),
    list, el("div", { class: "pager" }, more)));
  await load();
}

async function stuckPage() {
  const list = el("div");
  const stamp = el("p", { class: "mono" });
  const load = async () => {
    try {
      const page = await admin.sagas({ state: "STUCK", limit: 100 });
      list.replaceChildren(page.items.length ? sagaTable(page.items) : el("p", {}, "No STUCK saga."));
      stamp.textContent = `refreshed ${new Date().toISOString()} (every ${REFRESH_MS / 1000} s)`;
    } catch (e) { list.replaceChildren(failure(e)); }
  };
  show(el("div", { class: "card" }, el("h1", {}, "Stuck sagas"), stamp, list));
  await load();
  timer = setInterval(load, REFRESH_MS);
}

// --- a saga ------------------------------------------------------------------

function stepsDiagram(steps) {
  const parts = [];
  steps.forEach((s, i) => {
    if (i > 0) parts.push(el("span", { class: "arrow" }, "→"));
    parts.push(el("span", { class: `step step-${s.status}`, "data-status": s.status, title: `${s.kind} attempt ${s.attempt}` },
      `${s.index} ${s.name} `, el("small", {}, s.status, s.flags.length ? ` (${s.flags.join(", ")})` : "")));
  });
  return el("div", { class: "steps" }, parts);
}

function entryRow(e) {
  const input = e.input || {};
  const detail = [];
  if (input.signal) detail.push(el("div", {}, "signal ", input.signal));
  if (input.actor) detail.push(el("div", {}, "by ", input.actor, ": ", input.reason || ""));
  else if (input.reason) detail.push(el("div", {}, "reason: ", input.reason));
  if (input.eventType) detail.push(el("div", { class: "mono" }, input.eventType));
  for (const c of e.commands || [])
    detail.push(el("div", { class: "mono command" }, c.compensate ? "undo " : "send ", c.type, " to ", c.subject,
      ` (step ${c.step}, attempt ${c.attempt})`));
  if (e.redecided) detail.push(el("div", { class: "error" }, "this build decides instead: ", e.redecided));
  if (e.redecideError) detail.push(el("div", { class: "error" }, "cannot re-decide: ", e.redecideError));
  detail.push(el("details", {}, el("summary", {}, "decoded input"), el("pre", { class: "body" }, JSON.stringify(input, null, 2))));
  return el("tr", { "data-entry": e.id },
    el("td", { class: "mono" }, String(e.id)),
    el("td", { class: "mono wide" }, e.at),
    el("td", {}, e.kind, " ", el("small", {}, e.verdict)),
    el("td", {}, el("span", {}, e.from), " → ", stateBadge(e.to)),
    el("td", {}, el("div", {}, e.line), detail));
}

// A timeline page source: the server pages it (timelineFrom and
// timelineNextCursor in the document); an edge that answers the whole log
// (no timelineFrom) is paged here.
function timelineSource(id, first) {
  if (first.timelineFrom === undefined) {
    const all = first.timeline;
    return async (from) => ({ entries: all.slice(from, from + TIMELINE_PAGE), from,
                              next: from + TIMELINE_PAGE < all.length ? from + TIMELINE_PAGE : null });
  }
  return async (from) => {
    const d = from === 0 ? first : await admin.saga(id, { timelineCursor: String(from), timelineLimit: TIMELINE_PAGE });
    return { entries: d.timeline, from: d.timelineFrom,
             next: d.timelineNextCursor !== undefined ? Number(d.timelineNextCursor) : null };
  };
}

function timeline(source) {
  const body = el("tbody");
  const pos = el("span", { id: "timeline-pos" });
  const prev = el("button", { type: "button", id: "timeline-earlier" }, "Earlier");
  const next = el("button", { type: "button", id: "timeline-later" }, "Later");
  const err = el("p", { class: "error", role: "alert" });
  let at = 0;
  const draw = async (from) => {
    prev.disabled = next.disabled = true;
    try {
      const p = await source(from);
      at = p.from;
      body.replaceChildren(...p.entries.map(entryRow));
      pos.textContent = `entries ${p.entries.length ? at + 1 : 0}-${at + p.entries.length}${p.next !== null ? ", more follow" : ", the last"}`;
      prev.disabled = at === 0;
      next.disabled = p.next === null;
      next.dataset.from = p.next === null ? "" : String(p.next);
      err.textContent = "";
    } catch (e) { err.replaceChildren(failure(e)); }
  };
  prev.addEventListener("click", () => draw(Math.max(0, at - TIMELINE_PAGE)));
  next.addEventListener("click", () => draw(Number(next.dataset.from)));
  const box = el("div", {},
    el("div", { class: "scroll" }, el("table", { id: "timeline" },
      el("thead", {}, el("tr", {}, el("th", {}, "#"), el("th", { class: "wide" }, "At"), el("th", {}, "Input"),
        el("th", {}, "Status"), el("th", {}, "Decision"))), body)),
    el("div", { class: "pager" }, prev, pos, next), err);
  return { box, ready: draw(0) };
}

function fixCommands(s) {
  if (s.state !== "STUCK") return null;
  return el("div", { class: "card" }, el("h2", {}, "Fix it with layby-ctl"),
    el("p", {}, "The console only reads. Retry the compensation where it stopped, or mark the saga repaired by hand:"),
    el("pre", { class: "cmd", id: "cmd-retry" }, `layby-ctl saga retry ${s.sagaId} --reason '...'`),
    el("pre", { class: "cmd", id: "cmd-resolve" }, `layby-ctl saga resolve ${s.sagaId} --reason '...'`));
}

async function sagaPage(id) {
  show(el("p", {}, "Loading…"));
  let s;
  try { s = await admin.saga(id, { timelineLimit: TIMELINE_PAGE }); } catch (e) { show(failure(e)); return; }
  const facts = [["Saga", s.sagaId], ["Type", `${s.type} v${s.version} (started by ${s.startedBy})`],
    ["State", stateBadge(s.state)], ["Step", `${s.step} ${s.stepName}`], ["Created", s.created],
    ["Updated", s.updated], ["Timer", s.timer ? `${s.timer.kind} step ${s.timer.step} due ${s.timer.due}` : "none"]];
  if (s.failure) facts.push(["Failure", `${s.failure.code}: ${s.failure.reason}`]);
  if (s.lastError) facts.push(["Last error", s.lastError]);
  if (s.resolved) facts.push(["Resolved by", `${s.resolved.by}: ${s.resolved.reason}`]);
  const tl = timeline(timelineSource(id, s));
  show(
    el("div", { class: "card" }, el("h1", {}, "Saga"),
      el("table", { id: "saga-facts" }, facts.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", { class: "mono" }, v))))),
    fixCommands(s),
    el("div", { class: "card" }, el("h2", {}, "Steps"), stepsDiagram(s.steps || [])),
    el("div", { class: "card" }, el("h2", {}, "Record"), json(s.record, "saga-record")),
    el("div", { class: "card" }, el("h2", {}, "Timeline"), tl.box));
  await tl.ready;
}

// --- routing -----------------------------------------------------------------

// What the pages of other modules (orders.js, deadletters.js) draw with.
const ui = { show, failure, sagaTable, busy };

const routes = [
  [/^#\/overview$/, () => overviewPage(show, failure)],
  [/^#\/saga\/([0-9a-f-]{36})$/, (m) => sagaPage(m[1])],
  [/^#\/stuck$/, () => stuckPage()],
  [/^#\/orders\/([0-9a-f-]{36})$/, (m) => orderPage(ui, m[1])],
  [/^#\/orders$/, () => orderPage(ui, "")],
  [/^#\/sagas$/, () => sagasPage({}, "Sagas")],
  [/^#\/dead-letters\/([0-9]+)$/, (m) => deadLetterPage(ui, m[1])],
  [/^#\/dead-letters$/, () => deadLettersPage(ui)],
];

// Draws the page of the hash; #view says aria-busy until its data is drawn.
async function render() {
  const on = signedIn();
  form.hidden = on;
  view.hidden = !on;
  nav.hidden = !on;
  if (!on) { show(); return; }
  for (const [re, fn] of routes) {
    const m = re.exec(location.hash);
    if (m) { await busy(fn(m)); return; }
  }
  location.hash = "#/stuck";
}

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const err = document.getElementById("signin-error");
  err.textContent = "";
  try {
    await signIn(form.username.value, form.password.value);
    form.reset();
    render();
  } catch (e) {
    err.textContent = e instanceof ApiError && e.status === 401 ? "Wrong username or password." : e.message;
  }
});
document.getElementById("signout").addEventListener("click", () => { signOut(); render(); });
window.addEventListener("hashchange", render);
render();
