// Graph: the DAG laid out left-to-right by dagre (vendored), drawn as SVG; nodes coloured by the
// selected run's task instance states, re-coloured every 2 s while the run is unfinished.
// Data: GET /ui/data/dags/{dag_id}/graph?run_id=
(function () {
  "use strict";
  const { api, poll, esc, enc, fmtDate, badge, stateColor } = window.hr;
  const wrap = document.getElementById("graph-wrap");
  const svg = document.getElementById("graph-svg");
  const select = document.getElementById("run-select");
  const dagId = wrap.dataset.dagId;
  let runId = wrap.dataset.runId || null;
  let layoutKey = null;
  const NS = "http://www.w3.org/2000/svg";
  const DARK_TEXT = new Set(["none", "scheduled", "running", "up_for_retry", "queued", "skipped", "upstream_failed"]);
  const measure = document.createElement("canvas").getContext("2d");
  measure.font = "600 12px system-ui, 'DejaVu Sans', sans-serif";

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }

  function layout(data) {
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: "LR", nodesep: 18, ranksep: 56, marginx: 20, marginy: 20 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const n of data.nodes) {
      const w = Math.max(measure.measureText(n.id).width, measure.measureText(n.operator).width * 0.9) + 28;
      g.setNode(n.id, { width: Math.ceil(w), height: 40 });
    }
    for (const [a, b] of data.edges) g.setEdge(a, b);
    dagre.layout(g);
    svg.innerHTML = "";
    const info = g.graph();
    svg.setAttribute("width", Math.ceil(info.width)); svg.setAttribute("height", Math.ceil(info.height));
    svg.setAttribute("viewBox", `0 0 ${Math.ceil(info.width)} ${Math.ceil(info.height)}`);
    const room = window.innerHeight - wrap.getBoundingClientRect().top - 24;
    wrap.style.height = Math.max(160, Math.min(Math.ceil(info.height) + 4, room)) + "px";
    const defs = el("defs", {}, svg);
    const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7",
                                  markerHeight: "7", orient: "auto-start-reverse" }, defs);
    el("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#97a0b3" }, marker);
    const edges = el("g", {}, svg);
    for (const e of g.edges()) {
      const pts = g.edge(e).points;
      const d = "M" + pts.map(p => `${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(" L");
      el("path", { d, class: "edge", "marker-end": "url(#arrow)" }, edges);
    }
    const nodes = el("g", {}, svg);
    for (const id of g.nodes()) {
      const n = g.node(id);
      const grp = el("g", { class: "node", "data-task-id": id, transform: `translate(${n.x - n.width / 2},${n.y - n.height / 2})` }, nodes);
      el("rect", { width: n.width, height: n.height, rx: 6, ry: 6, fill: stateColor("none") }, grp);
      const t = el("text", { x: 12, y: 17, "font-weight": "600" }, grp); t.textContent = id;
      const op = data.nodes.find(x => x.id === id);
      const o = el("text", { x: 12, y: 31, "font-size": "10.5", opacity: "0.8" }, grp); o.textContent = op ? op.operator : "";
      const title = el("title", {}, grp); title.textContent = id;
      grp.addEventListener("click", () => {
        if (runId) location.href = `/dags/${enc(dagId)}/runs/${enc(runId)}/tasks/${enc(id)}`;
      });
    }
  }

  function colour(data) {
    for (const grp of svg.querySelectorAll("g.node")) {
      const id = grp.dataset.taskId;
      const state = data.states[id] || "none";
      grp.dataset.state = state;
      grp.querySelector("rect").setAttribute("fill", stateColor(state));
      const fg = DARK_TEXT.has(state) ? "#1d2330" : "#ffffff";
      grp.querySelectorAll("text").forEach(t => t.setAttribute("fill", fg));
      grp.querySelector("title").textContent = `${id}: ${state}`;
    }
  }

  function fillRuns(data) {
    const runs = data.runs.slice();
    if (data.run && !runs.some(r => r.run_id === data.run.run_id)) runs.unshift(data.run);
    select.innerHTML = runs.length ? runs.map(r =>
      `<option value="${esc(r.run_id)}" ${data.run && r.run_id === data.run.run_id ? "selected" : ""}>${esc(r.run_id)} (${esc(r.state)})</option>`
    ).join("") : "<option>no runs yet</option>";
    document.getElementById("run-state").innerHTML = data.run ? badge(data.run.state) +
      ` <span class="muted">${esc(fmtDate(data.run.logical_date))}</span>` : "";
  }

  async function load() {
    const q = runId ? `?run_id=${enc(runId)}` : "";
    const data = await api("GET", `/ui/data/dags/${enc(dagId)}/graph${q}`);
    if (!runId && data.run) runId = data.run.run_id;
    const key = JSON.stringify([data.nodes.map(n => n.id), data.edges]);
    if (key !== layoutKey) { layout(data); layoutKey = key; }
    colour(data);
    fillRuns(data);
    wrap.dataset.runState = data.run ? data.run.state : "";
    wrap.dataset.nodes = String(data.nodes.length);
    return data.unfinished ? 2000 : 15000;
  }

  const poller = poll(load);
  select.addEventListener("change", () => {
    runId = select.value;
    const url = new URL(location.href); url.searchParams.set("run_id", runId); history.replaceState(null, "", url);
    poller.kick();
  });
})();
