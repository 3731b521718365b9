// deadletters.js - the dead letters of LAYBY_DLQ: a list (oldest first, keyset
// pages, filtered by consumer, type and correlation as the endpoint allows)
// and a letter's page: its decoded body (or raw bytes and why not), headers,
// the consumer that gave up, the last error, and the `layby-ctl dlq redrive`
// command that puts it back (the console only reads). `ui` is app.js's page
// kit (show, failure).
import { admin } from "./api.js";
import { el, table, json } from "./dom.js";

const text = (v) => (v === null || v === undefined ? "" : String(v));

function letterRows(items) {
  return items.map((d) => el("tr", { "data-seq": d.seq },
    el("td", { class: "mono" }, el("a", { href: `#/dead-letters/${d.seq}` }, String(d.seq))),
    el("td", { class: "mono wide" }, d.time),
    el("td", { class: "mono" }, text(d.type)),
    el("td", { class: "mono" }, text(d.consumer)),
    el("td", {}, text(d.lastError))));
}

export async function deadLettersPage(ui) {
  const f = { consumer: "", type: "", correlation: "", cursor: "" };
  const consumerIn = el("input", { name: "consumer", placeholder: "LAYBY_CMD/catalog", size: 20 });
  const typeIn = el("input", { name: "type", placeholder: "layby.v1.ReserveStock", size: 22 });
  const corrIn = el("input", { name: "correlation", placeholder: "order id", size: 36 });
  const total = el("p", { id: "dlq-total" });
  const list = el("div");
  const more = el("button", { type: "button", id: "dlq-more", hidden: true }, "Next page");
  let shown = 0;
  const load = async () => {
    more.disabled = true;
    try {
      const page = await admin.deadLetters(f);
      shown += page.items.length;
      total.textContent = `${page.total} letters in LAYBY_DLQ; ${shown} shown${f.consumer || f.type || f.correlation ? " (filtered)" : ""}`;
      if (page.items.length) {
        const body = list.querySelector("tbody");
        if (body) body.append(...letterRows(page.items));
        else list.append(table([["Seq"], ["Time", "wide"], ["Type"], ["Consumer"], ["Last error"]], letterRows(page.items)));
      } else if (!shown) list.replaceChildren(el("p", {}, "No dead letter matches."));
      f.cursor = page.nextCursor || "";
      more.hidden = !page.nextCursor;
    } catch (e) { list.append(ui.failure(e)); more.hidden = true; }
    more.disabled = false;
  };
  const apply = async (ev) => {
    ev.preventDefault();
    Object.assign(f, { consumer: consumerIn.value.trim(), type: typeIn.value.trim(),
                       correlation: corrIn.value.trim(), cursor: "" });
    shown = 0;
    list.replaceChildren();
    await ui.busy(load());
  };
  more.addEventListener("click", () => ui.busy(load()));
  ui.show(el("div", { class: "card" }, el("h1", {}, "Dead letters"),
    el("p", {}, "A page looks at 1,000 letters at most, so a filtered page may hold fewer than it could and still have a next one."),
    el("form", { class: "filters", onsubmit: apply },
      el("label", {}, "Consumer ", consumerIn), el("label", {}, "Type ", typeIn),
      el("label", {}, "Correlation ", corrIn), el("button", { type: "submit" }, "Filter")),
    total, list, el("div", { class: "pager" }, more)));
  await load();
}

export async function deadLetterPage(ui, seq) {
  let d;
  try { d = await admin.deadLetter(seq); } catch (e) { ui.show(ui.failure(e)); return; }
  const facts = [["Seq", String(d.seq)], ["Time", d.time], ["Dead-letter subject", d.subject],
    ["Original subject", text(d.originalSubject)], ["Consumer", text(d.consumer)],
    ["Deliveries", text(d.deliveries)], ["Type", text(d.type)], ["Last error", text(d.lastError)]];
  const headers = Object.entries(d.headers || {}).map(([k, v]) =>
    el("tr", {}, el("th", { class: "mono" }, k), el("td", { class: "mono" }, Array.isArray(v) ? v.join(", ") : v)));
  const body = d.body !== undefined
    ? [el("p", {}, "Decoded as ", el("span", { class: "mono" }, text(d.type)), ":"), json(d.body, "letter-body")]
    : [el("p", { class: "error", id: "letter-undecodable" }, "Cannot decode: ", text(d.error)),
       el("p", {}, "Its bytes, base64:"), el("pre", { id: "letter-raw" }, text(d.bodyBase64))];
  ui.show(
    el("div", { class: "card" }, el("h1", {}, "Dead letter"),
      el("table", { id: "letter-facts" }, facts.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", { class: "mono" }, v))))),
    el("div", { class: "card" }, el("h2", {}, "Put it back with layby-ctl"),
      el("p", {}, "The console only reads. Once the cause is fixed, send it again to its original subject:"),
      el("pre", { class: "cmd", id: "cmd-redrive" }, d.redrive)),
    el("div", { class: "card" }, el("h2", {}, "Body"), body),
    el("div", { class: "card" }, el("h2", {}, "Headers"),
      el("div", { class: "scroll" }, el("table", { id: "letter-headers" }, el("tbody", {}, headers)))));
}
