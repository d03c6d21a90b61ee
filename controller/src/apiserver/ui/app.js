// nanocl's dashboard: the objects of one namespace, kept live by the API's watches (one
// stream per kind, no polling), with scale, rollout undo and a replica's logs. Everything goes
// through the same API, and so the same authorization, as the CLI.
"use strict";

const API = "/apis/nanocl.io/v1";
const $ = (selector) => document.querySelector(selector);
const state = {
  namespace: null,
  clusters: new Map(),
  cargoes: new Map(),
  replicas: new Map(),
  events: new Map(),
  streams: [],
  live: 0,
  logs: null,
};

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else if (key === "onclick") node.addEventListener("click", value);
    else node[key] = value;
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function notice(text, error = false) {
  const n = $("#notice");
  n.textContent = text;
  n.style.color = error ? "#ffb3b3" : "#c9f2d4";
}

/// The `Status` message of a failed answer.
async function failure(response) {
  try {
    const status = await response.json();
    return status.message || `${response.status} ${response.statusText}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

/// Follows `path?watch=true`: every event goes to `apply`; when the stream ends, `reset`
/// empties what it held and the watch starts again (after a pause growing to 10 s).
function watch(path, apply, reset) {
  const controller = new AbortController();
  state.streams.push(controller);
  let delay = 500;
  (async () => {
    while (!controller.signal.aborted) {
      try {
        const response = await fetch(`${path}?watch=true`, { signal: controller.signal });
        if (!response.ok) throw new Error(await failure(response));
        reset();
        connected(+1);
        delay = 500;
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buffer += decoder.decode(value, { stream: true });
            let newline;
            while ((newline = buffer.indexOf("\n")) >= 0) {
              const line = buffer.slice(0, newline).trim();
              buffer = buffer.slice(newline + 1);
              if (!line) continue;
              const event = JSON.parse(line);
              if (event.type === "ERROR") throw new Error(event.object?.message || "watch error");
              if (event.type !== "BOOKMARK") apply(event.type, event.object);
            }
            render();
          }
        } finally {
          connected(-1);
        }
      } catch (error) {
        if (controller.signal.aborted) return;
        $("#connection").dataset.state = "error";
        $("#connection").textContent = `reconnecting: ${error.message}`;
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10000);
    }
  })();
}

function connected(change) {
  state.live += change;
  const c = $("#connection");
  if (state.live >= 4) {
    c.dataset.state = "live";
    c.textContent = "live";
  }
}

function keep(map) {
  return (type, object) => {
    const name = object.metadata.name;
    if (type === "DELETED") map.delete(name);
    else map.set(name, object);
  };
}

function follow(namespace) {
  for (const s of state.streams) s.abort();
  state.streams = [];
  state.live = 0;
  for (const map of [state.clusters, state.cargoes, state.replicas, state.events]) map.clear();
  closeLogs();
  state.namespace = namespace;
  const url = new URL(window.location);
  url.searchParams.set("namespace", namespace);
  history.replaceState(null, "", url);
  const base = `${API}/namespaces/${encodeURIComponent(namespace)}`;
  watch(`${base}/clusters`, keep(state.clusters), () => state.clusters.clear());
  watch(`${base}/cargoes`, keep(state.cargoes), () => state.cargoes.clear());
  watch(`${base}/replicas`, keep(state.replicas), () => state.replicas.clear());
  watch(`${base}/events`, keep(state.events), () => state.events.clear());
  render();
}

function condition(object, type) {
  return (object.status?.conditions || []).find((c) => c.type === type);
}

function age(timestamp) {
  if (!timestamp) return "";
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(timestamp)) / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  return `${Math.round(seconds / 3600)}h`;
}

function byName(map) {
  return [...map.values()].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
}

let scheduled = false;
function render() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    renderClusters();
    renderCargoes();
    renderEvents();
  });
}

function renderClusters() {
  const rows = byName(state.clusters).map((c) => {
    const ready = condition(c, "Ready");
    return el("tr", { "data-cluster": c.metadata.name },
      el("td", {}, c.metadata.name),
      el("td", { class: "ready", "data-ok": String(ready?.status === "True") }, ready ? `${ready.status}${ready.reason ? ` (${ready.reason})` : ""}` : ""),
      el("td", {}, c.status?.subnet || ""),
      el("td", {}, Object.keys(c.spec?.variables || {}).join(", ")));
  });
  $("#clusters tbody").replaceChildren(...rows);
}

function replicasOf(cargo) {
  return [...state.replicas.values()]
    .filter((r) => r.spec?.cargo === cargo)
    .sort((a, b) => (a.spec.slot ?? 0) - (b.spec.slot ?? 0));
}

function renderCargoes() {
  const cargoes = byName(state.cargoes);
  if (cargoes.length === 0) {
    $("#cargoes").replaceChildren(el("p", { class: "empty" }, "No cargoes in this namespace."));
    return;
  }
  // Keep what is being typed in a scale box.
  const focused = document.activeElement?.dataset?.scale;
  const typed = focused ? document.activeElement.value : null;
  $("#cargoes").replaceChildren(...cargoes.map(renderCargo));
  if (focused) {
    const input = document.querySelector(`input[data-scale="${focused}"]`);
    if (input) { input.value = typed; input.focus(); }
  }
}

function renderCargo(cargo) {
  const name = cargo.metadata.name;
  const status = cargo.status || {};
  const desired = status.autoscale?.desiredReplicas ?? cargo.spec.replicas ?? 1;
  const ready = status.readyReplicas ?? 0;
  const rollout = status.rollout;
  const autoscale = status.autoscale;
  const image = cargo.spec.container?.image || (cargo.spec.container?.build ? `built: ${status.build?.image || status.build?.phase || "pending"}` : "");
  const replicas = replicasOf(name);
  const input = el("input", { type: "number", min: 0, max: 1000, value: cargo.spec.replicas ?? 1, "data-scale": name, title: "replicas" });
  return el("div", { class: "cargo", "data-cargo": name },
    el("h3", {},
      el("span", {}, name),
      el("span", { class: "ready", "data-ok": String(ready >= desired), title: "ready / desired" }, `${ready}/${desired}`),
      el("code", {}, image),
      el("span", { class: "actions" },
        input,
        el("button", { type: "button", "data-action": "scale", onclick: () => scale(name, Number(input.value)) }, "Scale"),
        el("button", { type: "button", "data-action": "undo", onclick: () => undo(name) }, "Rollout undo"))),
    el("div", { class: "meta" },
      `revision ${status.currentRevision ?? "?"}`,
      status.updateRevision && status.updateRevision !== status.currentRevision ? ` → ${status.updateRevision}` : "",
      rollout ? ` · rollout ${rollout.phase}${rollout.message ? `: ${rollout.message}` : ""}` : "",
      autoscale ? ` · autoscaler: ${autoscale.desiredReplicas} replicas (${autoscale.reason}${autoscale.currentCpuUtilizationPercent != null ? `, CPU ${autoscale.currentCpuUtilizationPercent}%` : ""})` : "",
      condition(cargo, "Ready")?.status === "False" ? ` · ${condition(cargo, "Ready").reason}: ${condition(cargo, "Ready").message}` : ""),
    el("table", { class: "replicas" },
      el("thead", {}, el("tr", {}, ["Replica", "Node", "State", "Health", "Restarts", "Image", "Container", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, replicas.map((r) => {
        const s = r.status || {};
        return el("tr", { "data-replica": r.metadata.name, "data-slot": r.spec.slot },
          el("td", {}, `${name}-${r.spec.slot}`),
          el("td", {}, s.node || r.spec.node || ""),
          el("td", { class: `phase-${s.phase || ""}`, "data-field": "phase" }, s.phase || "Pending"),
          el("td", { class: `health-${s.health || ""}`, "data-field": "health" }, s.health || ""),
          el("td", { "data-field": "restarts" }, s.restarts ?? 0),
          el("td", {}, el("code", {}, s.image || "")),
          el("td", {}, el("code", { "data-field": "container" }, s.container || "")),
          el("td", {}, el("button", { type: "button", onclick: () => openLogs(name, r.spec.slot) }, "Logs")));
      }))));
}

function renderEvents() {
  const events = [...state.events.values()]
    .sort((a, b) => (b.lastTimestamp || "").localeCompare(a.lastTimestamp || ""))
    .slice(0, 50);
  $("#events tbody").replaceChildren(...events.map((e) => el("tr", { "data-event": e.metadata.name },
    el("td", { title: e.lastTimestamp }, age(e.lastTimestamp)),
    el("td", { class: `type-${e.type}` }, e.type),
    el("td", {}, `${(e.involvedObject?.kind || "").toLowerCase()}/${e.involvedObject?.name || ""}`),
    el("td", {}, e.reason),
    el("td", {}, e.message),
    el("td", {}, e.count))));
}

async function cargoUrl(name) {
  return `${API}/namespaces/${encodeURIComponent(state.namespace)}/cargoes/${encodeURIComponent(name)}`;
}

/// Reads the cargo, changes it with `change`, writes it back (again on a conflict); then
/// says `done()`.
async function update(name, change, done) {
  const url = await cargoUrl(name);
  for (let attempt = 0; attempt < 3; attempt++) {
    const got = await fetch(url);
    if (!got.ok) return notice(`${name}: ${await failure(got)}`, true);
    const cargo = await got.json();
    const why = change(cargo);
    if (why) return notice(`${name}: ${why}`, true);
    const put = await fetch(url, { method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify(cargo) });
    if (put.ok) return notice(done());
    if (put.status !== 409) return notice(`${name}: ${await failure(put)}`, true);
  }
  notice(`${name}: changed by someone else three times in a row; try again`, true);
}

function scale(name, replicas) {
  if (!Number.isInteger(replicas) || replicas < 0 || replicas > 1000) {
    return notice(`${name}: replicas must be a whole number from 0 to 1000`, true);
  }
  return update(name, (cargo) => { cargo.spec.replicas = replicas; }, () => `${name}: scaled to ${replicas}`);
}

/// What `nanocl rollout undo` does (cli/src/commands/rollout/undo.rs: target, write_revision):
/// the newest revision kept before the spec's, written back into the spec.
function undo(name) {
  let chosen;
  return update(name, (cargo) => {
    const status = cargo.status || {};
    const revisions = status.revisions || [];
    const before = revisions.filter((r) => status.updateRevision == null || r.revision < status.updateRevision);
    if (before.length === 0) return "no revision before the current one to roll back to";
    chosen = before.reduce((a, b) => (b.revision > a.revision ? b : a));
    const container = structuredClone(chosen.container);
    if (container.build) { delete container.image; delete container.imagePullPolicy; }
    for (const key of Object.keys(container.labels || {})) if (key.startsWith("io.nanocl.")) delete container.labels[key];
    cargo.spec.container = container;
    if (chosen.networks?.length) cargo.spec.networks = chosen.networks; else delete cargo.spec.networks;
    const annotations = cargo.metadata.annotations || {};
    if (chosen.restartedAt) annotations["rollout.nanocl.io/restartedAt"] = chosen.restartedAt;
    else delete annotations["rollout.nanocl.io/restartedAt"];
    cargo.metadata.annotations = annotations;
    return null;
  }, () => `${name}: rolling back to revision ${chosen.revision}`);
}

function closeLogs() {
  state.logs?.abort();
  state.logs = null;
  $("#logs-panel").hidden = true;
}

async function openLogs(cargo, slot) {
  closeLogs();
  const controller = new AbortController();
  state.logs = controller;
  $("#logs-panel").hidden = false;
  $("#logs-title").textContent = `${cargo}-${slot}`;
  const pre = $("#logs");
  pre.textContent = "";
  try {
    const url = `${await cargoUrl(cargo)}/log?replica=${slot}&tailLines=200&follow=true`;
    const response = await fetch(url, { signal: controller.signal });
    if (!response.ok) { pre.textContent = await failure(response); return; }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pre.textContent += decoder.decode(value, { stream: true });
      pre.scrollTop = pre.scrollHeight;
    }
  } catch (error) {
    if (!controller.signal.aborted) pre.textContent += `\n(${error.message})`;
  }
}

async function start() {
  $("#logs-close").addEventListener("click", closeLogs);
  const select = $("#namespace");
  select.addEventListener("change", () => follow(select.value));
  const response = await fetch(`${API}/namespaces`);
  if (!response.ok) {
    $("#connection").dataset.state = "error";
    $("#connection").textContent = await failure(response);
    return;
  }
  const names = (await response.json()).items.map((n) => n.metadata.name).sort();
  select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
  const wanted = new URL(window.location).searchParams.get("namespace");
  const first = names.includes(wanted) ? wanted : names.includes("global") ? "global" : names[0];
  select.value = first;
  follow(first);
  setInterval(renderEvents, 10000); // ages only; the data itself comes from the watches
}

start();
