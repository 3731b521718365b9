// orders.js - an order's page: from an order id to the order (any member's),
// its sagas, its payment ledger (each gateway call and refund, with time and
// amount) and its delivery history. Two requests: the order with its ledger
// and delivery (GET /api/v1/admin/orders/{id}) and its sagas (the saga list
// filtered by order id). `ui` is app.js's page kit (show, failure, sagaTable).
import { admin } from "./api.js";
import { el, table, stateBadge } from "./dom.js";

const won = (n) => `${Number(n || 0).toLocaleString("en-US")} won`;

function facts(o) {
  const rows = [["Order", o.orderId], ["Status", stateBadge(o.status)], ["Total", won(o.total)],
    ["Created", o.createdAt || ""], ["Updated", o.updatedAt || ""]];
  if (o.paymentDeadline) rows.push(["Payment deadline", o.paymentDeadline]);
  if (o.reason) rows.push(["Reason", o.reason]);
  return el("table", { id: "order-facts" },
    rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", { class: "mono" }, v))));
}

function items(o) {
  return table([["Product"], ["Name"], ["Quantity"], ["Unit price", "wide"], ["Subtotal"]],
    (o.items || []).map((i) => el("tr", {},
      el("td", { class: "mono" }, i.productId), el("td", {}, i.name || ""), el("td", {}, String(i.quantity || 0)),
      el("td", { class: "wide" }, won(i.unitPrice)), el("td", {}, won(i.subtotal)))));
}

// What the ledger adds up to: captured, refunded (what the lines say).
function ledgerSums(lines) {
  let charged = 0, refunded = 0;
  for (const l of lines) {
    if (l.kind === "CHARGE" && l.status === "CAPTURED") charged += Number(l.amount || 0);
    if (l.kind === "REFUND") refunded += Number(l.amount || 0);
  }
  return `charged ${won(charged)}, refunded ${won(refunded)}`;
}

function ledger(l) {
  const lines = (l && l.lines) || [];
  if (!lines.length) return el("p", { id: "ledger-empty" }, "No charge attempt and no refund.");
  const rows = lines.map((x) => el("tr", { "data-line": x.id },
    el("td", { class: "mono" }, x.at), el("td", {}, x.kind), el("td", {}, stateBadge(x.status)),
    el("td", { class: "num" }, String(x.amount || 0)),
    el("td", { class: "wide" }, x.kind === "CHARGE" && x.status === "CAPTURED" ? `refunded ${x.refunded || 0}` : ""),
    el("td", {}, x.reason || ""),
    el("td", { class: "mono wide" }, x.key || ""),
    el("td", { class: "mono wide" }, el("a", { href: `#/saga/${x.sagaId}` }, x.sagaId))));
  return el("div", {},
    el("p", { id: "ledger-sums" }, ledgerSums(lines), l.truncated ? " (the oldest lines only: the order has more)" : ""),
    el("div", { class: "scroll" }, el("table", { id: "ledger" },
      el("thead", {}, el("tr", {}, ["At", "Kind", "Status", "Amount (won)", ["", "wide"], "Reason", ["Key", "wide"], ["Saga", "wide"]]
        .map((h) => Array.isArray(h) ? el("th", { class: h[1] }, h[0]) : el("th", {}, h)))),
      el("tbody", {}, rows))));
}

function delivery(d) {
  if (!d) return el("p", { id: "delivery-none" }, "No delivery: the order was not paid, or was cancelled before one was made.");
  return el("div", {},
    el("p", { class: "mono" }, "delivery ", d.deliveryId, " ", stateBadge(d.status)),
    el("table", { id: "delivery" }, el("thead", {}, el("tr", {}, el("th", {}, "Status"), el("th", {}, "At"))),
      el("tbody", {}, (d.timeline || []).map((s) => el("tr", {}, el("td", {}, stateBadge(s.status)), el("td", { class: "mono" }, s.at))))));
}

export async function orderPage(ui, orderId) {
  const input = el("input", { name: "orderId", value: orderId || "", placeholder: "order id", size: 36 });
  const out = el("div");
  const go = (ev) => { ev.preventDefault(); location.hash = `#/orders/${input.value.trim()}`; };
  ui.show(el("div", { class: "card" }, el("h1", {}, "Order"),
    el("form", { class: "filters", onsubmit: go }, el("label", {}, "Order ", input), el("button", { type: "submit" }, "Open")),
    out));
  if (!orderId) return;
  // both at once; the sagas exist even for an order the order service lost
  const [doc, sagas] = await Promise.allSettled([admin.order(orderId), admin.sagas({ orderId })]);
  if (doc.status === "fulfilled") {
    const d = doc.value;
    out.append(facts(d.order),
      el("h2", {}, "Items"), items(d.order),
      el("h2", {}, "Payment ledger"), ledger(d.ledger),
      el("h2", {}, "Delivery"), delivery(d.delivery));
  } else if (doc.reason && doc.reason.status === 404) {
    out.append(el("p", { id: "order-missing" }, "No such order."));
  } else {
    out.append(ui.failure(doc.reason));
  }
  const box = el("div", { id: "order-sagas" });
  out.append(el("h2", {}, "Its sagas"), box);
  if (sagas.status === "fulfilled")
    box.append(sagas.value.items.length ? ui.sagaTable(sagas.value.items) : el("p", {}, "No saga for this order."));
  else if (doc.status === "fulfilled" || doc.reason.status !== sagas.reason.status)
    box.append(ui.failure(sagas.reason)); // one refusal is enough when both say the same
}
