// depot console: pages drawn in the browser from depot's public API (/catalog, /api, /ingest), no build step.
//
// Extension points, for the features that land later (history, claims, revert and sources use them):
//   registerPage(name, render)          a page at #/name/...
//   rowSections.push({title, render})   a section of the row page (history and claims go here)
//   batchSections.push({title, render}) a section of a batch's page (revert and changes go here)
//   rejectionActions.push({when, render}) a control on each unresolved rejected row
//   navLinks                            the header's links are plain <a data-page> in the shell

const KEY_STORE = "depot.key"; // sessionStorage: the key lives as long as the tab
const PAGE = 50;
const state = { catalog: null, access: "write", byName: {}, timers: [], openapi: null };

// ---------------------------------------------------------------------------------------- helpers

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function say(text) {
  const box = document.getElementById("status");
  box.textContent = text;
  clearTimeout(say.timer);
  say.timer = setTimeout(() => { box.textContent = ""; }, 4000);
}

function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORE);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

// Every request of the console goes through here: the user's key, PostgREST's error shape.
export async function api(path, { method = "GET", headers = {}, body, raw = false } = {}) {
  const response = await fetch(path, { method, body, headers: { ...authHeaders(), ...headers } });
  if (response.status === 401) {
    const had = sessionStorage.getItem(KEY_STORE);
    sessionStorage.removeItem(KEY_STORE);
    askForKey(had ? "That key was refused; enter a valid one." : null);
    throw new ApiError(401, { message: "An API key is needed" });
  }
  if (raw) return response;
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!response.ok) throw new ApiError(response.status, data);
  return { data, headers: response.headers, status: response.status };
}

function errorBox(error) {
  const b = error.body || {};
  return h("div", { class: "notice bad", role: "alert" },
    h("strong", {}, `${error.status || ""} ${b.message || error.message}`),
    b.details ? h("pre", {}, typeof b.details === "string" ? b.details : JSON.stringify(b.details, null, 2)) : null,
    b.hint ? h("p", {}, b.hint) : null);
}

const canWrite = () => state.access === "write";
const table = (name) => state.byName[name];
const isNumeric = (type) => ["integer", "bigint", "double precision", "numeric", "real"].includes(type)
  || /int|float|numeric|double/.test(type);
const fmt = (n) => (n === null || n === undefined ? "" : Number(n).toLocaleString("en"));

function cell(value) {
  if (value === null || value === undefined) return h("span", { class: "null" }, "null");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

// Tables whose rows have a page of their own in the console; a read-only table has no
// /api/{table}/{key} route, so its rows are otherwise shown as a filtered grid.
const ROW_PAGES = { ingest_batches: (key) => `#/batches/${encodeURIComponent(key)}` };

function rowHref(tableName, key) {
  if (ROW_PAGES[tableName]) return ROW_PAGES[tableName](key);
  const t = table(tableName);
  if (t && t.read_only) return `#/browse/${tableName}?${new URLSearchParams({ [t.key_column]: `eq.${key}` })}`;
  return `#/row/${encodeURIComponent(tableName)}/${encodeURIComponent(key)}`;
}

// A reference as a link: to the referenced row's page when it is addressed by that one column,
// else to the referenced table filtered on the reference's columns.
function referenceHref(ref, row) {
  const values = ref.columns.map((c) => row[c]);
  if (values.some((v) => v === null || v === undefined)) return null;
  const target = table(ref.table);
  if (target && ref.target_columns.length === 1 && target.key_column === ref.target_columns[0]) {
    return rowHref(ref.table, values[0]);
  }
  const q = new URLSearchParams();
  ref.target_columns.forEach((c, i) => q.set(c, `eq.${values[i]}`));
  return `#/browse/${ref.table}?${q}`;
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split(/\?(.*)/s);
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query) };
}

function table_(columns, rows, { caption, cellFor } = {}) {
  return h("div", { class: "scroll", role: "region", "aria-label": caption || "table", tabindex: "0" },
    h("table", { class: "grid" },
      caption ? h("caption", { class: "muted" }, caption) : null,
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.label || c)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, columns.map((c) => {
        const v = cellFor ? cellFor(c, r) : r[c];
        return h("td", { class: typeof v === "number" ? "num" : null }, v instanceof Node ? v : cell(v));
      }))))));
}

// ------------------------------------------------------------------------------------- key prompt

function askForKey(message) {
  const main = document.getElementById("main");
  const input = h("input", { id: "key", type: "password", autocomplete: "off", required: true });
  main.replaceChildren(
    h("h1", { tabindex: "-1" }, "API key"),
    h("p", {}, message || "This depot asks for an API key. It is kept for this tab only."),
    h("form", { class: "controls", onsubmit: (e) => {
      e.preventDefault();
      sessionStorage.setItem(KEY_STORE, input.value.trim());
      start();
    } }, h("label", { for: "key" }, "Key", input), h("button", { class: "primary", type: "submit" }, "Use this key")));
  input.focus();
}

function renderWho() {
  const who = document.getElementById("who");
  const key = sessionStorage.getItem(KEY_STORE);
  who.replaceChildren(
    h("span", {}, state.access === "write" ? "Access: read and write" : "Access: read only"),
    key ? h("button", { type: "button", onclick: () => { sessionStorage.removeItem(KEY_STORE); location.reload(); } },
      "Forget key") : null);
  document.querySelectorAll("[data-write]").forEach((el) => { el.hidden = !canWrite(); });
}

// ------------------------------------------------------------------------------------------ pages

const pages = {};
export function registerPage(name, render) { pages[name] = render; }
export const rowSections = [];
export const batchSections = [];

async function route() {
  state.timers.forEach(clearTimeout);
  state.timers = [];
  const { parts, query } = parseHash();
  const name = parts[0] || "tables";
  document.querySelectorAll("#nav a").forEach((a) => {
    if (a.dataset.page === name || (name === "browse" && a.dataset.page === "tables")
        || (name === "row" && a.dataset.page === (parts[1] === "sources" ? "sources" : "tables"))) {
      a.setAttribute("aria-current", "page");
    } else a.removeAttribute("aria-current");
  });
  const main = document.getElementById("main");
  const render = pages[name] || pages.tables;
  // Keyboard users keep their place when only the query changed (a sort, a filter, a page):
  // the control they used is found again by its id or label; a new page focuses its heading.
  const path = parts.join("/");
  const active = document.activeElement;
  const samePage = route.lastPath === path;
  const focusKey = active && main.contains(active)
    ? (active.id ? `#${CSS.escape(active.id)}` : active.getAttribute("aria-label")
      ? `[aria-label="${CSS.escape(active.getAttribute("aria-label"))}"]` : null) : null;
  route.lastPath = path;
  try {
    const content = await render(parts.slice(1), query);
    main.replaceChildren(...[content].flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  } catch (error) {
    if (error.status === 401) return;
    main.replaceChildren(h("h1", { tabindex: "-1" }, "Something went wrong"), errorBox(error));
  }
  const heading = main.querySelector("h1");
  document.title = `${heading ? heading.textContent : "depot"} · depot console`;
  const again = samePage && focusKey ? main.querySelector(focusKey) : null;
  if (again && !again.disabled) again.focus();
  else if (route.moved && heading) { heading.setAttribute("tabindex", "-1"); heading.focus(); }
  route.moved = true;
  document.body.dataset.shown = location.hash; // what the browser tests wait for
}

// 1. Tables ---------------------------------------------------------------------------------------

function checksOf(column) {
  const s = column.schema.anyOf ? column.schema.anyOf[0] : column.schema;
  const out = [];
  if (s.enum) out.push(`one of ${s.enum.join(", ")}`);
  if (s.pattern) out.push(`matches ${s.pattern}`);
  if (s.minimum !== undefined && column.type !== "integer") out.push(`≥ ${s.minimum}`);
  if (s.maximum !== undefined && column.type !== "integer") out.push(`≤ ${s.maximum}`);
  if (s.exclusiveMinimum !== undefined) out.push(`> ${s.exclusiveMinimum}`);
  if (s.exclusiveMaximum !== undefined) out.push(`< ${s.exclusiveMaximum}`);
  if (s.maxLength !== undefined) out.push(`at most ${s.maxLength} characters`);
  return out.join("; ");
}

function declaration(t) {
  const refs = Object.fromEntries(t.references.flatMap((r) => r.columns.map((c) => [c, r])));
  return h("div", {},
    t.description ? h("p", {}, t.description) : null,
    h("p", {}, `Key: ${t.primary_key.join(", ")}`,
      t.natural_key.join() !== t.primary_key.join() ? ` · natural key: ${t.natural_key.join(", ")}` : "",
      t.read_only ? " · read-only through the API" : ""),
    table_([{ label: "column" }, { label: "type" }, { label: "null" }, { label: "checks" }, { label: "references" }],
      t.columns, {
        caption: `Columns of ${t.name}`,
        cellFor: (c, col) => ({
          column: h("span", {}, col.name, col.system ? h("span", { class: "muted" }, " (system)") : null),
          type: col.type, null: col.nullable ? "yes" : "no", checks: checksOf(col),
          references: refs[col.name] ? `${refs[col.name].soft ? "soft → " : "→ "}${refs[col.name].table}` : "",
        })[c.label],
      }),
    t.referenced_by.length ? h("p", {}, "Referenced by: ",
      t.referenced_by.map((r, i) => [i ? ", " : "", h("a", { href: `#/browse/${r.table}` }, `${r.table}.${r.columns.join(",")}`)]))
      : null);
}

async function countRows(name) {
  // estimated: exact under max_rows, the planner's figure above it (never a full count of a big table)
  const response = await api(`/api/${name}?limit=0`, { headers: { Prefer: "count=estimated" }, raw: true });
  const total = (response.headers.get("content-range") || "").split("/")[1];
  return total && total !== "*" ? Number(total) : null;
}

registerPage("tables", async () => {
  const groups = {};
  for (const t of state.catalog.tables) (groups[t.group] ||= []).push(t);
  const counts = {};
  await Promise.all(state.catalog.tables.map(async (t) => {
    try { counts[t.name] = await countRows(t.name); } catch { counts[t.name] = null; }
  }));
  return [h("h1", {}, "Tables"),
    Object.entries(groups).map(([group, tables]) => h("section", { "aria-labelledby": `g-${group}` },
      h("h2", { id: `g-${group}` }, group),
      h("div", { class: "cards" }, tables.map((t) => h("article", { class: "card" },
        h("h3", {}, h("a", { href: `#/browse/${t.name}` }, t.name)),
        h("p", { class: "muted" },
          counts[t.name] === null ? "rows: unknown"
            : `${counts[t.name] >= state.catalog.max_rows ? "about " : ""}${fmt(counts[t.name])} rows`,
          ` · ${t.columns.length} columns`),
        h("details", {}, h("summary", {}, "Declaration"), declaration(t)))))))];
});

// 2. Browse ---------------------------------------------------------------------------------------

const OPS = {
  text: ["eq", "neq", "like", "ilike", "in", "is"],
  number: ["eq", "neq", "gt", "gte", "lt", "lte", "in", "is"],
  time: ["eq", "neq", "gt", "gte", "lt", "lte", "is"],
  boolean: ["is", "eq"],
  other: ["eq", "is"],
};
const OP_LABEL = { eq: "=", neq: "≠", gt: ">", gte: "≥", lt: "<", lte: "≤", like: "like (* wildcard)",
  ilike: "ilike (any case)", in: "in (comma list)", is: "is" };
function kindOf(type) {
  if (type === "text") return "text";
  if (type === "boolean") return "boolean";
  if (["date", "timestamptz", "timestamp"].includes(type) || type.startsWith("timestamp")) return "time";
  if (isNumeric(type)) return "number";
  return "other";
}

// The API's own query string, built from the grid's state; it is the browse page's hash, too.
const RESERVED = new Set(["select", "order", "limit", "offset", "after", "or", "and"]);

function apiPath(name, query) {
  const q = new URLSearchParams(query);
  if (!q.has("limit")) q.set("limit", String(PAGE));
  return `/api/${name}?${q}`;
}

function curlFor(path, extra = "") {
  const key = sessionStorage.getItem(KEY_STORE) ? " -H 'Authorization: Bearer $DEPOT_KEY'" : "";
  return `curl -s${key}${extra} '${location.origin}${path}'`;
}

async function copy(text) {
  try { await navigator.clipboard.writeText(text); say("Copied."); } catch { say("Copy failed: select the text instead."); }
}

function go(hash) { location.hash = hash; }

function filterForm(t, query, name) {
  const column = h("select", { id: "f-col" }, t.columns.map((c) => h("option", { value: c.name }, `${c.name} (${c.type})`)));
  const not = h("input", { id: "f-not", type: "checkbox" });
  const op = h("select", { id: "f-op" });
  const valueSlot = h("span", {});
  let value;
  const refresh = () => {
    const col = t.columns.find((c) => c.name === column.value);
    const kind = kindOf(col.type);
    op.replaceChildren(...OPS[kind].map((o) => h("option", { value: o }, OP_LABEL[o])));
    const choices = (col.schema.anyOf ? col.schema.anyOf[0] : col.schema).enum;
    if (kind === "boolean") {
      value = h("select", { id: "f-val" }, ["true", "false", "null"].map((v) => h("option", { value: v }, v)));
    } else if (choices) {
      value = h("select", { id: "f-val" }, [...choices, "null"].map((v) => h("option", { value: v }, v)));
    } else {
      value = h("input", { id: "f-val", type: kind === "number" ? "text" : "text", inputmode: kind === "number" ? "decimal" : null,
        placeholder: kind === "time" ? "2013-01-01" : "", autocomplete: "off" });
    }
    valueSlot.replaceChildren(h("label", { for: "f-val" }, "Value", value));
  };
  column.addEventListener("change", refresh);
  op.addEventListener("change", () => {
    if (op.value === "is" && value.tagName === "INPUT") value.placeholder = "null, true or false";
  });
  refresh();
  return h("form", { class: "controls", "aria-label": "Add a filter", onsubmit: (e) => {
    e.preventDefault();
    let v = value.value.trim();
    if (op.value === "in") v = `(${v.split(",").map((x) => x.trim()).map((x) => (/[,()"]/.test(x) ? `"${x.replace(/"/g, '\\"')}"` : x)).join(",")})`;
    const q = new URLSearchParams(query);
    q.append(column.value, `${not.checked ? "not." : ""}${op.value}.${v}`);
    q.delete("after");
    go(`#/browse/${name}?${q}`);
  } },
  h("label", { for: "f-col" }, "Column", column),
  h("label", { for: "f-not", class: "inline" }, not, "not"),
  h("label", { for: "f-op" }, "Operator", op), valueSlot,
  h("button", { type: "submit" }, "Add filter"));
}

// Keyset paging: the cursors of the pages before this one, per query, so "Previous" needs no offset.
const cursorTrail = {};

registerPage("browse", async ([name], query) => {
  const t = table(name);
  if (!t) throw new ApiError(404, { message: `No table ${name}` });
  const path = apiPath(name, query);
  const { data: rows, headers } = await api(path, { headers: { Prefer: "count=estimated" } });
  const total = (headers.get("content-range") || "").split("/")[1];
  const next = /<([^>]*)>;\s*rel="next"/.exec(headers.get("link") || "");
  const base = new URLSearchParams(query);
  base.delete("after");
  const trailKey = `${name}?${base}`;
  const trail = (cursorTrail[trailKey] ||= []);
  const here = query.get("after") || "";
  while (trail.length && trail[trail.length - 1] === here) trail.pop(); // came back to this page
  const order = (query.get("order") || "").split(",").filter(Boolean);
  const sortedBy = order.length ? order[0].split(".") : [];
  const refs = Object.fromEntries(t.references.filter((r) => r.columns.length === 1).map((r) => [r.columns[0], r]));
  const multiRefs = t.references.filter((r) => r.columns.length > 1);

  const sortButton = (c) => {
    const dir = sortedBy[0] === c.name ? sortedBy[1] || "asc" : null;
    const nextOrder = dir === null ? `${c.name}.asc` : dir === "asc" ? `${c.name}.desc` : null;
    return h("th", { scope: "col", "aria-sort": dir ? (dir === "asc" ? "ascending" : "descending") : "none" },
      h("button", { type: "button", "aria-label": `Sort by ${c.name}`, onclick: () => {
        const q = new URLSearchParams(query);
        q.delete("after");
        if (nextOrder) q.set("order", nextOrder); else q.delete("order");
        go(`#/browse/${name}?${q}`);
      } }, c.name, dir ? (dir === "asc" ? " ▲" : " ▼") : ""));
  };
  const cellOf = (c, row) => {
    const v = row[c.name];
    if (v !== null && v !== undefined) {
      if (c.name === t.key_column) return h("a", { href: rowHref(name, v) }, String(v));
      if (refs[c.name]) {
        const href = referenceHref(refs[c.name], row);
        if (href) return h("a", { href }, String(v));
      }
    }
    return cell(v);
  };
  const filters = [...query.entries()].filter(([k]) => !RESERVED.has(k) || k === "or" || k === "and");
  const removeFilter = (i) => {
    const q = new URLSearchParams();
    let n = 0;
    for (const [k, v] of query.entries()) {
      if (k === "after") continue;
      if (!RESERVED.has(k) || k === "or" || k === "and") { if (n++ === i) continue; }
      q.append(k, v);
    }
    go(`#/browse/${name}?${q}`);
  };
  const csvPath = `/api/${name}?${base}`.replace(/\?$/, "");
  const download = async () => {
    const response = await api(csvPath, { headers: { Accept: "text/csv" }, raw: true });
    if (!response.ok) { say(`CSV failed: HTTP ${response.status}`); return; }
    const url = URL.createObjectURL(await response.blob());
    const a = h("a", { href: url, download: `${name}.csv` });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  };
  const first = rows.length ? (trail.length * PAGE + 1) : 0;
  return [
    h("h1", {}, name),
    h("p", {}, h("a", { href: "#/tables" }, "Tables"), ` · ${t.group}`, multiRefs.length
      ? [" · references: ", multiRefs.map((r) => r.table).join(", ")] : ""),
    filterForm(t, query, name),
    filters.length ? h("ul", { class: "chips", "aria-label": "Filters" }, filters.map(([k, v], i) => h("li", {},
      `${k}=${v}`, h("button", { type: "button", "aria-label": `Remove filter ${k}=${v}`, onclick: () => removeFilter(i) }, "×"))))
      : null,
    h("div", { class: "query" }, h("span", {}, "GET"), h("code", { id: "api-query" }, path),
      h("button", { type: "button", onclick: () => copy(curlFor(path)) }, "Copy as curl"),
      h("button", { type: "button", onclick: download }, "Download CSV")),
    h("div", { class: "pager" },
      h("button", { type: "button", disabled: !trail.length, onclick: () => {
        const prev = trail.pop();
        const q = new URLSearchParams(base);
        if (prev) q.set("after", prev);
        go(`#/browse/${name}?${q}`);
      } }, "Previous"),
      here && !trail.length ? h("button", { type: "button", onclick: () => go(`#/browse/${name}?${base}`) }, "First page") : null,
      h("button", { type: "button", disabled: !next, onclick: () => {
        trail.push(here);
        const after = new URL(next[1], location.origin).searchParams.get("after");
        const q = new URLSearchParams(base);
        q.set("after", after);
        go(`#/browse/${name}?${q}`);
      } }, "Next"),
      h("span", { class: "muted", "aria-live": "polite" },
        rows.length ? `rows ${fmt(first)}–${fmt(first + rows.length - 1)}` : "no rows",
        total && total !== "*" ? ` of ${Number(total) >= state.catalog.max_rows ? "about " : ""}${fmt(total)}` : "")),
    h("div", { class: "scroll", role: "region", "aria-label": `Rows of ${name}`, tabindex: "0" },
      h("table", { class: "grid", id: "rows" },
        h("thead", {}, h("tr", {}, t.columns.map(sortButton))),
        h("tbody", {}, rows.map((row) => h("tr", {}, t.columns.map((c) => {
          const v = row[c.name];
          return h("td", { class: typeof v === "number" ? "num" : null }, cellOf(c, row));
        })))))),
  ];
});

// 3. Row ------------------------------------------------------------------------------------------

function parseInput(column, text) {
  if (text === "" && column.nullable) return null;
  if (column.type === "boolean") return text === "true" ? true : text === "false" ? false : null;
  // Not a number: sent as typed, so the API's 422 says what is wrong (NaN would become null).
  if (kindOf(column.type) === "number") return text === "" ? null : Number.isNaN(Number(text)) ? text : Number(text);
  if (column.type === "json" || column.type.endsWith("[]")) { try { return JSON.parse(text); } catch { return text; } }
  return text;
}
const asText = (v) => (v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));

rowSections.push({
  title: "Values",
  render: ({ t, row }) => {
    const refs = Object.fromEntries(t.references.flatMap((r) => r.columns.map((c) => [c, r])));
    return h("dl", { class: "fields" }, t.columns.flatMap((c) => {
      const href = refs[c.name] ? referenceHref(refs[c.name], row) : null;
      return [h("dt", {}, c.name), h("dd", { "data-column": c.name },
        href ? h("a", { href }, String(row[c.name])) : cell(row[c.name]))];
    }));
  },
});

rowSections.push({
  title: "References",
  render: async ({ t, row }) => {
    const out = [];
    for (const r of t.references) {
      const href = referenceHref(r, row);
      out.push(h("li", {}, `${r.columns.join(", ")} → ${r.table}: `, href ? h("a", { href }, r.columns.map((c) => row[c]).join(", ")) : "none",
        r.soft ? h("span", { class: "muted" }, " (soft: may point at no row)") : null));
    }
    // To-many: how many rows of each referencing table point here, with a link to them.
    await Promise.all(t.referenced_by.map(async (r) => {
      const q = new URLSearchParams();
      r.columns.forEach((c, i) => q.set(c, `eq.${row[r.target_columns[i]]}`));
      let count = "?";
      try {
        const response = await api(`/api/${r.table}?${q}&limit=0`, { headers: { Prefer: "count=estimated" }, raw: true });
        count = fmt((response.headers.get("content-range") || "").split("/")[1]);
      } catch { /* shown as ? */ }
      out.push(h("li", {}, h("a", { href: `#/browse/${r.table}?${q}` }, `${count} ${r.table}`), ` by ${r.columns.join(", ")}`));
    }));
    return out.length ? h("ul", {}, out) : h("p", { class: "muted" }, "No references either way.");
  },
});

// History and claims: read from the routes /catalog says the table has (`history`, `claims`); a
// table that keeps neither shows neither section.
const rowPath = (name, key) => `/api/${name}/${encodeURIComponent(key)}`;

// "col: old → new; ..." over the columns a user declared (the system ones change every time).
function differences(t, before, after) {
  return t.columns.filter((c) => !c.system && asText(before[c.name]) !== asText(after[c.name]))
    .map((c) => `${c.name}: ${asText(before[c.name]) || "null"} → ${asText(after[c.name]) || "null"}`).join("; ");
}

rowSections.push({
  title: "History",
  when: ({ t }) => Boolean(t.history),
  render: async ({ t, name, key }) => {
    // One more than shown: the oldest version shown is compared with the one before it.
    const { data: versions } = await api(`${rowPath(name, key)}/history?limit=${PAGE + 1}`);
    const own = new Set(t.columns.map((c) => c.name));
    const extra = table(t.history).columns.map((c) => c.name).filter((c) => !own.has(c)); // id, operation, valid_to
    const sys = t.system_columns;
    const all = `#/browse/${t.history}?${new URLSearchParams({ [t.key_column]: `eq.${key}` })}`;
    const shown = versions.slice(0, PAGE).map((v, i) => ({ v, before: versions[i + 1] }));
    return h("div", { id: "history" },
      table_([...extra, "version", "source", "batch", "from", "what changed"], shown, {
        caption: `Versions of ${name} ${key}, newest first`,
        cellFor: (c, { v, before }) => {
          switch (c) {
            case "version": return v[sys.version];
            case "source": return v[sys.source] ?? "";
            case "batch": return v[sys.batch_id] ? h("a", { href: `#/batches/${v[sys.batch_id]}` }, String(v[sys.batch_id])) : "";
            // the row as the table read then: the API's as_of, in the grid (remove the key's filter for the whole table)
            case "from": return h("a", { href: `#/browse/${name}?${new URLSearchParams({
              [t.key_column]: `eq.${key}`, as_of: v[sys.updated_at] })}` }, v[sys.updated_at]);
            case "what changed":
              if (before) return differences(t, before, v) || "no value changed";
              return versions.length > PAGE ? "" : "first version";
            default: return v[c];
          }
        },
      }),
      versions.length > PAGE ? h("p", {}, h("a", { href: all }, "Every version")) : null);
  },
});

rowSections.push({
  title: "Claims",
  when: ({ t }) => t.claims,
  render: async (ctx) => {
    const { t, name, key } = ctx;
    const { data: claims } = await api(`${rowPath(name, key)}/claims`);
    const stored = claims.find((c) => c.stored);
    const others = claims.filter((c) => !c.stored);
    const promote = (c) => h("button", { type: "button", onclick: async (e) => {
      e.target.disabled = true;
      try {
        await api(`${rowPath(name, key)}/claims/${encodeURIComponent(c.source)}/promote`, { method: "POST" });
        say(`${c.source}'s values are the row's now.`);
        route();
      } catch (error) { e.target.after(errorBox(error)); e.target.disabled = false; }
    } }, `Use ${c.source}'s values`);
    return h("div", { id: "claims" },
      h("p", {}, others.length
        ? `${claims.length} sources claim this row. The stored values are ${stored.source}'s; the others lost on priority.`
        : `Only ${stored.source} claims this row: the stored values are its own.`),
      table_(["source", "priority", "owns", "batch", "at", "values", ...(canWrite() && others.length ? ["action"] : [])], claims, {
        caption: "Which source owns which value, strongest first",
        cellFor: (c, claim) => {
          switch (c) {
            case "owns": return claim.stored ? "the stored row" : "a claim";
            case "batch": return claim.batch_id ? h("a", { href: `#/batches/${claim.batch_id}` }, String(claim.batch_id)) : "";
            case "values": return claim.stored ? Object.entries(claim.values).map(([k, v]) => `${k}: ${asText(v)}`).join("; ")
              : differences(t, stored.values, claim.values) || "the same values";
            case "action": return claim.stored ? "" : promote(claim);
            default: return claim[c];
          }
        },
      }));
  },
});

rowSections.push({
  title: "Edit",
  when: ({ t }) => canWrite() && !t.read_only,
  render: (ctx) => editForm(ctx),
});

// One field per writable column, typed from the catalog. A JSON column (a source's profile) is a
// textarea of indented JSON rather than a form of its own: the API checks the document (the
// profile's PROFILE_SCHEMA and more: strftime patterns, time zones) and names the key it refuses,
// so a structured editor would only repeat those rules in the browser and fall behind them.
function columnField(c, prefix, { required = false } = {}) {
  const id = `${prefix}-${c.name}`;
  const attrs = { id, name: c.name, autocomplete: "off", required, "aria-describedby": `${id}-error` };
  const json = c.type === "json";
  const input = json ? h("textarea", { ...attrs, rows: "10", spellcheck: "false", class: "code" })
    : h("input", { ...attrs, inputmode: kindOf(c.type) === "number" ? "numeric" : null });
  const error = h("span", { id: `${id}-error`, class: "field-error" });
  return {
    column: c, input, error,
    label: h("label", { for: id, class: json ? "wide" : null },
      `${c.name} (${c.type}${c.nullable ? ", empty for null" : ""})`, input, error),
    set: (v) => { input.value = json && v !== null && v !== undefined ? JSON.stringify(v, null, 2) : asText(v); },
  };
}

function showFieldErrors(fields, errors) {
  for (const f of fields) {
    f.error.textContent = errors.get(f) || "";
    if (errors.has(f)) f.input.setAttribute("aria-invalid", "true"); else f.input.removeAttribute("aria-invalid");
  }
  const first = fields.find((f) => errors.has(f));
  if (first) first.input.focus();
}

// The fields' values, or null when a JSON field is not JSON (said beside it, before anything is sent).
function readFields(fields) {
  const values = {};
  const bad = new Map();
  for (const f of fields) {
    const text = f.input.value.trim();
    if (f.column.type === "json" && text) {
      try { JSON.parse(text); } catch (e) { bad.set(f, `This is not JSON: ${e.message}`); continue; }
    }
    values[f.column.name] = parseInput(f.column, text);
  }
  showFieldErrors(fields, bad);
  return bad.size ? null : values;
}

// Which field an API error is about: a validation error lists each one in `details`; the check of
// a JSON column (a source's profile) names the column in its message (`profile.formats.date`).
function fieldErrors(error, fields) {
  const found = new Map();
  for (const d of Array.isArray(error.body.details) ? error.body.details : []) {
    const f = fields.find((x) => x.column.name === d.field);
    if (f) found.set(f, d.message);
  }
  if (!found.size) {
    const f = fields.find((x) => x.column.type === "json" && new RegExp(`\\b${x.column.name}\\b`).test(error.message));
    if (f) found.set(f, error.message);
  }
  return found;
}

function editForm(ctx) {
  const { t, name, key } = ctx;
  const fields = t.columns.filter((c) => c.writable).map((c) => columnField(c, "edit"));
  const result = h("div", { "aria-live": "polite" });
  const fill = (row) => fields.forEach((f) => f.set(row[f.column.name]));
  const form = h("form", { class: "stack row-form", onsubmit: async (e) => {
    e.preventDefault();
    const values = readFields(fields);
    if (values === null) { result.replaceChildren(); return; }
    const changes = {};
    for (const [c, value] of Object.entries(values)) if (asText(value) !== asText(ctx.row[c])) changes[c] = value;
    if (!Object.keys(changes).length) { result.replaceChildren(h("p", {}, "Nothing changed.")); return; }
    try {
      const { data, headers } = await api(`/api/${name}/${encodeURIComponent(key)}`, {
        method: "PATCH", headers: { "Content-Type": "application/json", "If-Match": ctx.etag }, body: JSON.stringify(changes) });
      ctx.row = data; ctx.etag = headers.get("etag");
      fill(data);
      result.replaceChildren(h("p", { class: "notice good" }, `Saved: version ${data[t.system_columns.version] ?? ""}.`));
    } catch (error) {
      if (error.status !== 412) {
        showFieldErrors(fields, fieldErrors(error, fields));
        result.replaceChildren(errorBox(error));
        return;
      }
      const { data: now, headers } = await api(`/api/${name}/${encodeURIComponent(key)}`);
      const changed = t.columns.filter((c) => asText(now[c.name]) !== asText(ctx.row[c.name]) || c.name in changes);
      result.replaceChildren(h("div", { class: "notice bad", role: "alert", id: "conflict" },
        h("strong", {}, "This row changed since you opened it. Nothing was saved."),
        table_([{ label: "column" }, { label: "when you opened it" }, { label: "now" }, { label: "your edit" }], changed, {
          caption: "What changed",
          cellFor: (c, col) => ({ column: col.name, "when you opened it": asText(ctx.row[col.name]), now: asText(now[col.name]),
            "your edit": col.name in changes ? asText(changes[col.name]) : "" })[c.label],
        }),
        h("button", { type: "button", onclick: () => {
          ctx.row = now; ctx.etag = headers.get("etag");
          for (const f of fields) if (!(f.column.name in changes)) f.set(now[f.column.name]);
          result.replaceChildren(h("p", {}, "Loaded the new values; your edits are kept. Save again to apply them."));
        } }, "Load the new values")));
    }
  } },
  h("div", { class: "fields-grid" }, fields.map((f) => f.label)),
  h("div", { class: "controls" }, h("button", { class: "primary", type: "submit" }, "Save")), result);
  fill(ctx.row);
  return form;
}

// A new row of a table, from the same fields as the edit form; an empty field takes the column's default.
function createForm(t, created) {
  const fields = t.columns.filter((c) => c.writable).map((c) => columnField(c, `new-${t.name}`, { required: c.required }));
  const result = h("div", { "aria-live": "polite" });
  return h("form", { class: "stack row-form", "aria-label": `New row of ${t.name}`, onsubmit: async (e) => {
    e.preventDefault();
    const values = readFields(fields);
    if (values === null) { result.replaceChildren(); return; }
    for (const [c, v] of Object.entries(values)) if (v === null) delete values[c];
    try {
      const { data } = await api(`/api/${t.name}`, { method: "POST", body: JSON.stringify(values),
        headers: { "Content-Type": "application/json", Prefer: "return=representation" } });
      created(Array.isArray(data) ? data[0] : data);
    } catch (error) {
      showFieldErrors(fields, fieldErrors(error, fields));
      result.replaceChildren(errorBox(error));
    }
  } },
  h("div", { class: "fields-grid" }, fields.map((f) => f.label)),
  h("div", { class: "controls" }, h("button", { class: "primary", type: "submit" }, "Create")), result);
}

registerPage("row", async ([name, key]) => {
  const t = table(name);
  if (!t) throw new ApiError(404, { message: `No table ${name}` });
  const { data: row, headers } = await api(`/api/${name}/${encodeURIComponent(key)}`);
  const ctx = { t, name, key, row, etag: headers.get("etag") };
  const sections = [];
  for (const s of rowSections) {
    if (s.when && !s.when(ctx)) continue;
    sections.push(h("section", {}, h("h2", {}, s.title), await s.render(ctx)));
  }
  return [h("h1", {}, `${name} ${key}`),
    h("p", {}, h("a", { href: `#/browse/${name}` }, `All ${name}`), ` · ETag ${ctx.etag || "none"}`), sections];
});

// 4. Batches --------------------------------------------------------------------------------------

function seconds(batch) {
  if (!batch.started_at) return null;
  const end = batch.finished_at ? new Date(batch.finished_at) : new Date();
  return Math.max(0, (end - new Date(batch.started_at)) / 1000);
}

const BATCH_COLUMNS = ["id", "table", "source", "mode", "status", "received", "inserted", "updated", "unchanged",
  "superseded", "rejected", "started_at", "duration", "rows/s"];

function batchCell(c, b) {
  const s = seconds(b);
  switch (c) {
    case "id": return h("a", { href: `#/batches/${b.id}` }, String(b.id));
    case "status": return h("span", { class: `badge ${b.status}` }, b.status);
    case "duration": return s === null ? "" : `${s.toFixed(1)} s`;
    case "rows/s": return s ? fmt(Math.round((b.received || 0) / s)) : "";
    case "rejected": return b.rejected ? h("a", { href: `#/rejections?batch_id=eq.${b.id}` }, fmt(b.rejected)) : 0;
    default: return typeof b[c] === "number" ? b[c] : b[c] ?? "";
  }
}

registerPage("batches", async ([id]) => {
  if (id) return batchPage(id);
  const { data: batches } = await api("/ingest/batches?limit=100");
  if (batches.some((b) => b.status === "running")) state.timers.push(setTimeout(route, 2000)); // live while running
  return [h("h1", {}, "Batches"),
    h("p", { class: "muted" }, "Newest first. A running batch updates every two seconds."),
    table_(BATCH_COLUMNS, batches, { caption: "Ingest batches", cellFor: batchCell })];
});

const REPORT_FIELDS = ["status", "table", "source", "mode", "on_conflict", "disposition", "received", "inserted", "updated",
  "unchanged", "superseded", "rejected", "retired", "deleted", "started_at", "finished_at"];

function reportView(report) {
  return h("dl", { class: "fields", id: "report" }, REPORT_FIELDS.filter((f) => f in report).flatMap((f) => [
    h("dt", {}, f), h("dd", { "data-field": f }, typeof report[f] === "number" ? fmt(report[f]) : cell(report[f]))]));
}

function replayButton(id, after) {
  return h("button", { type: "button", class: "primary", onclick: async (e) => {
    e.target.disabled = true;
    try {
      const { data } = await api(`/ingest/batches/${id}/replay`, { method: "POST" });
      say(`Replay: ${data.inserted + data.updated} written, ${data.rejected} still rejected.`);
      after(data);
    } catch (error) { e.target.after(errorBox(error)); e.target.disabled = false; }
  } }, "Replay rejections");
}

batchSections.push({
  title: "Rejections by error code",
  render: async ({ id, batch }) => {
    if (!batch.rejected) return h("p", {}, "No rejections.");
    const { data: rejections } = await api(`/ingest/batches/${id}/rejections?limit=${state.catalog.max_rows}`);
    const byCode = {};
    for (const r of rejections) for (const e of r.errors || []) (byCode[e.code] ||= []).push({ ...e, row: r });
    return h("div", {},
      Object.entries(byCode).sort((a, b) => b[1].length - a[1].length).map(([code, errors]) => h("details", { class: "rejection" },
        h("summary", {}, h("strong", {}, code), ` · ${errors.length} error${errors.length > 1 ? "s" : ""}`,
          ` · e.g. ${errors[0].field}: ${errors[0].message}`),
        table_(["row", "field", "message", "resolved"], errors.slice(0, 200), {
          caption: `Errors ${code}`,
          cellFor: (c, e) => ({ row: e.row.row_number, field: e.field, message: e.message,
            resolved: e.row.resolved_at ? "yes" : "no" })[c],
        }))),
      h("p", {}, h("a", { href: `#/rejections?batch_id=eq.${id}` }, "Payloads and errors side by side")));
  },
});

// What a batch changed, and its undo: the history routes of /ingest, for tables that keep history.
const keepsHistory = (batch) => Boolean(table(batch.table) && table(batch.table).history);
const total = (headers) => Number((headers.get("content-range") || "").split("/")[1]) || 0;

function keyCell(t, key) {
  const text = Object.values(key).join(", ");
  return t.key_column && t.key_column in key ? h("a", { href: rowHref(t.name, key[t.key_column]) }, text) : text;
}

const listed = (values) => Object.entries(values).map(([k, v]) => `${k}: ${asText(v)}`).join("; ");

batchSections.push({
  title: "Changes",
  when: ({ batch }) => keepsHistory(batch),
  render: async ({ id, batch }) => {
    const t = table(batch.table);
    const { data: changes, headers } = await api(`/ingest/batches/${id}/changes?limit=${PAGE}`);
    if (!changes.length) return h("p", { id: "changes" }, batch.status === "running" ? "No change yet." : "This batch changed no row.");
    const count = total(headers);
    return h("div", { id: "changes" },
      h("p", {}, count > changes.length ? `The first ${fmt(changes.length)} of ${fmt(count)} changes, in the batch's order.`
        : `${fmt(count)} change${count > 1 ? "s" : ""}, in the batch's order.`),
      table_(["row", "change", "version", "what", "still current"], changes, {
        caption: `What batch ${id} changed`,
        cellFor: (c, ch) => {
          switch (c) {
            case "row": return keyCell(t, ch.key);
            case "what": return ch.columns ? Object.entries(ch.columns).map(([k, v]) => `${k}: ${asText(v.old) || "null"} → ${asText(v.new) || "null"}`).join("; ")
              : ch.new ? `new: ${listed(ch.new)}` : ch.old ? `had: ${listed(ch.old)}` : "";
            case "still current": return ch.current ? "yes" : "no, changed since";
            default: return ch[c];
          }
        },
      }));
  },
});

// Undo, with a confirmation in the page (a dialog box of the browser would take the focus away
// and could not say what a revert does). Its answer is a batch of its own; rows changed since the
// batch are left as they are and listed, and can then be set back too (force).
batchSections.push({
  title: "Revert",
  when: ({ batch }) => canWrite() && keepsHistory(batch) && batch.status !== "running"
    && table(batch.table).columns.some((c) => c.system === "batch_id"),
  render: ({ id, batch }) => {
    const t = table(batch.table);
    const out = h("div", { id: "revert-result", "aria-live": "polite" });
    const box = h("div", {});
    const start = h("button", { type: "button", onclick: () => ask(false) }, "Revert this batch…");
    const ask = (force) => {
      const yes = h("button", { type: "button", class: "primary", onclick: () => run(force, yes) }, "Yes, revert");
      box.replaceChildren(h("div", { class: "notice", role: "group", "aria-label": "Confirm the revert" },
        h("p", {}, force
          ? `Set every row batch ${id} changed back to its version before it, over the changes made since?`
          : `Set every row batch ${id} inserted, updated or deleted back to its version before it? `
            + "Rows changed since by another write are left as they are, and listed."),
        h("div", { class: "controls" }, yes,
          h("button", { type: "button", onclick: () => { box.replaceChildren(start); start.focus(); } }, "Cancel"))));
      yes.focus();
    };
    const run = async (force, button) => {
      button.disabled = true;
      try {
        const { data: r } = await api(`/ingest/batches/${id}/revert${force ? "?force=true" : ""}`, { method: "POST" });
        out.replaceChildren(h("p", { class: "notice good" }, `Reverted by batch `,
          h("a", { href: `#/batches/${r.batch_id}` }, String(r.batch_id)),
          `: ${fmt(r.updated)} rows set back, ${fmt(r.inserted)} brought back, ${fmt(r.deleted)} deleted`,
          r.conflicted ? `, ${fmt(r.conflicted)} left as they are (changed since).` : "."),
        r.conflicted ? h("div", {},
          table_(["row", "changed since"], r.conflicts, { caption: "Rows another write changed after the batch",
            cellFor: (c, x) => (c === "row" ? keyCell(t, x.key)
              : x.current ? differences(t, x.batch_version, x.current) || "written again" : "deleted") }),
          h("div", { class: "controls" }, h("button", { type: "button", onclick: () => ask(true) }, "Set those back too…"))) : null);
        box.replaceChildren();
      } catch (error) {
        const again = error.status === 409 && /reverted already/.test(error.message);
        out.replaceChildren(h("div", { class: "notice bad", role: "alert" },
          h("strong", {}, error.status === 409 ? `Not reverted: ${error.message}.` : `The revert failed: ${error.message}`),
          again ? h("p", {}, "Reverting it again sets back the rows changed since, too.") : null,
          again ? h("button", { type: "button", onclick: () => ask(true) }, "Revert again…") : null));
        box.replaceChildren(start);
      }
    };
    box.append(start);
    return h("div", {}, box, out);
  },
});

async function batchPage(id) {
  const { data: batch } = await api(`/ingest/batches/${id}`);
  if (batch.status === "running") state.timers.push(setTimeout(route, 2000));
  const ctx = { id, batch };
  const sections = [];
  for (const s of batchSections) {
    if (s.when && !s.when(ctx)) continue;
    sections.push(h("section", {}, h("h2", {}, s.title), await s.render(ctx)));
  }
  const unresolved = batch.rejected && canWrite();
  return [h("h1", {}, `Batch ${id}`), h("p", {}, h("a", { href: "#/batches" }, "All batches"),
    " · ", h("a", { href: `#/browse/${batch.table}` }, batch.table)),
  reportView(batch),
  unresolved ? h("div", { class: "controls" }, replayButton(id, (report) => go(`#/batches/${report.batch_id}`))) : null,
  sections];
}

// 5. Rejections -----------------------------------------------------------------------------------

// Acting on one rejected row (correcting its payload, dismissing it) needs routes of the sources
// issue: PATCH /ingest/rejections/{id} with the corrected payload as the body, and
// POST /ingest/rejections/{id}/dismiss with {"reason"}. Each action appears once /openapi.json
// lists its route; until then the page says how to do without. More actions: rejectionActions.push.
function hasRoute(method, pattern) {
  const paths = (state.openapi && state.openapi.paths) || {};
  return Object.keys(paths).some((p) => pattern.test(p) && paths[p][method]);
}

export const rejectionActions = [
  {
    when: () => hasRoute("patch", /^\/ingest\/rejections\/\{[^}]+\}$/),
    render: (r) => {
      const id = `fix-${r.id}`;
      const text = h("textarea", { id, rows: "6" }, JSON.stringify(r.payload, null, 2));
      return h("form", { class: "stack", onsubmit: async (e) => {
        e.preventDefault();
        let payload;
        try { payload = JSON.parse(text.value); } catch { say("The payload is not JSON."); return; }
        try {
          await api(`/ingest/rejections/${r.id}`, { method: "PATCH", headers: { "Content-Type": "application/json" },
            body: JSON.stringify(payload) });
          say(`Row ${r.row_number} corrected: replay batch ${r.batch_id} to load it.`);
        } catch (error) { e.target.append(errorBox(error)); }
      } }, h("label", { for: id }, "Corrected payload (JSON)", text),
      h("div", { class: "controls" }, h("button", { type: "submit" }, "Save correction")));
    },
  },
  {
    when: () => hasRoute("post", /^\/ingest\/rejections\/\{[^}]+\}\/dismiss$/),
    render: (r) => {
      const id = `dismiss-${r.id}`;
      const reason = h("input", { id, required: true, autocomplete: "off" });
      return h("form", { class: "controls", onsubmit: async (e) => {
        e.preventDefault();
        try {
          await api(`/ingest/rejections/${r.id}/dismiss`, { method: "POST", headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ reason: reason.value }) });
          route();
        } catch (error) { e.target.append(errorBox(error)); }
      } }, h("label", { for: id }, "Reason to dismiss", reason), h("button", { type: "submit" }, "Dismiss"));
    },
  },
];

registerPage("rejections", async (_parts, query) => {
  const q = new URLSearchParams(query);
  if (!q.has("order")) q.set("order", "id.desc");
  if (!q.has("resolved_at") && !q.has("all")) {
    q.set("resolved_at", "is.null");
    // once rows can be dismissed (the sources issue), a dismissed row is no longer waiting either
    if (table("rejected_rows").columns.some((c) => c.name === "dismissed_at")) q.set("dismissed_at", "is.null");
  }
  const showAll = q.has("all");
  q.delete("all");
  const { data: rows, headers } = await api(`/api/rejected_rows?${q}&limit=${PAGE}`);
  const next = /<([^>]*)>;\s*rel="next"/.exec(headers.get("link") || "");
  const actions = canWrite() ? rejectionActions.filter((a) => a.when()) : [];
  const toggle = new URLSearchParams(query);
  toggle.delete("after");
  if (showAll) toggle.delete("all"); else { toggle.set("all", "1"); toggle.delete("resolved_at"); }
  return [h("h1", {}, "Rejections"),
    h("p", {}, showAll ? "All rejected rows, newest first. " : "Unresolved rejected rows, newest first. ",
      h("a", { href: `#/rejections?${toggle}` }, showAll ? "Show unresolved only" : "Show resolved ones too")),
    actions.length || !canWrite() ? null : h("p", { class: "notice" },
      "Correcting a payload here needs the API's PATCH /ingest/rejections/{id}, which this depot does not have yet. ",
      "Fix the data at its source and ingest it again, or replay a batch once the rows it references exist."),
    canWrite() && query.get("batch_id") ? h("div", { class: "controls" },
      replayButton(query.get("batch_id").replace(/^eq\./, ""), () => route())) : null,
    rows.length ? null : h("p", {}, "No rejected rows."),
    rows.map((r) => h("article", { class: "rejection", "aria-labelledby": `rj-${r.id}` },
      h("h2", { id: `rj-${r.id}` }, `Row ${r.row_number} of `,
        h("a", { href: `#/batches/${r.batch_id}` }, `batch ${r.batch_id}`), r.resolved_at ? h("span", { class: "ok" }, " · resolved") : ""),
      h("div", { class: "side" },
        h("div", {}, h("h3", {}, "Payload"), h("pre", {}, JSON.stringify(r.payload, null, 2))),
        h("div", {}, h("h3", {}, "Errors"), h("ul", {}, (r.errors || []).map((e) => h("li", {},
          h("strong", {}, e.field || "row"), ` ${e.code}: ${e.message}`))))),
      r.resolved_at ? null : actions.map((a) => a.render(r)),
    )),
    h("div", { class: "pager" }, next ? h("button", { type: "button", onclick: () => {
      const n = new URLSearchParams(query);
      n.set("after", new URL(next[1], location.origin).searchParams.get("after"));
      go(`#/rejections?${n}`);
    } }, "Next") : null)];
});

// 7. Sources --------------------------------------------------------------------------------------

// The sources table through /api/sources like any table: listed here, created with the fields its
// declaration gives, edited on its row page (the same edit form, with If-Match); the API checks a
// profile on every write and its 400 is shown beside the profile field.
const summary = (profile) => (profile && Object.keys(profile).length ? Object.keys(profile).join(", ") : "none");

registerPage("sources", async () => {
  const t = table("sources");
  const { data: sources } = await api(`/api/sources?order=priority.desc,code&limit=${state.catalog.max_rows}`);
  const columns = t.columns.filter((c) => !c.system).map((c) => c.name);
  return [h("h1", {}, "Sources"),
    h("p", { class: "muted" }, "Highest priority first: when two sources send the same row, the higher one's values are stored ",
      "and the other's are kept as its claim. A source's profile maps its data onto the tables."),
    table_([...columns, ...(canWrite() ? ["edit"] : [])], sources, {
      caption: "Sources",
      cellFor: (c, src) => {
        if (c === "code") return h("a", { href: rowHref("sources", src.code) }, src.code);
        if (c === "profile") return summary(src.profile);
        if (c === "edit") return h("a", { href: `${rowHref("sources", src.code)}`, "aria-label": `Edit ${src.code}` }, "Edit");
        return src[c];
      },
    }),
    canWrite() ? [h("h2", {}, "New source"), createForm(t, (row) => { say(`Source ${row.code} created.`); route(); })] : null];
});

// 6. Upload ---------------------------------------------------------------------------------------

const MEDIA = { csv: "text/csv", ndjson: "application/x-ndjson", jsonl: "application/x-ndjson", json: "application/json",
  parquet: "application/vnd.apache.parquet" };
const EXTENSIONS = Object.keys(MEDIA).map((e) => `.${e}`);

// The choices of an ingest parameter are the checks of the batch log's column of that name, so
// the form offers what the API takes (mode, on_conflict, disposition) and follows it.
const choicesOf = (column) => table("ingest_batches").columns.find((c) => c.name === column).schema.enum;
const choice = (id, column) => h("select", { id }, choicesOf(column).map((m) => h("option", { value: m }, m)));

registerPage("upload", async () => {
  if (!canWrite()) return [h("h1", {}, "Upload"), h("p", {}, "Your key reads only: uploading needs a write key.")];
  let sources = ["manual"];
  try { sources = (await api("/api/sources?select=code&order=code")).data.map((s) => s.code); } catch { /* manual */ }
  const writable = state.catalog.tables.filter((t) => !t.read_only);
  const file = h("input", { id: "u-file", type: "file", accept: EXTENSIONS.join(","), required: true });
  const tableSel = h("select", { id: "u-table" }, writable.map((t) => h("option", { value: t.name }, t.name)));
  const sourceSel = h("select", { id: "u-source" }, sources.map((s) => h("option", { value: s }, s)));
  // The API's own default source, not the first by name: an upload gets no stronger source unasked.
  const ingest = ((state.openapi || {}).paths || {})["/ingest/{table}"];
  const byDefault = ((ingest && ingest.post.parameters) || []).find((p) => p.name === "source");
  if (byDefault && sources.includes(byDefault.schema.default)) sourceSel.value = byDefault.schema.default;
  const mode = choice("u-mode", "mode");
  const conflict = choice("u-conflict", "on_conflict");
  const disposition = choice("u-disposition", "disposition");
  // none chosen: the API's default, which is the table's (append on a log whose key may repeat, else upsert)
  disposition.prepend(h("option", { value: "" }, "the table's default"));
  disposition.value = "";
  const partition = h("input", { id: "u-partition", autocomplete: "off", placeholder: "carrier,origin" });
  const partitionLabel = h("label", { for: "u-partition", hidden: true }, "Partition columns", partition);
  disposition.addEventListener("change", () => {
    partitionLabel.hidden = disposition.value !== "replace_partition";
    partition.required = !partitionLabel.hidden;
  });
  const csvNull = h("input", { id: "u-null", placeholder: "empty field", autocomplete: "off" });
  const progress = h("progress", { id: "u-progress", max: "100", value: "0", "aria-label": "Upload progress" });
  const out = h("div", { "aria-live": "polite", id: "u-result" });
  const drop = h("div", { class: "drop" }, h("label", { for: "u-file" }, "Drop a CSV, NDJSON, JSON or Parquet file here, or choose one", file));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); file.files = e.dataTransfer.files; pick(); });
  const pick = () => {
    const f = file.files[0];
    if (!f) return;
    const stem = f.name.replace(/\.[^.]*$/, "");
    if (writable.some((t) => t.name === stem)) tableSel.value = stem; // airlines.csv goes to airlines
  };
  file.addEventListener("change", pick);
  const form = h("form", { onsubmit: (e) => {
    e.preventDefault();
    const f = file.files[0];
    const ext = (f.name.split(".").pop() || "").toLowerCase();
    const media = MEDIA[ext];
    if (!media) { out.replaceChildren(h("p", { class: "notice bad" }, `${f.name}: send a ${EXTENSIONS.join(", ")} file`)); return; }
    const q = new URLSearchParams({ source: sourceSel.value, mode: mode.value, on_conflict: conflict.value });
    if (disposition.value) q.set("disposition", disposition.value);
    if (!partitionLabel.hidden) q.set("partition", partition.value.replace(/\s+/g, ""));
    if (csvNull.value) q.set("csv_null", csvNull.value);
    const path = `/ingest/${tableSel.value}?${q}`;
    // XMLHttpRequest, not fetch: only it reports the upload's progress.
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    xhr.setRequestHeader("Content-Type", media);
    xhr.upload.onprogress = (p) => { if (p.lengthComputable) progress.value = Math.round((100 * p.loaded) / p.total); };
    xhr.onload = () => {
      progress.value = 100;
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch { data = { message: xhr.responseText }; }
      if (xhr.status === 200) {
        out.replaceChildren(h("h2", {}, "Report"), reportView(data),
          h("p", {}, h("a", { href: `#/batches/${data.batch_id}` }, `Batch ${data.batch_id}`),
            data.rejected ? [" · ", h("a", { href: `#/rejections?batch_id=eq.${data.batch_id}` }, `${data.rejected} rejections`)] : ""));
      } else {
        const report = data && data.details && data.details.batch_id ? reportView(data.details) : null;
        out.replaceChildren(errorBox(new ApiError(xhr.status, data)), report || "");
      }
    };
    xhr.onerror = () => out.replaceChildren(h("p", { class: "notice bad" }, "The upload failed: network error."));
    progress.value = 0;
    out.replaceChildren(h("p", {}, `Sending ${f.name} to ${path}…`));
    xhr.send(f);
  } },
  drop,
  h("div", { class: "controls" },
    h("label", { for: "u-table" }, "Table", tableSel), h("label", { for: "u-source" }, "Source", sourceSel),
    h("label", { for: "u-mode" }, "Mode", mode), h("label", { for: "u-conflict" }, "On conflict", conflict),
    h("label", { for: "u-disposition" }, "Disposition", disposition), partitionLabel,
    h("label", { for: "u-null" }, "CSV null token", csvNull)),
  h("div", { class: "controls" }, h("button", { class: "primary", type: "submit" }, "Upload")),
  progress, out);
  return [h("h1", {}, "Upload"), h("p", { class: "muted" }, "The file streams to POST /ingest/{table}. A disposition other than ",
    "upsert inserts only new keys, replaces whole partitions (the rows of those partitions the file lacks are retired), ",
    "or deletes the file's keys."), form];
});

// ----------------------------------------------------------------------------------------- start

async function start() {
  try {
    const { data } = await api("/catalog");
    state.catalog = data;
    state.access = data.access;
    state.byName = Object.fromEntries(data.tables.map((t) => [t.name, t]));
  } catch (error) {
    if (error.status === 401) return; // askForKey is showing
    document.getElementById("main").replaceChildren(h("h1", {}, "depot is not answering"), errorBox(error));
    return;
  }
  try { state.openapi = (await api("/openapi.json")).data; } catch { state.openapi = null; }
  renderWho();
  if (!start.listening) { window.addEventListener("hashchange", route); start.listening = true; }
  await route();
  document.body.dataset.ready = "true"; // for the browser tests: the first page is drawn
}

// For scripts and tests: redraw the page, or add one (the same hooks as above).
window.depotConsole = { route, registerPage, rowSections, batchSections, rejectionActions, api };
start();
