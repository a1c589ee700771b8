// The rack page: a snapshot, then deltas over Server-Sent Events (/api/v1/stream).
// Every value is set with textContent (never as HTML), and each changed node updates its
// own row only: with 200 nodes a delta of one node touches one row.
"use strict";

const BUSY = new Set(["bmc-ok", "pxe-armed", "power-cycled", "dhcp-seen", "loader-fetched",
  "script-fetched", "kernel-fetched", "ignition-fetched", "installing", "installed",
  "disk-set", "rebooted"]);
const WARNING_NAMES = {"rogue-dhcp": "Rogue DHCP server", "decline": "Declined address",
  "bmc-error": "BMC error", "failed": "Failed node"};
const rows = new Map();     // primary MAC -> {tr, cells, node}
const stats = {snapshots: 0, deltas: 0, rowUpdates: 0, rowsBuilt: 0};
window.rackStats = stats;
let selected = null;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function ago(since) {
  if (since === null || since === undefined) return "";
  let s = Math.max(0, Math.floor(Date.now() / 1000 - since));
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  const h = Math.floor(s / 3600);
  return h < 48 ? h + " h " + Math.floor((s % 3600) / 60) + " min" : Math.floor(h / 24) + " d";
}

function clock(ts) {
  if (!ts) return "";
  return new Date(ts * 1000).toLocaleTimeString([], {hour12: false});
}

function bmcText(node) {
  const proto = node.bmc_protocol === "auto" && node.bmc_found
    ? "auto→" + node.bmc_found : (node.bmc_protocol || "");
  return (node.bmc_address || "—") + (proto ? " (" + proto + ")" : "");
}

const COLUMNS = [
  ["hostname", "", n => n.hostname],
  ["node_type", "", n => n.node_type],
  ["role", "", n => n.management ? "management" : (n.role || "—")],
  ["primary_mac", "mac", n => n.primary_mac],
  ["address", "addr", n => n.address || "—"],
  ["bmc", "addr", bmcText],
  ["power", "power", n => n.power],
  ["state", "", null],
  ["since", "since", n => ago(n.since)],
  ["last_event", "last", n => n.last_event ? clock(n.last_ts) + " " + n.last_event : "—"],
];

function fill(entry, node) {
  entry.node = node;
  const tr = entry.tr;
  tr.dataset.state = node.state;
  COLUMNS.forEach(([name, , text], i) => {
    const td = entry.cells[i];
    if (name === "state") {
      const badge = td.firstChild;
      badge.textContent = node.state;
      badge.dataset.state = node.state;
      badge.className = "state" + (BUSY.has(node.state) ? " busy" : "");
      badge.title = node.reason || "";
    } else {
      const value = text(node);
      if (td.textContent !== value) td.textContent = value;
      if (name === "power") td.dataset.power = node.power;
    }
  });
}

function build(node) {
  const tr = el("tr");
  tr.dataset.mac = node.primary_mac;
  const cells = COLUMNS.map(([name, cls]) => {
    const td = el("td", cls);
    td.dataset.col = name;
    if (name === "state") td.appendChild(el("span", "state"));
    tr.appendChild(td);
    return td;
  });
  tr.addEventListener("click", () => showTimeline(node.primary_mac));
  const entry = {tr, cells, node};
  fill(entry, node);
  stats.rowsBuilt++;
  return entry;
}

function summary() {
  const counts = {};
  for (const {node} of rows.values()) counts[node.state] = (counts[node.state] || 0) + 1;
  const parts = Object.keys(counts).sort().map(k => counts[k] + " " + k);
  document.getElementById("summary").textContent = rows.size + " nodes: " + parts.join(", ");
}

function snapshot(data) {
  stats.snapshots++;
  const body = document.getElementById("rows");
  const fresh = document.createDocumentFragment();
  rows.clear();
  for (const node of data.nodes) {
    const entry = build(node);
    rows.set(node.primary_mac, entry);
    fresh.appendChild(entry.tr);
  }
  body.replaceChildren(fresh);
  warnings(data.warnings);
  counters(data.counters);
  summary();
}

function delta(data) {
  stats.deltas++;
  for (const node of data.nodes || []) {
    const entry = rows.get(node.primary_mac);  // a delta has the columns that change
    if (entry) { fill(entry, Object.assign({}, entry.node, node)); stats.rowUpdates++; }
  }
  if (data.warnings) warnings(data.warnings);
  if (data.counters) counters(data.counters);
  if ((data.nodes || []).length) summary();
  if (selected && (data.nodes || []).some(n => n.primary_mac === selected)) {
    refreshTimeline();
  }
}

function warnings(all) {
  const list = document.getElementById("warning-list");
  const items = [];
  for (const kind of Object.keys(WARNING_NAMES)) {
    for (const w of (all && all[kind]) || []) {
      const li = el("li");
      li.dataset.kind = kind;
      li.appendChild(el("span", "kind", WARNING_NAMES[kind]));
      li.appendChild(el("span", "", w.text + (w.count > 1 ? " (×" + w.count + ")" : "")));
      if (w.ts) li.appendChild(el("time", "", " " + clock(w.ts)));
      items.push(li);
    }
  }
  list.replaceChildren(...items);
  document.getElementById("warnings").hidden = items.length === 0;
}

function counters(all) {
  const box = document.getElementById("counters");
  const cards = [];
  for (const service of ["dhcp", "tftp", "http"]) {
    const card = el("div", "counter");
    card.dataset.service = service;
    card.appendChild(el("h3", "", service.toUpperCase()));
    const dl = el("dl");
    for (const [name, value] of Object.entries((all && all[service]) || {})) {
      dl.appendChild(el("dt", "", name.replace("racker_" + service + "_", "")));
      dl.appendChild(el("dd", "", Number.isInteger(value) ? value : value.toFixed(1)));
    }
    card.appendChild(dl);
    cards.push(card);
  }
  box.replaceChildren(...cards);
}

async function showTimeline(mac) {
  selected = mac;
  for (const {tr} of rows.values()) tr.classList.toggle("selected", tr.dataset.mac === mac);
  const panel = document.getElementById("timeline");
  const entry = rows.get(mac);
  document.getElementById("timeline-title").textContent =
    "Timeline: " + (entry ? entry.node.hostname : mac);
  panel.hidden = false;
  const list = document.getElementById("timeline-events");
  try {
    const response = await fetch("/api/v1/nodes/" + encodeURIComponent(mac) + "/events");
    if (!response.ok) throw new Error(response.status + " " + response.statusText);
    const data = await response.json();
    if (selected !== mac) return;
    const items = data.events.slice().reverse().map(e => {
      const li = el("li");
      li.appendChild(el("time", "", clock(e.ts)));
      li.appendChild(el("span", "", e.summary));
      return li;
    });
    if (!items.length) items.push(el("li", "", "no events yet"));
    list.replaceChildren(...items);
  } catch (err) {
    list.replaceChildren(el("li", "", "cannot read the events: " + err.message));
  }
}

// A busy node changes in every delta: its timeline is read again at most once a second.
let timelineDue = null;
function refreshTimeline() {
  if (timelineDue !== null) return;
  timelineDue = setTimeout(() => {
    timelineDue = null;
    if (selected) showTimeline(selected);
  }, 1000);
}

function tickAges() {
  for (const entry of rows.values()) {
    const td = entry.cells[8];
    const value = ago(entry.node.since);
    if (td.textContent !== value) td.textContent = value;
  }
}

function connect() {
  const live = document.getElementById("live");
  const source = new EventSource("/api/v1/stream");
  source.addEventListener("snapshot", e => snapshot(JSON.parse(e.data)));
  source.addEventListener("delta", e => delta(JSON.parse(e.data)));
  source.onopen = () => { live.textContent = "live"; live.className = "live on"; };
  source.onerror = () => { live.textContent = "reconnecting…"; live.className = "live off"; };
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("timeline-close").addEventListener("click", () => {
    selected = null;
    document.getElementById("timeline").hidden = true;
    for (const {tr} of rows.values()) tr.classList.remove("selected");
  });
  connect();
  setInterval(tickAges, 5000);
});
