// console.mjs - the operations console in headless Debian chromium, driven by
// puppeteer-core over the DevTools protocol. tests/e2e/console_test.c makes
// the data (admin, member, sagas, layby-ctl's document of the STUCK one) and
// runs this with LAYBY_CONSOLE_* set; it fails (exit 1) on the first broken
// promise. Every page: no console error, no failed request, a screenshot at
// 1280 and 390 px wide in LAYBY_CONSOLE_SHOTS.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test, after, before } from "node:test";
import puppeteer from "puppeteer-core";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set (run through tests/e2e/console_test.c)`);
  return v;
};
const URL0 = env("LAYBY_CONSOLE_URL");
const SHOTS = env("LAYBY_CONSOLE_SHOTS");
const PW = env("LAYBY_CONSOLE_PASSWORD");
const STUCK = env("LAYBY_CONSOLE_STUCK");
const LONG = env("LAYBY_CONSOLE_LONG");
const DONE = env("LAYBY_CONSOLE_DONE");
const CTL_DOC = JSON.parse(readFileSync(env("LAYBY_CONSOLE_SAGA_JSON"), "utf8"));
// the order: layby-ctl order show --json, its ledger rows as PostgreSQL
// holds them, its total; the dead letters: layby-ctl dlq show of each
const ORDER = env("LAYBY_CONSOLE_ORDER");
const CTL_ORDER = JSON.parse(readFileSync(env("LAYBY_CONSOLE_ORDER_JSON"), "utf8"));
const LEDGER = JSON.parse(readFileSync(env("LAYBY_CONSOLE_LEDGER_JSON"), "utf8"));
const ORDER_TOTAL = Number(env("LAYBY_CONSOLE_ORDER_TOTAL"));
const CTL_DLQ = JSON.parse(readFileSync(env("LAYBY_CONSOLE_DLQ_JSON"), "utf8"));
const WIDTHS = [1280, 390];
// waits for a page to be ready: a login (Argon2id) and a page behind ASan daemons
// took over 20 s at load 25; these bound nothing the issue asks for
const WAIT = { timeout: 60000 };
const RENDER_MS = 1000; // issue 24: a 1,000-entry saga renders in under a second

let browser;

before(async () => {
  browser = await puppeteer.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    // root in CI has no user namespace sandbox; /dev/shm may be small there
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
});
after(async () => { if (browser) await browser.close(); });

// A tab that records what must not happen: console errors, uncaught
// exceptions, failed requests, and HTTP errors other than `allowed` statuses.
async function tab(allowed = []) {
  // chromium logs each HTTP error answer as a console error too
  const expected = (text) => allowed.some((st) => text.includes(`status of ${st} `));
  const page = await browser.newPage();
  const bad = [];
  const urls = [];
  let token = null;
  page.on("console", (m) => {
    if (m.type() === "error" && !expected(m.text())) bad.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => bad.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => bad.push(`failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on("request", (r) => urls.push(r.url()));
  page.on("response", async (r) => {
    if (r.status() >= 400 && !allowed.includes(r.status())) bad.push(`HTTP ${r.status()} ${r.url()}`);
    if (r.url().endsWith("/api/v1/auth/login") && r.status() === 200)
      token = (await r.json()).accessToken;
  });
  await page.setViewport({ width: WIDTHS[0], height: 900 });
  return { page, bad, urls, token: () => token };
}

async function signIn(t, user) {
  const res = await t.page.goto(`${URL0}/console/`, { waitUntil: "networkidle0", ...WAIT });
  assert.equal(res.status(), 200, `GET /console/: ${res.status()} ${await res.text()}`);
  assert.deepEqual(t.bad, [], "the sign-in page: console errors or failed requests");
  await t.page.type("#signin input[name=username]", user);
  await t.page.type("#signin input[name=password]", PW);
  await t.page.click("#signin button[type=submit]");
  await drawnAfter(t, 0, "#/stuck");
}

// The view's draw count (app.js's busy()).
const drawn = (t) => t.page.$eval("#view", (v) => Number(v.dataset.drawn || 0));

// Waits until the view has drawn after draw number n (and route, if given).
async function drawnAfter(t, n, route) {
  await t.page.waitForFunction((k, r) => {
    const v = document.getElementById("view");
    return Number(v.dataset.drawn || 0) > k && v.getAttribute("aria-busy") === "false" &&
      (!r || v.dataset.route === r);
  }, WAIT, n, route || "");
}

// Goes to hash route and waits for its page to be drawn.
async function go(t, hash) {
  if (await t.page.evaluate(() => location.hash) === hash) return;
  const n = await drawn(t);
  await t.page.evaluate((h) => { location.hash = h; }, hash);
  await drawnAfter(t, n, hash);
}

// A screenshot of the page at each width, and nothing bad seen so far.
async function shoot(t, name) {
  for (const w of WIDTHS) {
    await t.page.setViewport({ width: w, height: 900 });
    await t.page.screenshot({ path: `${SHOTS}/${name}-${w}.png`, fullPage: true });
    const overflow = await t.page.evaluate(() =>
      document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `${name} at ${w} px scrolls sideways by ${overflow} px`);
  }
  await t.page.setViewport({ width: WIDTHS[0], height: 900 });
  assert.deepEqual(t.bad, [], `${name}: console errors or failed requests`);
}

// The token must live only in api.js's closure.
async function tokenNowhere(t) {
  const tok = t.token();
  assert.ok(tok && tok.length > 20, "the login answered no token");
  const where = await t.page.evaluate((tk) => {
    const hit = [];
    for (const [n, s] of [["localStorage", localStorage], ["sessionStorage", sessionStorage]])
      for (let i = 0; i < s.length; i++) {
        const k = s.key(i);
        if (k.includes(tk) || (s.getItem(k) || "").includes(tk)) hit.push(n);
      }
    if (document.cookie.includes(tk)) hit.push("document.cookie");
    if (location.href.includes(tk)) hit.push("location");
    if (document.documentElement.outerHTML.includes(tk)) hit.push("the DOM");
    for (const k of Object.keys(window)) {
      try { if (typeof window[k] === "string" && window[k].includes(tk)) hit.push(`window.${k}`); } catch { /* */ }
    }
    return hit;
  }, tok);
  assert.deepEqual(where, [], "the access token was found outside api.js's closure");
  const cookies = await t.page.browserContext().cookies();
  assert.ok(!cookies.some((c) => c.value.includes(tok)), "the token is in a cookie");
  const inUrl = t.urls.filter((u) => u.includes(tok));
  assert.deepEqual(inUrl, [], "the token went into a URL");
}

const cellTexts = (page, sel) =>
  page.$$eval(sel, (rows) => rows.map((r) => [...r.children].map((c) => c.textContent.trim())));

test("an admin signs in, finds the STUCK saga and its timeline is layby-ctl's", async () => {
  const t = await tab();
  await signIn(t, env("LAYBY_CONSOLE_ADMIN"));
  await tokenNowhere(t);

  // the STUCK sagas page lists the test's two STUCK sagas
  await go(t, "#/stuck");
  const stuckIds = await t.page.$$eval("#view table tbody tr td:first-child", (c) => c.map((x) => x.textContent.trim()));
  assert.ok(stuckIds.includes(STUCK), `STUCK saga ${STUCK} not in ${stuckIds}`);
  assert.ok(!stuckIds.includes(DONE), "a COMPLETED saga is listed as STUCK");
  await shoot(t, "stuck");

  // open it from the list
  let n = await drawn(t);
  await t.page.click(`#view a[href="#/saga/${STUCK}"]`);
  await drawnAfter(t, n, `#/saga/${STUCK}`);
  const facts = Object.fromEntries(await cellTexts(t.page, "#saga-facts tr"));
  assert.equal(facts.Saga, CTL_DOC.sagaId);
  assert.equal(facts.State, CTL_DOC.state);
  assert.equal(facts.Type, `${CTL_DOC.type} v${CTL_DOC.version} (started by ${CTL_DOC.startedBy})`);
  assert.equal(facts.Step, `${CTL_DOC.step} ${CTL_DOC.stepName}`);
  const retry = await t.page.$eval("#cmd-retry", (e) => e.textContent);
  assert.ok(retry.startsWith(`layby-ctl saga retry ${STUCK} --reason`), retry);
  const record = await t.page.$eval("#saga-record", (e) => JSON.parse(e.textContent));
  assert.deepEqual(record, CTL_DOC.record, "the record differs from layby-ctl's");
  const steps = await t.page.$$eval(".steps .step", (s) => s.map((x) => x.dataset.status));
  assert.deepEqual(steps, CTL_DOC.steps.map((s) => s.status), "the steps diagram");

  // every timeline entry: id, time, kind, states, decision line and decoded body
  const rows = await t.page.$$eval("#timeline tbody tr", (trs) => trs.map((tr) => ({
    id: Number(tr.dataset.entry),
    cells: [...tr.children].map((c) => c.firstChild ? c.firstChild.textContent.trim() : ""),
    body: JSON.parse(tr.querySelector("pre.body").textContent),
    commands: [...tr.querySelectorAll(".command")].map((c) => c.textContent.trim()),
  })));
  assert.equal(rows.length, CTL_DOC.timeline.length, "one row per entry of layby-ctl's timeline");
  CTL_DOC.timeline.forEach((e, i) => {
    const r = rows[i];
    assert.equal(r.id, e.id, `entry ${i}: id`);
    assert.deepEqual(r.cells.slice(0, 5), [String(e.id), e.at, e.kind, e.from, e.line], `entry ${i}: cells`);
    assert.deepEqual(r.body, e.input, `entry ${i}: the decoded body differs from layby-ctl's`);
    assert.deepEqual(r.commands, (e.commands || []).map((c) =>
      `${c.compensate ? "undo" : "send"} ${c.type} to ${c.subject} (step ${c.step}, attempt ${c.attempt})`),
    `entry ${i}: commands`);
  });
  await shoot(t, "saga");

  // the saga list with a filter
  await go(t, "#/sagas");
  await t.page.select("#view select[name=state]", "COMPLETED");
  n = await drawn(t);
  await t.page.click("#view form button[type=submit]");
  await drawnAfter(t, n);
  // (the order test's pay saga is COMPLETED too)
  const done = await cellTexts(t.page, "#view table tbody tr");
  assert.ok(done.some((r) => r[0] === DONE), `the COMPLETED saga ${DONE} is not in ${done}`);
  assert.ok(done.every((r) => r[2] === "COMPLETED"), "sagas filtered by COMPLETED");
  await shoot(t, "sagas");

  await tokenNowhere(t);
  await t.page.close();
});

test("an order's page: its sagas, payment ledger lines and delivery history", async () => {
  const t = await tab();
  await signIn(t, env("LAYBY_CONSOLE_ADMIN"));
  await go(t, "#/orders");
  await shoot(t, "orders-empty");
  await t.page.type("#view input[name=orderId]", ORDER);
  let n = await drawn(t);
  await t.page.click("#view form button[type=submit]");
  await drawnAfter(t, n, `#/orders/${ORDER}`);

  const facts = Object.fromEntries(await cellTexts(t.page, "#order-facts tr"));
  assert.equal(facts.Order, ORDER);
  assert.equal(facts.Status, CTL_ORDER.order.status);
  assert.equal(facts.Status, "PAID");

  // the ledger: the rows PostgreSQL holds, in order; a paid order has one capture
  const lines = await t.page.$$eval("#ledger tbody tr", (trs) => trs.map((tr) => ({
    id: tr.dataset.line, cells: [...tr.children].map((c) => c.textContent.trim()),
    saga: tr.querySelector("a[href^='#/saga/']")?.textContent.trim() })));
  assert.equal(lines.length, LEDGER.length, `ledger lines ${JSON.stringify(lines)} vs rows ${JSON.stringify(LEDGER)}`);
  LEDGER.forEach((row, i) => {
    const [at, kind, status, amount] = lines[i].cells;
    assert.equal(lines[i].id, row.id, `line ${i}: id`);
    assert.deepEqual([kind, status, Number(amount)], [row.kind, row.status, Number(row.amount)], `line ${i}`);
    assert.equal(Date.parse(at), Date.parse(row.at), `line ${i}: time ${at} vs ${row.at}`);
  });
  const captures = LEDGER.filter((r) => r.kind === "CHARGE" && r.status === "CAPTURED");
  assert.equal(captures.length, 1, "a paid order has one capture");
  assert.equal(Number(captures[0].amount), ORDER_TOTAL, "the capture is the order's total");
  assert.ok(LEDGER.some((r) => r.status === "DECLINED"), "the declined attempt is a line too");

  // the delivery history: layby-ctl's, ending DELIVERED
  const history = await cellTexts(t.page, "#delivery tbody tr");
  assert.deepEqual(history, CTL_ORDER.delivery.timeline.map((s) => [s.status, s.at]), "the delivery history");
  assert.deepEqual(history.map((h) => h[0]), ["PREPARING", "SHIPPING", "DELIVERED"]);

  // its sagas: layby-ctl's (the place saga and each pay saga); every ledger
  // line was made by one of them
  const sagaIds = await t.page.$$eval("#order-sagas tbody tr td:first-child", (c) => c.map((x) => x.textContent.trim()));
  assert.deepEqual([...sagaIds].sort(), CTL_ORDER.sagas.map((x) => x.sagaId).sort(), "the order's sagas");
  for (const l of lines) assert.ok(sagaIds.includes(l.saga), `ledger line ${l.id}: saga ${l.saga} is not the order's`);
  await shoot(t, "order");

  // and follow the capture's saga
  const capSaga = lines.find((l) => l.id === captures[0].id).saga;
  n = await drawn(t);
  await t.page.click(`#order-sagas a[href="#/saga/${capSaga}"]`);
  await drawnAfter(t, n, `#/saga/${capSaga}`);
  const sf = Object.fromEntries(await cellTexts(t.page, "#saga-facts tr"));
  assert.equal(sf.Saga, capSaga);
  assert.equal(sf.State, CTL_ORDER.sagas.find((x) => x.sagaId === capSaga).state);
  await tokenNowhere(t);
  await t.page.close();
});

test("dead letters: the list, a filter, and each letter as layby-ctl dlq show prints it", async () => {
  const t = await tab();
  await signIn(t, env("LAYBY_CONSOLE_ADMIN"));
  await go(t, "#/dead-letters");
  const seqs = await t.page.$$eval("#view tbody tr", (r) => r.map((x) => Number(x.dataset.seq)));
  assert.deepEqual(seqs, CTL_DLQ.map((d) => d.seq), "the list: every letter, oldest first");
  await shoot(t, "dead-letters");

  // filtered by type: the undecodable one alone
  const raw = CTL_DLQ.find((d) => d.body === undefined);
  const decoded = CTL_DLQ.find((d) => d.body !== undefined);
  assert.ok(raw && decoded, "the test planted one undecodable and one decodable letter");
  await t.page.type("#view input[name=type]", raw.type);
  let n = await drawn(t);
  await t.page.click("#view form button[type=submit]");
  await drawnAfter(t, n);
  assert.deepEqual(await t.page.$$eval("#view tbody tr", (r) => r.map((x) => Number(x.dataset.seq))), [raw.seq],
    "filtered by type");

  for (const d of [raw, decoded]) {
    if (d === raw) { // from the list
      n = await drawn(t);
      await t.page.click(`#view a[href="#/dead-letters/${d.seq}"]`);
      await drawnAfter(t, n, `#/dead-letters/${d.seq}`);
    } else await go(t, `#/dead-letters/${d.seq}`);
    const f = Object.fromEntries(await cellTexts(t.page, "#letter-facts tr"));
    const h = d.headers;
    assert.deepEqual([f.Seq, f.Time, f["Dead-letter subject"], f.Type],
      [String(d.seq), d.time, d.subject, d.type || ""], `letter ${d.seq}: facts`);
    assert.deepEqual([f["Original subject"], f.Consumer, f["Last error"], f.Deliveries],
      [h["Layby-Dlq-Subject"], h["Layby-Dlq-Consumer"], h["Layby-Dlq-Error"], h["Layby-Dlq-Deliveries"]],
      `letter ${d.seq}: where it died and why`);
    assert.ok(f.Consumer && f["Last error"], `letter ${d.seq}: no consumer or last error`);
    const shown = Object.fromEntries(await cellTexts(t.page, "#letter-headers tr"));
    assert.deepEqual(shown, Object.fromEntries(Object.entries(h).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : v])),
      `letter ${d.seq}: headers`);
    assert.equal(await t.page.$eval("#cmd-redrive", (e) => e.textContent), `layby-ctl dlq redrive ${d.seq}`);
    if (d.body !== undefined) {
      assert.deepEqual(await t.page.$eval("#letter-body", (e) => JSON.parse(e.textContent)), d.body,
        `letter ${d.seq}: the decoded body differs from layby-ctl's`);
      await shoot(t, "dead-letter");
    } else {
      assert.equal(await t.page.$eval("#letter-raw", (e) => e.textContent), d.bodyBase64);
      assert.ok((await t.page.$eval("#letter-undecodable", (e) => e.textContent)).includes(d.error));
      await shoot(t, "dead-letter-raw");
    }
  }
  await tokenNowhere(t);
  await t.page.close();
});

// Opens the long saga from another page and measures, in the page, from the
// hash change to the view drawn (request included), split at the end of the
// saga's request (Resource Timing): the server's part (ASan and a loaded
// machine included) and the drawing after it; and when the next frame painted.
function longSagaOpen(t) {
  return t.page.evaluate((h) => new Promise((resolve) => {
    const v = document.getElementById("view");
    const n = Number(v.dataset.drawn || 0);
    const t0 = performance.now();
    const obs = new MutationObserver(() => {
      if (Number(v.dataset.drawn || 0) <= n || v.getAttribute("aria-busy") !== "false") return;
      obs.disconnect();
      const t1 = performance.now();
      const ends = performance.getEntriesByType("resource")
        .filter((e) => e.name.includes("/api/v1/admin/sagas/") && e.startTime >= t0).map((e) => e.responseEnd);
      const end = Math.max(...ends);
      requestAnimationFrame(() => requestAnimationFrame(() => resolve({
        total: Math.round(t1 - t0), server: Math.round(end - t0), draw: Math.round(t1 - end),
        painted: Math.round(performance.now() - t0) })));
    });
    obs.observe(v, { attributes: true });
    location.hash = h;
  }), `#/saga/${LONG}`);
}

// Issue 24: "a saga with 1,000 log entries renders in under a second". What
// is bounded: the request for its first page and drawing it, from the hash
// change to the view drawn (total), in at least one of RENDER_TRIES tries,
// drawing included: a loaded CI machine (two suites beside each other, ASan
// daemons, chromium on the same 2 cores) stalls a whole try now and then, in
// its request or in its drawing, so the page's own cost is the best try.
// Printed besides: the request's share and when the frame after it painted.
const RENDER_TRIES = 5;

test("a saga with 1,000 log entries renders in under a second", async () => {
  const t = await tab();
  await signIn(t, env("LAYBY_CONSOLE_ADMIN"));
  const tries = [];
  for (let i = 0; i < RENDER_TRIES; i++) {
    if (i > 0) await go(t, "#/stuck");
    const ms = await longSagaOpen(t);
    tries.push(ms);
    console.log(`# 1,000-entry saga, try ${i + 1}: request and drawing ${ms.total} ms ` +
      `(request ${ms.server} ms, drawing ${ms.draw} ms), painted ${ms.painted} ms after the click`);
    if (ms.total < RENDER_MS) break;
  }
  const best = Math.min(...tries.map((m) => m.total));
  assert.ok(best < RENDER_MS, `request and drawing took ${tries.map((m) => m.total)} ms ` +
    `(drawing ${tries.map((m) => m.draw)} ms) in ${tries.length} tries`);
  const rowsOf = () => t.page.$$eval("#timeline tbody tr", (r) => r.map((x) => Number(x.dataset.entry)));
  let ids = await rowsOf();
  assert.ok(ids.length > 0 && ids.length <= 100, `the first page holds ${ids.length} entries`);
  // and each later page, until the end: every entry once, in order
  const seen = [...ids];
  let pages = 1;
  while (!(await t.page.$eval("#timeline-later", (b) => b.disabled))) {
    const t1 = Date.now();
    const before = await t.page.$eval("#timeline-pos", (e) => e.textContent);
    await t.page.click("#timeline-later");
    await t.page.waitForFunction((b) => document.getElementById("timeline-pos").textContent !== b, WAIT, before);
    const pm = Date.now() - t1;
    console.log(`# 1,000-entry saga: page ${pages + 1} in ${pm} ms (request and drawing)`);
    pages++;
    ids = await rowsOf();
    seen.push(...ids);
  }
  assert.ok(seen.length > 1000, `the pages held ${seen.length} entries`);
  assert.ok(seen.every((id, i) => i === 0 || id > seen[i - 1]), "entries out of order or repeated");
  console.log(`# 1,000-entry saga: ${pages} pages`);
  assert.ok(pages >= 10, `a 1,000-entry timeline in ${pages} pages of 100`);
  await shoot(t, "saga-long");
  await t.page.close();
});

test("a member without the admin role sees no data (403) and no token is stored", async () => {
  const t = await tab([403]);
  const answers = [];
  t.page.on("response", (r) => { if (r.url().includes("/api/v1/admin/")) answers.push(r.status()); });
  await signIn(t, env("LAYBY_CONSOLE_MEMBER"));
  for (const h of ["#/stuck", "#/sagas", `#/saga/${STUCK}`, `#/orders/${ORDER}`, "#/dead-letters",
    `#/dead-letters/${CTL_DLQ[0].seq}`]) {
    await go(t, h);
    const shown = await t.page.$eval("#view", (v) => v.textContent);
    assert.ok(shown.includes("not an admin"), `${h}: no refusal shown: ${shown}`);
    assert.ok(!shown.includes(STUCK) || h.includes(STUCK), `${h} shows the STUCK saga to a member`);
    assert.equal(await t.page.$$eval("#view tbody tr", (r) => r.length), 0, `${h} shows rows to a member`);
  }
  assert.ok(answers.length >= 7, "the pages asked no admin endpoint");
  assert.deepEqual([...new Set(answers)], [403], `admin endpoints answered a member ${answers}`);
  await shoot(t, "member-refused");
  await tokenNowhere(t);
  // sign out: the page forgets the token, a reload signs out too
  await t.page.click("#signout");
  await t.page.waitForSelector("#signin:not([hidden])", WAIT);
  await t.page.close();
});

// --- the Overview (overview.js) ---------------------------------------------

// The Overview's answers as the page received them, in order.
function overviewAnswers(t) {
  const got = [];
  t.page.on("response", async (r) => {
    if (r.url().endsWith("/api/v1/admin/overview") && r.status() === 200) got.push(await r.json());
  });
  return got;
}

// Records, in the page, when the Overview's refresh timer (the 5 s
// setInterval) fired and when the Overview was fetched: whether the fetch
// after the tab shows again came from the "visible" handler or from the next
// tick, which a time bound cannot tell (the tick falls anywhere in 0-5 s).
async function overviewClock(t) {
  await t.page.evaluateOnNewDocument(() => {
    const clock = { ticks: [], fetches: [] };
    window.__overviewClock = clock;
    const si = window.setInterval, f0 = window.fetch;
    window.setInterval = (fn, ms, ...a) => si((...b) => {
      if (ms === 5000) clock.ticks.push(performance.now());
      return fn(...b);
    }, ms, ...a);
    window.fetch = (url, ...a) => {
      if (String(url).endsWith("/api/v1/admin/overview")) clock.fetches.push(performance.now());
      return f0(url, ...a);
    };
  });
}

// How many times the page has asked for the Overview so far. Whether it asks
// is what "refreshes" means; counting answers instead would count a request
// sent before the tab hid whose answer a loaded CI machine delays past the
// check (ASan daemons beside another suite answer in seconds now and then).
function overviewAsks(t) {
  const asks = { n: 0 };
  t.page.on("request", (r) => { if (r.url().endsWith("/api/v1/admin/overview")) asks.n++; });
  return asks;
}

const refreshed = (t) => t.page.$eval("#overview", (o) => Number(o.dataset.refreshed || 0)).catch(() => 0);

test("the overview draws its tables and chart from the endpoint and refreshes itself", async () => {
  const t = await tab();
  const answers = overviewAnswers(t);
  const asks = overviewAsks(t);
  await overviewClock(t);
  await signIn(t, env("LAYBY_CONSOLE_ADMIN"));
  await go(t, "#/overview");
  // what is drawn is the last answer: read both between two refreshes
  let ov, drawnNow;
  for (let tries = 0; ; tries++) {
    const n = await refreshed(t);
    await t.page.waitForFunction(() => true); // let the response handler run
    while (answers.length < n) await new Promise((r) => setTimeout(r, 50));
    drawnNow = await t.page.evaluate(() => {
      const rows = (sel) => [...document.querySelectorAll(sel)].map((r) => [...r.children].map((c) => c.textContent.trim()));
      const series = Object.fromEntries([...document.querySelectorAll("#ov-chart polyline")]
        .map((p) => [p.dataset.series, p.dataset.values]));
      const points = [...document.querySelectorAll("#ov-chart polyline")].map((p) => p.getAttribute("points").split(" ").length);
      return { sagas: rows("#ov-sagas tbody tr"), streams: rows("#ov-streams tbody tr"), consumers: rows("#ov-consumers tbody tr"),
        daemons: rows("#ov-daemons tbody tr"), servers: rows("#ov-servers tbody tr"), series, points,
        dlq: document.getElementById("ov-dlq").textContent, audit: document.getElementById("ov-audit").textContent };
    });
    if (await refreshed(t) === n && answers.length === n) { ov = answers[n - 1]; break; }
    assert.ok(tries < 5, "the overview kept refreshing under the test");
  }
  console.log(`# overview: ${JSON.stringify(ov).slice(0, 1500)}`);
  // the chart: one line per series with the endpoint's numbers, a point per bucket
  assert.equal(ov.throughput.length, 30);
  assert.equal(drawnNow.series.started, ov.throughput.map((b) => b.started).join(","), "started line");
  assert.equal(drawnNow.series.completed, ov.throughput.map((b) => b.completed).join(","), "completed line");
  assert.deepEqual(drawnNow.points, [30, 30], "a point per bucket");
  // the tables: the endpoint's rows, in its order
  assert.deepEqual(drawnNow.sagas, ov.sagas.map((s) => [s.type, s.state, String(s.count)]), "sagas by type and state");
  const stuck = ov.sagas.find((s) => s.type === CTL_DOC.type && s.state === "STUCK");
  assert.ok(stuck && stuck.count === 2, `the test's two STUCK sagas: ${JSON.stringify(ov.sagas)}`);
  assert.deepEqual(drawnNow.streams.map((r) => [r[0], r[1]]), ov.streams.map((s) => [s.name, String(s.messages)]), "streams");
  const durables = ov.streams.flatMap((s) => s.consumers);
  assert.ok(durables.length > 0, "the topology's durables");
  assert.deepEqual(drawnNow.consumers.map((r) => r.slice(0, 4)), durables.map((c) =>
    [`${c.stream}/${c.name}`, String(c.pending), String(c.ackPending), String(c.redelivered)]), "durables");
  assert.deepEqual(drawnNow.daemons.map((r) => r[0]), ov.daemons.map((d) => d.name), "daemons");
  const orch = drawnNow.daemons.find((r) => r[0] === "layby-orchestrator");
  assert.deepEqual(orch.slice(1), [String(ov.daemons.find((d) => d.name === "layby-orchestrator").outboxBacklog), "ok"]);
  assert.equal(drawnNow.servers.length, ov.servers.length);
  assert.ok(drawnNow.servers[0][0].includes("(connected)") && drawnNow.servers[0][2] === ov.servers[0].version, "the server");
  assert.equal(drawnNow.dlq, String(ov.deadLetters), "dead letters");
  assert.ok(ov.lastAudit === null ? drawnNow.audit.includes("No audit kept yet")
    : drawnNow.audit.includes(ov.lastAudit.at), `the last audit: ${drawnNow.audit}`);
  await shoot(t, "overview");

  // it refreshes by itself ...
  const n0 = await refreshed(t);
  await t.page.waitForFunction((k) => Number(document.getElementById("overview").dataset.refreshed) > k,
    WAIT, n0);
  // ... not while the tab is hidden (longer than REFRESH_MS), and at once
  // when it shows again: the fetch comes before the timer's next tick
  const asked = () => asks.n;
  await t.page.evaluate(() => {
    Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
    document.dispatchEvent(new Event("visibilitychange"));
  });
  // a request sent just before the hiding is reported a moment later
  await new Promise((r) => setTimeout(r, 300));
  const hiddenAt = asked();
  await new Promise((r) => setTimeout(r, 7000));
  assert.equal(asked(), hiddenAt, "the overview asked again while the tab was hidden");
  const shownPerf = await t.page.evaluate(() => {
    const at = performance.now();
    Object.defineProperty(document, "hidden", { configurable: true, get: () => false });
    document.dispatchEvent(new Event("visibilitychange"));
    return at;
  });
  const shownAt = Date.now();
  while (asked() === hiddenAt && Date.now() - shownAt < 10000) await new Promise((r) => setTimeout(r, 20));
  assert.ok(asked() > hiddenAt, "the overview did not ask within 10 s of the tab showing again");
  const clock = await t.page.evaluate(() => window.__overviewClock);
  const fetched = clock.fetches.find((x) => x >= shownPerf), tick = clock.ticks.find((x) => x >= shownPerf);
  assert.ok(fetched !== undefined && (tick === undefined || fetched < tick),
    `the overview waited for its timer when the tab showed again (shown ${shownPerf}, fetched ${fetched}, tick ${tick})`);
  await t.page.waitForFunction((k) => Number(document.getElementById("overview").dataset.refreshed) > k,
    WAIT, n0 + 1);
  // ... and stops once another page replaced it
  await go(t, "#/stuck");
  const leftAt = asked();
  await new Promise((r) => setTimeout(r, 6500));
  assert.equal(asked(), leftAt, "the overview kept asking after another page replaced it");
  assert.deepEqual(t.bad, [], "console errors or failed requests");
  await tokenNowhere(t);
  await t.page.close();

  // a member: refused, no figure shown
  const m = await tab([403]);
  await signIn(m, env("LAYBY_CONSOLE_MEMBER"));
  await go(m, "#/overview");
  const shown = await m.page.$eval("#view", (v) => v.textContent);
  assert.ok(shown.includes("not an admin"), `#/overview: no refusal shown: ${shown}`);
  assert.equal(await m.page.$$eval("#view tbody tr, #ov-chart", (r) => r.length), 0, "figures shown to a member");
  await shoot(m, "overview-member");
  await m.page.close();
});
