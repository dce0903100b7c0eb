// The search page: talks to /api/health, /api/facets, /api/search and /api/documents/{id}.
// Every piece of text from the server goes into the DOM as a text node (never as HTML).
"use strict";

const $ = (id) => document.getElementById(id);
const form = $("search"), input = $("q"), indexSelect = $("index"), modeSet = $("modes"), kSelect = $("k");
const statusLine = $("status"), results = $("results"), dialog = $("doc");
const asOfInput = $("as-of");
const FACETS = ["act", "jurisdiction"];  // searchable fields (input + datalist) offering /api/facets; "" is any
const MODE_LABELS = { hybrid: "Hybrid (RRF)", dense: "Dense", bm25: "BM25" };
const SNIPPET_BEFORE = 90, SNIPPET_LENGTH = 320;
const EAST_ASIAN = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]/u;

let indexes = [];        // from /api/health
let searchCount = 0;     // answers to older searches are dropped
let opener = null;       // the result whose statute the dialog shows
const documents = new Map();  // "index\n id" -> Promise of {id, title, text}

function node(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

async function api(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error(body?.detail ?? `${response.status} ${response.statusText}`);
  return body;
}

function currentIndex() {
  return indexes.find((ix) => ix.name === indexSelect.value) ?? indexes[0];
}

function currentMode() {
  return modeSet.querySelector("input:checked")?.value ?? preferredMode(currentIndex());
}

// The modes to offer: hybrid only where there is more than one leg to fuse (on one leg it is that leg).
function offeredModes(index) {
  return index.legs.length > 1 ? index.modes : index.modes.filter((m) => m !== "hybrid");
}

// The index's default mode where it is offered, else the first offered.
function preferredMode(index) {
  const modes = offeredModes(index);
  return modes.includes(index.default_mode) ? index.default_mode : modes[0];
}

function showModes(index, wanted) {
  modeSet.querySelectorAll("label").forEach((el) => el.remove());
  const modes = offeredModes(index);
  const mode = modes.includes(wanted) ? wanted : preferredMode(index);
  for (const m of modes) {
    const label = node("label"), radio = node("input");
    Object.assign(radio, { type: "radio", name: "mode", value: m, checked: m === mode });
    label.append(radio, " " + MODE_LABELS[m]);
    modeSet.append(label);
  }
  results.lang = $("doc-text").lang = index.language === "zh" ? "zh-CN" : "en";
}

// Offer the index's acts and jurisdictions as the fields' suggestions (a field is hidden when the index has
// none), keeping a wanted value; a value no statute has is answered with a warning.
async function showFacets(index, wanted) {
  const query = indexes.length > 1 ? `?index=${encodeURIComponent(index.name)}` : "";
  const values = await api(`/api/facets${query}`).catch(() => ({}));
  for (const name of FACETS) {
    const choices = values[name] ?? [];
    $(`${name}-list`).replaceChildren(...choices.map((v) => new Option(v, v)));
    $(name).value = choices.length ? wanted[name] ?? "" : "";
    $(`${name}-label`).hidden = choices.length === 0;
  }
}

function filterParams(params) {
  for (const name of FACETS) if ($(name).value) params.set(name, $(name).value);
  if (asOfInput.value) params.set("as_of", asOfInput.value);
}

function filterText() {
  const parts = FACETS.filter((name) => $(name).value).map((name) => $(name).value);
  if (asOfInput.value) parts.push(`in force on ${asOfInput.value}`);
  return parts.length ? ` · ${parts.join(", ")}` : "";
}

// One regex for the matched terms: CJK terms match anywhere, others only as whole words.
function termPattern(terms) {
  const parts = [...new Set(terms.filter(Boolean))].sort((a, b) => b.length - a.length).map((term) => {
    const escaped = term.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
    return EAST_ASIAN.test(term) ? escaped : `(?<![\\p{L}\\p{N}_])${escaped}(?![\\p{L}\\p{N}_])`;
  });
  return parts.length ? new RegExp(parts.join("|"), "giu") : null;
}

function highlighted(text, pattern) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  if (pattern) {
    for (const match of text.matchAll(pattern)) {
      fragment.append(text.slice(last, match.index), node("mark", "", match[0]));
      last = match.index + match[0].length;
    }
  }
  fragment.append(text.slice(last));
  return fragment;
}

// Never cut a surrogate pair in two (rare CJK characters and emoji are two UTF-16 units).
function safeCut(text, i) {
  const code = text.charCodeAt(i);
  return code >= 0xdc00 && code <= 0xdfff ? i + 1 : i;
}

// The part of the text around the first matched term (the start when nothing matched).
function snippet(text, pattern) {
  const flat = text.replace(/\s+/g, " ").trim();
  const first = pattern ? flat.search(pattern) : -1;  // search() leaves pattern.lastIndex alone
  let start = Math.max(0, first - SNIPPET_BEFORE);
  if (start > 0) {
    const space = flat.indexOf(" ", start);
    if (space !== -1 && space < first) start = space + 1;
  }
  start = safeCut(flat, start);
  let end = Math.min(flat.length, start + SNIPPET_LENGTH);
  if (end < flat.length) {
    const space = flat.lastIndexOf(" ", end);
    if (space > start + SNIPPET_LENGTH * 0.8) end = space;
  }
  end = safeCut(flat, end);
  return (start > 0 ? "… " : "") + flat.slice(start, end) + (end < flat.length ? " …" : "");
}

function legText(name, leg) {
  return leg.rank === null ? `${name} not in top list` : `${name} #${leg.rank} (${leg.score.toPrecision(4)})`;
}

function today() {
  const now = new Date();
  return new Date(now.getTime() - now.getTimezoneOffset() * 60000).toISOString().slice(0, 10);
}

// The statute's act, section, jurisdiction and dates in force, and "not in force since D" when it is not in force
// on the day asked (or today); null when the document has none of them.
function statuteLine(hit) {
  const where = [hit.act, hit.section && `s. ${hit.section}`].filter(Boolean).join(" ");
  const parts = [[where, hit.jurisdiction].filter(Boolean).join(", ")];
  parts.push([hit.valid_from && `from ${hit.valid_from}`, hit.valid_to && `until ${hit.valid_to}`].filter(Boolean).join(" "));
  if (!parts.some(Boolean) && hit.in_force === undefined) return null;
  const line = node("p", "statute");
  for (const part of parts) if (part) line.append(node("span", "", part));
  if (hit.in_force === false) {
    const day = asOfInput.value || today();
    const note = hit.valid_from && day < hit.valid_from ? `not in force until ${hit.valid_from}` : `not in force since ${hit.valid_to}`;
    line.append(node("span", "not-in-force", note));
  } else if (hit.in_force) {
    line.append(node("span", "", "in force"));
  }
  return line;
}

function scoreLine(hit, mode, legs) {
  const line = node("p", "scores");
  const first = hit.first_stage;  // present when reranked: the fused list's rank and score
  if (first) {
    const rerank = hit.rerank_score === null ? "below the rerank depth" : hit.rerank_score.toPrecision(4);
    line.append(node("span", "", `rerank ${rerank}`), node("span", "", `first stage #${first.rank}`));
  }
  const score = first ? first.score : hit.score, used = mode === "hybrid" ? legs : [mode];
  if (used.length > 1) line.append(node("span", "", `fused ${score.toPrecision(4)}`));
  for (const leg of used) line.append(node("span", "", legText(leg, hit[leg])));
  return line;
}

function getDocument(indexName, id) {
  const key = `${indexName}\n${id}`;
  if (!documents.has(key)) {
    const query = indexes.length > 1 ? `?index=${encodeURIComponent(indexName)}` : "";
    const promise = api(`/api/documents/${encodeURIComponent(id)}${query}`);
    promise.catch(() => documents.delete(key));
    documents.set(key, promise);
  }
  return documents.get(key);
}

function showStatus(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
}

function render(answer, index, count) {
  const legs = index.legs;
  results.replaceChildren();
  $("warnings").replaceChildren(...(answer.warnings ?? []).map((w) => node("li", "", `Filter: ${w}`)));
  for (const hit of answer.hits) {
    const pattern = termPattern(hit.matched_terms);
    const item = node("li", "hit");
    item.tabIndex = 0;
    const head = node("div", "hit-head");
    head.append(node("span", "rank", `${hit.rank}.`), node("h3", "", hit.title || hit.id), node("span", "doc-id", hit.id));
    const text = node("p", "snippet muted", "…");
    const scores = scoreLine(hit, answer.mode, legs), statute = statuteLine(hit);
    item.append(head, ...(statute ? [statute] : []), text, scores);
    item.addEventListener("click", () => openDocument(item, index.name, hit, pattern, scores));
    results.append(item);
    getDocument(index.name, hit.id).then((doc) => {
      if (count !== searchCount) return;
      text.replaceChildren(highlighted(snippet(doc.text, pattern), pattern));
      text.classList.remove("muted");
    }, (err) => { text.textContent = `(text unavailable: ${err.message})`; });
  }
  const ms = Math.round(answer.seconds * 1000);
  showStatus(answer.hits.length
    ? `${answer.hits.length} statutes · ${MODE_LABELS[answer.mode]} · ${index.name}${filterText()} · ${ms} ms`
    : `No statutes found (${MODE_LABELS[answer.mode]}, ${index.name}${filterText()}).`);
}

async function search() {
  const index = currentIndex(), mode = currentMode(), q = input.value;
  if (!q.trim()) {
    showStatus("Type a query first.");
    return;
  }
  const params = new URLSearchParams({ q, mode, k: kSelect.value });
  if (indexes.length > 1) params.set("index", index.name);
  filterParams(params);
  history.replaceState(null, "", `?${params}`);
  const count = ++searchCount;
  showStatus("Searching…");
  try {
    const answer = await api(`/api/search?${params}`);
    if (count === searchCount) render(answer, index, count);
  } catch (err) {
    if (count !== searchCount) return;
    results.replaceChildren();
    $("warnings").replaceChildren();
    showStatus(err.message, true);
  }
}

async function openDocument(item, indexName, hit, pattern, scores) {
  opener = item;
  $("doc-id").textContent = hit.id;
  $("doc-title").textContent = hit.title || hit.id;
  $("doc-scores").replaceChildren(...scores.cloneNode(true).childNodes);
  $("doc-text").textContent = "Loading…";
  if (!dialog.open) dialog.showModal();
  try {
    const doc = await getDocument(indexName, hit.id);
    $("doc-text").replaceChildren(highlighted(doc.text, pattern));
  } catch (err) {
    $("doc-text").textContent = `Could not load the statute: ${err.message}`;
  }
}

function isTyping(el) {
  return el instanceof HTMLInputElement || el instanceof HTMLSelectElement || el instanceof HTMLTextAreaElement;
}

document.addEventListener("keydown", (event) => {
  if (dialog.open || event.altKey || event.ctrlKey || event.metaKey) return;
  const active = document.activeElement;
  if (event.key === "/" && !isTyping(active)) {
    event.preventDefault();
    input.focus();
    input.select();
    return;
  }
  const hits = [...results.querySelectorAll(".hit")];
  const at = hits.indexOf(active);
  if (event.key === "ArrowDown" && (active === input || at >= 0) && hits.length) {
    event.preventDefault();
    hits[Math.min(at + 1, hits.length - 1)].focus();
  } else if (event.key === "ArrowUp" && at >= 0) {
    event.preventDefault();
    (at === 0 ? input : hits[at - 1]).focus();
  } else if ((event.key === "Enter" || event.key === " ") && at >= 0) {
    event.preventDefault();
    active.click();
  } else if (event.key === "Escape" && at >= 0) {
    input.focus();
  }
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  search();
});
modeSet.addEventListener("change", () => input.value.trim() && search());
for (const el of [kSelect, asOfInput, ...FACETS.map($)]) el.addEventListener("change", () => input.value.trim() && search());
indexSelect.addEventListener("change", async () => {
  showModes(currentIndex(), currentMode());
  await showFacets(currentIndex(), Object.fromEntries(FACETS.map((name) => [name, $(name).value])));
  if (input.value.trim()) search();
});
$("doc-close").addEventListener("click", () => dialog.close());
dialog.addEventListener("click", (event) => event.target === dialog && dialog.close());
dialog.addEventListener("close", () => opener?.focus());

async function start() {
  try {
    indexes = (await api("/api/health")).indexes;
  } catch (err) {
    showStatus(`The server did not answer: ${err.message}`, true);
    return;
  }
  for (const ix of indexes) {
    indexSelect.append(new Option(`${ix.name} (${ix.documents} statutes)`, ix.name));
  }
  $("index-label").hidden = indexes.length < 2;
  const params = new URLSearchParams(location.search);
  if (indexes.some((ix) => ix.name === params.get("index"))) indexSelect.value = params.get("index");
  if ([...kSelect.options].some((o) => o.value === params.get("k"))) kSelect.value = params.get("k");
  showModes(currentIndex(), params.get("mode"));
  const index = currentIndex();
  await showFacets(index, Object.fromEntries(FACETS.map((name) => [name, params.get(name)])));
  if (/^\d{4}-\d{2}-\d{2}$/.test(params.get("as_of") ?? "")) asOfInput.value = params.get("as_of");
  showStatus(`${index.documents} statutes in ${index.name}; legs: ${index.legs.join(", ")}.`);
  document.body.dataset.ready = "true";
  if (params.get("q")) {
    input.value = params.get("q");
    search();
  }
}

start();
