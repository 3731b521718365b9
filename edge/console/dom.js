// dom.js - building elements from data. Text only ever goes in as text
// (textContent), never as markup, so a datum cannot become code.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function table(headers, rows) {
  return el("div", { class: "scroll" },
    el("table", {},
      el("thead", {}, el("tr", {}, headers.map(([h, cls]) => el("th", { class: cls }, h)))),
      el("tbody", {}, rows)));
}

export function stateBadge(state) {
  return el("span", { class: `state state-${state}` }, state);
}

export function json(value, id) {
  return el("pre", { id }, JSON.stringify(value, null, 2));
}
