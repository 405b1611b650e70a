// Graph: the DAG laid out left-to-right by dagre (vendored), drawn as SVG; nodes coloured by the
// selected run's task instance states, re-coloured every 2 s while the run is unfinished.
// Data: GET /ui/data/dags/{dag_id}/graph?run_id=
// The layout runs in a Web Worker (static/graph_layout.js), so the page stays responsive and says
// what it is doing while dagre lays out a big DAG; the result is kept in localStorage under the DAG's
// id, keyed by a hash of the layout's input (task ids, box sizes, edges), so the next visit of an
// unchanged DAG draws at once. Without workers the layout runs in the page (same script).
(function () {
  "use strict";
  const { api, poll, esc, enc, fmtDate, badge, stateColor } = window.hr;
  const wrap = document.getElementById("graph-wrap");
  const svg = document.getElementById("graph-svg");
  const select = document.getElementById("run-select");
  const status = document.getElementById("graph-status");
  const dagId = wrap.dataset.dagId;
  let runId = wrap.dataset.runId || null;
  let layoutKey = null, drawing = null;
  let nodeEls = new Map();  // task_id -> {grp, rect, texts, title}
  const NS = "http://www.w3.org/2000/svg";
  const CACHE = "headrace.graphLayout." + dagId;
  const DARK_TEXT = new Set(["none", "scheduled", "running", "up_for_retry", "queued", "skipped", "upstream_failed"]);
  const measure = document.createElement("canvas").getContext("2d");
  measure.font = "600 12px system-ui, 'DejaVu Sans', sans-serif";

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  function say(text) { status.textContent = text; status.hidden = !text; }

  // 64-bit FNV-1a-style hash of a string, as hex: the cache key of a layout's input
  function hash(s) {
    let a = 0x811c9dc5, b = 0x9747b28c;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995);
    }
    return (a >>> 0).toString(16) + (b >>> 0).toString(16) + ":" + s.length;
  }

  function layoutInput(data) {
    return {
      nodes: data.nodes.map(n => [n.id, Math.ceil(Math.max(measure.measureText(n.id).width,
                                                             measure.measureText(n.operator).width * 0.9) + 28), 40]),
      edges: data.edges,
    };
  }

  function cached(key) {
    try {
      const c = JSON.parse(localStorage.getItem(CACHE) || "null");
      return c && c.key === key ? c.layout : null;
    } catch (e) { return null; }
  }
  function remember(key, layout) {
    try { localStorage.setItem(CACHE, JSON.stringify({ key, layout })); } catch (e) { /* full or disabled: no cache */ }
  }

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = src; s.onload = resolve; s.onerror = () => reject(new Error("could not load " + src));
      document.head.appendChild(s);
    });
  }

  // the layout of `input`, computed in a worker (or, failing that, in the page)
  function compute(input) {
    const inPage = async () => {
      if (!window.dagre) await loadScript("/static/vendor/dagre.min.js");
      if (!window.hrGraphLayout) await loadScript("/static/graph_layout.js");
      await new Promise(r => setTimeout(r, 0));  // let the message paint first
      return window.hrGraphLayout(input);
    };
    let worker;
    try { worker = new Worker("/static/graph_layout.js"); } catch (e) { return inPage(); }
    return new Promise((resolve, reject) => {
      worker.onmessage = ev => {
        worker.terminate();
        if (ev.data.error) reject(new Error("layout failed: " + ev.data.error)); else resolve(ev.data.layout);
      };
      worker.onerror = ev => { ev.preventDefault(); worker.terminate(); inPage().then(resolve, reject); };
      worker.postMessage(input);
    });
  }

  function draw(data, input, lay) {
    svg.replaceChildren();
    svg.setAttribute("width", lay.width); svg.setAttribute("height", lay.height);
    svg.setAttribute("viewBox", `0 0 ${lay.width} ${lay.height}`);
    const room = window.innerHeight - wrap.getBoundingClientRect().top - 24;
    wrap.style.height = Math.max(160, Math.min(lay.height + 4, room)) + "px";
    const frag = document.createDocumentFragment();
    const defs = el("defs", {}, frag);
    const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7",
                                  markerHeight: "7", orient: "auto-start-reverse" }, defs);
    el("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#97a0b3" }, marker);
    const edges = el("g", {}, frag);
    for (const pts of lay.edges) {
      let d = `M${pts[0]},${pts[1]}`;
      for (let i = 2; i < pts.length; i += 2) d += ` L${pts[i]},${pts[i + 1]}`;
      el("path", { d, class: "edge", "marker-end": "url(#arrow)" }, edges);
    }
    const nodes = el("g", {}, frag);
    nodeEls = new Map();
    input.nodes.forEach(([id, width, height], i) => {
      const [x, y] = lay.nodes[i];
      const grp = el("g", { class: "node", "data-task-id": id, transform: `translate(${x - width / 2},${y - height / 2})` }, nodes);
      const rect = el("rect", { width, height, rx: 6, ry: 6, fill: stateColor("none") }, grp);
      const t = el("text", { x: 12, y: 17, "font-weight": "600" }, grp); t.textContent = id;
      const o = el("text", { x: 12, y: 31, "font-size": "10.5", opacity: "0.8" }, grp); o.textContent = data.nodes[i].operator;
      const title = el("title", {}, grp); title.textContent = id;
      nodeEls.set(id, { grp, rect, texts: [t, o], title });
    });
    svg.appendChild(frag);
  }

  async function ensureLayout(data) {
    const input = layoutInput(data);
    const key = hash(JSON.stringify(input));
    if (key === layoutKey) return drawing;
    layoutKey = key;
    drawing = (async () => {
      let lay = cached(key);
      if (!lay) {
        say(`Laying out ${data.nodes.length.toLocaleString()} tasks and ${data.edges.length.toLocaleString()} dependencies…`);
        try { lay = await compute(input); } finally { say(""); }
        remember(key, lay);
      }
      draw(data, input, lay);
    })();
    return drawing;
  }

  function colour(data) {
    for (const [id, n] of nodeEls) {
      const state = data.states[id] || "none";
      if (n.grp.dataset.state === state) continue;
      n.grp.dataset.state = state;
      n.rect.setAttribute("fill", stateColor(state));
      const fg = DARK_TEXT.has(state) ? "#1d2330" : "#ffffff";
      for (const t of n.texts) t.setAttribute("fill", fg);
      n.title.textContent = `${id}: ${state}`;
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
    fillRuns(data);
    await ensureLayout(data);
    colour(data);
    wrap.dataset.runState = data.run ? data.run.state : "";
    wrap.dataset.nodes = String(data.nodes.length);
    return data.unfinished ? 2000 : 15000;
  }

  svg.addEventListener("click", ev => {
    const grp = ev.target.closest("g.node");
    if (grp && runId) location.href = `/dags/${enc(dagId)}/runs/${enc(runId)}/tasks/${enc(grp.dataset.taskId)}`;
  });
  const poller = poll(load);
  select.addEventListener("change", () => {
    runId = select.value;
    const url = new URL(location.href); url.searchParams.set("run_id", runId); history.replaceState(null, "", url);
    poller.kick();
  });
})();
