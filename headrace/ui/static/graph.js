// Graph: the DAG laid out left-to-right by dagre (vendored), drawn as SVG; nodes coloured by the
// selected run's task instance states, re-coloured every 2 s while the run is unfinished.
// Data: GET /ui/data/dags/{dag_id}/graph?run_id=
// The layout runs in a Web Worker (static/graph_layout.js), so the page stays responsive and says
// what it is doing while dagre lays out a big DAG; the result is kept in localStorage under the DAG's
// id, keyed by a hash of the layout's input (task ids, box sizes, edges), so the next visit of an
// unchanged DAG draws at once. Without workers the layout runs in the page (same script).
// Task groups start collapsed: a collapsed group is one node (its aggregated state, "N tasks"); clicking it
// expands it into a box around its members (dagre compound layout), and clicking the box's title collapses
// it. Edges to hidden tasks go to the group's node. Edge labels (Label) are drawn on their edges.
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
  let nodeEls = new Map();  // task_id or group_id -> {grp, rect, texts, title, group}
  let lastData = null, collapsed = new Set(), knownGroups = new Set();
  const NS = "http://www.w3.org/2000/svg";
  const CACHE = "headrace.graphLayout." + dagId;
  const DARK_TEXT = new Set(["none", "scheduled", "running", "up_for_retry", "up_for_reschedule", "queued", "skipped", "upstream_failed", "removed"]);
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

  // what is shown with the current collapsed groups: nodes (tasks and collapsed groups), edges, clusters
  function view(data) {
    const groups = new Map(data.groups.map(g => [g.id, g]));
    const parentOf = new Map();
    for (const g of data.groups) for (const c of g.children) parentOf.set(c, g.id);
    const rep = id => {  // the outermost collapsed group around id, else id itself
      let r = id;
      for (let p = parentOf.get(id); p; p = parentOf.get(p)) if (collapsed.has(p)) r = p;
      return r;
    };
    const nodes = [], seen = new Set(), operator = new Map(data.nodes.map(n => [n.id, n.operator]));
    // setup / teardown tasks carry Airflow's marks; the edge from a setup to its teardown is dashed
    const role = new Map(data.nodes.filter(n => n.role).map(n => [n.id, n.role]));
    const mark = id => role.get(id) === "setup" ? "↗ setup · " : role.get(id) === "teardown" ? "↘ teardown · " : "";
    const mapped = new Set(data.nodes.filter(n => n.mapped).map(n => n.id));  // drawn "[N]": N task instances in the run
    for (const n of data.nodes) {
      const r = rep(n.id);
      if (seen.has(r)) continue;
      seen.add(r);
      const g = groups.get(r);
      const parent = parentOf.get(r);
      const short = parent && groups.get(parent) && r.startsWith(parent + ".") ? r.slice(parent.length + 1) : r;
      nodes.push(g ? { id: r, group: g, text: g.label, sub: `▸ ${g.task_ids.length} task${g.task_ids.length === 1 ? "" : "s"}` }
                   : { id: r, group: null, text: short, sub: mark(r) + (operator.get(r) || ""), mapped: mapped.has(r) });
    }
    // assets (schedule, inlets, outlets): nodes of their own, linked to the tasks (or their collapsed group)
    for (const a of data.assets || []) nodes.push({ id: a.id, group: null, asset: a, text: a.name, sub: "asset · " + a.uri });
    const labelOf = new Map(data.labels.map(([a, b, text]) => [a + "\u001f" + b, text]));
    const edges = [], labels = [], slot = new Map();  // "from\u001fto" -> index in edges
    for (const [a, b] of data.edges.concat(data.asset_edges || [])) {
      const ra = rep(a), rb = rep(b), key = ra + "\u001f" + rb;
      if (ra === rb) continue;  // inside one collapsed group
      const text = labelOf.get(a + "\u001f" + b) || null;
      const i = slot.get(key);
      if (i !== undefined) { if (!labels[i]) labels[i] = text; continue; }
      slot.set(key, edges.length); edges.push([ra, rb]); labels.push(text);
    }
    const parents = [], clusters = [];
    for (const n of nodes) if (parentOf.has(n.id)) parents.push([n.id, parentOf.get(n.id)]);
    for (const g of data.groups) {
      if (collapsed.has(g.id) || !g.task_ids.some(t => seen.has(t))) continue;  // collapsed, or inside a collapsed one
      clusters.push(g);
      if (g.parent) parents.push([g.id, g.parent]);
    }
    const dashed = edges.map(([a, b]) => role.get(a) === "setup" && role.get(b) === "teardown");
    return { nodes, edges, labels, parents, clusters, dashed };
  }

  function layoutInput(v) {
    return {
      nodes: v.nodes.map(n => [n.id, Math.ceil(Math.max(measure.measureText(n.text).width,
                                                         measure.measureText(n.sub + (n.mapped ? " [0000]" : "")).width * 0.9) + 28), 40]),
      edges: v.edges,
      labels: v.labels.map(t => t ? [Math.ceil(measure.measureText(t).width * 0.9) + 10, 16] : null),
      parents: v.parents,
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

  function draw(v, input, lay) {
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
    const boxes = el("g", {}, frag);
    const byId = new Map(v.clusters.map(g => [g.id, g]));
    for (const [id, x, y, w, h] of lay.clusters || []) {
      const g = byId.get(id);
      if (!g) continue;
      const box = el("g", { class: "group-cluster", "data-group-id": id }, boxes);
      el("rect", { x, y: y - 18, width: w, height: h + 18, rx: 8, ry: 8, fill: g.ui_color, "fill-opacity": "0.12",
                   stroke: g.ui_color, "stroke-opacity": "0.7" }, box);
      const head = el("text", { x: x + 8, y: y - 5, class: "group-title", "font-size": "11", "font-weight": "600" }, box);
      head.textContent = "▾ " + g.label;
      const title = el("title", {}, box); title.textContent = (g.tooltip ? g.tooltip + "\n" : "") + "Click the title to collapse";
    }
    const edges = el("g", {}, frag);
    lay.edges.forEach((pts, i) => {
      let d = `M${pts[0]},${pts[1]}`;
      for (let j = 2; j < pts.length; j += 2) d += ` L${pts[j]},${pts[j + 1]}`;
      const attrs = { d, class: "edge", "marker-end": "url(#arrow)", "data-from": v.edges[i][0], "data-to": v.edges[i][1] };
      if (v.dashed[i]) { attrs.class = "edge setup-teardown"; attrs["stroke-dasharray"] = "5 4"; }
      el("path", attrs, edges);
    });
    (lay.labels || []).forEach((pos, i) => {
      if (!pos || !v.labels[i]) return;
      const [w, h] = input.labels[i];
      const lbl = el("g", { class: "edge-label", "data-from": v.edges[i][0], "data-to": v.edges[i][1] }, edges);
      el("rect", { x: pos[0] - w / 2, y: pos[1] - h / 2, width: w, height: h, rx: 3, ry: 3, fill: "#ffffff", stroke: "#dde1e8" }, lbl);
      const t = el("text", { x: pos[0], y: pos[1] + 4, "text-anchor": "middle", "font-size": "10.5", fill: "#475467" }, lbl);
      t.textContent = v.labels[i];
    });
    const nodes = el("g", {}, frag);
    nodeEls = new Map();
    input.nodes.forEach(([id, width, height], i) => {
      const [x, y] = lay.nodes[i];
      const n = v.nodes[i];
      const attrs = n.group ? { class: "node group-node", "data-group-id": id }
        : n.asset ? { class: "asset-node", "data-asset-uri": n.asset.uri } : { class: "node", "data-task-id": id };
      attrs.transform = `translate(${x - width / 2},${y - height / 2})`;
      const grp = el("g", attrs, nodes);
      const rect = el("rect", { width, height, rx: n.asset ? 18 : 6, ry: n.asset ? 18 : 6, fill: stateColor("none") }, grp);
      if (n.group) rect.style.stroke = n.group.ui_color;
      if (n.asset) { rect.setAttribute("fill", "#eef4ff"); rect.setAttribute("stroke", "#5b7fd6"); }
      const t = el("text", { x: 12, y: 17, "font-weight": "600" }, grp); t.textContent = n.text;
      const o = el("text", { x: 12, y: 31, "font-size": "10.5", opacity: "0.8" }, grp); o.textContent = n.sub;
      const title = el("title", {}, grp); title.textContent = id;
      if (n.asset) { title.textContent = `asset ${n.asset.name} (${n.asset.uri}): click for the assets page`; return; }
      nodeEls.set(id, { grp, rect, texts: [t, o], title, group: n.group, sub: n.sub, mapped: n.mapped });
    });
    svg.appendChild(frag);
  }

  async function ensureLayout(data) {
    for (const g of data.groups) if (!knownGroups.has(g.id)) { knownGroups.add(g.id); collapsed.add(g.id); }
    const v = view(data);
    const input = layoutInput(v);
    const key = hash(JSON.stringify(input));
    if (key === layoutKey) return drawing;
    layoutKey = key;
    drawing = (async () => {
      let lay = cached(key);
      if (!lay) {
        say(`Laying out ${v.nodes.length.toLocaleString()} nodes and ${v.edges.length.toLocaleString()} dependencies…`);
        try { lay = await compute(input); } finally { say(""); }
        remember(key, lay);
      }
      draw(v, input, lay);
    })();
    return drawing;
  }

  function colour(data) {
    for (const [id, n] of nodeEls) {
      if (n.mapped) {  // Airflow's "[N]" beside a mapped task: its task instances in this run ("[ ]" before expansion)
        const count = data.mapped_counts[id];
        n.texts[1].textContent = `${n.sub} [${count === undefined ? " " : count}]`;
        n.grp.dataset.mapped = count === undefined ? "" : String(count);
      }
      const state = (n.group ? data.group_states[id] : data.states[id]) || "none";
      if (n.grp.dataset.state === state) continue;
      n.grp.dataset.state = state;
      n.rect.setAttribute("fill", stateColor(state));
      const fg = DARK_TEXT.has(state) ? "#1d2330" : "#ffffff";
      for (const t of n.texts) t.setAttribute("fill", fg);
      n.title.textContent = n.group ? `${id}: ${state} (${n.group.tooltip ? n.group.tooltip + "; " : ""}click to expand)` : `${id}: ${state}`;
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
    lastData = data;
    await ensureLayout(data);
    colour(data);
    wrap.dataset.runState = data.run ? data.run.state : "";
    wrap.dataset.nodes = String(data.nodes.length);
    wrap.dataset.collapsed = [...collapsed].sort().join(" ");
    return data.unfinished ? 2000 : 15000;
  }

  async function toggle(groupId) {
    if (collapsed.has(groupId)) collapsed.delete(groupId); else collapsed.add(groupId);
    await ensureLayout(lastData);
    colour(lastData);
    wrap.dataset.collapsed = [...collapsed].sort().join(" ");
  }

  svg.addEventListener("click", ev => {
    const groupNode = ev.target.closest("g.group-node");
    const groupTitle = ev.target.closest("text.group-title");
    if (groupNode || groupTitle) {
      if (lastData) toggle((groupNode || groupTitle.parentNode).dataset.groupId);
      return;
    }
    if (ev.target.closest("g.asset-node")) { location.href = "/assets"; return; }
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
