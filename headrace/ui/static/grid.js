// Grid: runs (columns, oldest left) × tasks (rows) drawn on one canvas that only paints the visible part,
// so 1,000 tasks × 100 runs is a few thousand rectangles per frame and no DOM node per cell.
// Data: GET /ui/data/dags/{dag_id}/grid (task ids once, runs once, one state-code string per run).
// Task groups are rows too (rows, group_states): a group row shows its tasks' aggregated state per run and
// starts collapsed; clicking its name (or a cell) expands or collapses it.
(function () {
  "use strict";
  const { api, poll, act, esc, enc, fmtDate, badge, stateColor, canOperate } = window.hr;
  const frame = document.getElementById("grid-wrap");
  const wrap = document.getElementById("grid-scroll");  // the scrolling element; the canvas lies over it
  const canvas = document.getElementById("grid-canvas");
  const tip = document.getElementById("grid-tip");
  const dagId = frame.dataset.dagId;
  const ROW = 20, COL = 18, CELL = 14, HEAD = 64, PAD = 8;
  let LEFT = 220;
  let data = null, selected = frame.dataset.runId || null, hover = null;
  let vis = [];  // the visible rows: {id, group, depth, parent, col} (col: index in task_ids or in groups)
  const expanded = new Set(), knownGroups = new Set();
  const sizer = document.createElement("div");
  wrap.appendChild(sizer);
  const ctx = canvas.getContext("2d");

  function codeState(c) { return data.codes[c] || "none"; }

  // the rows shown: every task row and group row whose enclosing groups are all expanded
  function visibleRows() {
    const rows = data.rows.length ? data.rows : data.task_ids.map(id => ({ id, group: false, depth: 0, parent: null }));
    const taskCol = new Map(data.task_ids.map((t, j) => [t, j]));
    const groupCol = new Map(data.groups.map((g, k) => [g.id, k]));
    const parentOf = new Map(data.groups.map(g => [g.id, g.parent]));
    for (const g of data.groups) if (!knownGroups.has(g.id)) knownGroups.add(g.id);  // new groups start collapsed
    const shown = r => { for (let p = r.parent; p; p = parentOf.get(p)) if (!expanded.has(p)) return false; return true; };
    return rows.filter(shown).map(r => ({ ...r, col: r.group ? groupCol.get(r.id) : taskCol.get(r.id) }));
  }

  function rowCode(i, row) {
    return row.group ? data.group_states[i][row.col] : data.states[i][row.col];
  }

  // a mapped task's instances in run i by state ({state: count}), or null for a task that is not mapped
  function mappedCounts(i, row) {
    if (row.group || !data.mapped || !data.mapped.length) return null;
    return data.mapped[i][row.id] || null;
  }

  // how many of a mapped task's instances count (a removed index is past the task's length now)
  function mappedTotal(counts) {
    return Object.entries(counts).reduce((a, [s, n]) => a + (s === "removed" ? 0 : n), 0);
  }

  function mappedText(counts) {
    const total = mappedTotal(counts);
    const parts = Object.entries(counts).sort((a, b) => b[1] - a[1]).map(([s, n]) => `${n} ${s}`);
    return `${total} mapped: ${parts.join(", ")}`;
  }

  function rowText(row) {
    const name = row.parent && row.id.startsWith(row.parent + ".") ? row.id.slice(row.parent.length + 1) : row.id;
    if (!row.group) return name;
    const g = data.groups[row.col];
    return (expanded.has(row.id) ? "▾ " : "▸ ") + (g ? g.label : name);
  }

  function toggle(groupId) {
    if (expanded.has(groupId)) expanded.delete(groupId); else expanded.add(groupId);
    layout();
    resize();
  }

  // where (canvas pixels, relative to the scrolled view) the cell of run i, task j is; for tests and hit-testing
  function cellRect(i, j) {
    return { x: LEFT + PAD + i * COL - wrap.scrollLeft, y: HEAD + j * ROW - wrap.scrollTop + (ROW - CELL) / 2,
             w: CELL, h: CELL };
  }

  function resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = wrap.clientWidth, h = wrap.clientHeight;
    canvas.width = w * dpr; canvas.height = h * dpr;
    canvas.style.width = w + "px"; canvas.style.height = h + "px";
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    draw();
  }

  // the frame is as tall as the grid, but no taller than the window leaves room for
  function fitHeight() {
    const content = HEAD + vis.length * ROW + PAD + 16;
    const room = window.innerHeight - frame.getBoundingClientRect().top - 48;
    frame.style.height = Math.max(160, Math.min(content, room)) + "px";
  }

  function draw() {
    const w = wrap.clientWidth, h = wrap.clientHeight;
    ctx.clearRect(0, 0, w, h);
    if (!data) return;
    const sx = wrap.scrollLeft, sy = wrap.scrollTop;
    const nRuns = data.runs.length, nTasks = data.task_ids.length, nRows = vis.length;
    const i0 = Math.max(0, Math.floor((sx - PAD) / COL)), i1 = Math.min(nRuns, Math.ceil((sx + w - LEFT) / COL) + 1);
    const j0 = Math.max(0, Math.floor(sy / ROW)), j1 = Math.min(nRows, Math.ceil((sy + h - HEAD) / ROW) + 1);
    const selIndex = data.runs.findIndex(r => r.run_id === selected);
    // row stripes and the selected column
    for (let j = j0; j < j1; j++) {
      const y = HEAD + j * ROW - sy;
      if (j % 2) { ctx.fillStyle = "#f7f8fa"; ctx.fillRect(0, y, w, ROW); }
      if (hover && hover.j === j) { ctx.fillStyle = "#eef3ff"; ctx.fillRect(0, y, w, ROW); }
    }
    if (selIndex >= 0) {
      ctx.fillStyle = "rgba(37,99,235,0.10)";
      ctx.fillRect(LEFT + PAD + selIndex * COL - sx - 2, 0, COL, h);
    }
    // cells
    for (let i = i0; i < i1; i++) {
      const x = LEFT + PAD + i * COL - sx;
      for (let j = j0; j < j1; j++) {
        const row = vis[j], code = rowCode(i, row);
        if (code === "-" || code === undefined) continue; // no task instance
        ctx.fillStyle = stateColor(codeState(code));
        if (row.group) {  // a group's cell: a rounded-off square with a frame, so it reads as an aggregate
          ctx.fillRect(x + 1, HEAD + j * ROW - sy + (ROW - CELL) / 2 + 1, CELL - 2, CELL - 2);
          ctx.strokeStyle = "#5b6478"; ctx.strokeRect(x + 0.5, HEAD + j * ROW - sy + (ROW - CELL) / 2 + 0.5, CELL - 1, CELL - 1);
        } else {
          ctx.fillRect(x, HEAD + j * ROW - sy + (ROW - CELL) / 2, CELL, CELL);
          const counts = mappedCounts(i, row);
          if (counts) {  // a mapped task: the number of its indices in the cell
            const n = mappedTotal(counts);
            ctx.save();
            ctx.fillStyle = "#ffffff"; ctx.font = "bold 8px sans-serif"; ctx.textAlign = "center"; ctx.textBaseline = "middle";
            ctx.fillText(n > 99 ? "99+" : String(n), x + CELL / 2, HEAD + j * ROW - sy + ROW / 2, CELL);
            ctx.restore();
          }
        }
      }
    }
    // frozen header: one bar per run coloured by its state
    ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, w, HEAD);
    ctx.strokeStyle = "#dde1e8"; ctx.beginPath(); ctx.moveTo(0, HEAD - 0.5); ctx.lineTo(w, HEAD - 0.5); ctx.stroke();
    // bar height: the run's duration relative to the longest shown (a running run counts until now)
    const now = Date.now();
    const secs = data.runs.map(r => r.start_date ? ((r.end_date ? Date.parse(r.end_date) : now) - Date.parse(r.start_date)) / 1000 : 0);
    const longest = Math.max(1e-3, ...secs);
    const barMax = HEAD - 20;
    for (let i = i0; i < i1; i++) {
      const x = LEFT + PAD + i * COL - sx;
      const bh = Math.max(6, Math.round(barMax * secs[i] / longest));
      ctx.fillStyle = stateColor(data.runs[i].state);
      ctx.fillRect(x, HEAD - 6 - bh, CELL, bh);
      if (i === selIndex) {
        ctx.strokeStyle = "#2563eb"; ctx.lineWidth = 2; ctx.strokeRect(x - 1.5, HEAD - 7.5 - bh, CELL + 3, bh + 3); ctx.lineWidth = 1;
      }
    }
    // frozen task-id column
    ctx.fillStyle = "#ffffff"; ctx.fillRect(0, HEAD, LEFT, h - HEAD);
    ctx.font = "12px system-ui, 'DejaVu Sans', sans-serif"; ctx.textBaseline = "middle";
    for (let j = j0; j < j1; j++) {
      const y = HEAD + j * ROW - sy;
      if (hover && hover.j === j) { ctx.fillStyle = "#eef3ff"; ctx.fillRect(0, y, LEFT, ROW); }
      else if (j % 2) { ctx.fillStyle = "#f7f8fa"; ctx.fillRect(0, y, LEFT, ROW); }
      const row = vis[j], indent = 10 + row.depth * 14;
      ctx.fillStyle = "#1d2330";
      ctx.font = row.group ? "600 12px system-ui, 'DejaVu Sans', sans-serif" : "12px system-ui, 'DejaVu Sans', sans-serif";
      ctx.fillText(clip(rowText(row), LEFT - 6 - indent), indent, y + ROW / 2);
    }
    ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, LEFT, HEAD);
    ctx.fillStyle = "#667085";
    ctx.font = "12px system-ui, 'DejaVu Sans', sans-serif";
    ctx.fillText(`${nTasks} tasks × ${nRuns} of ${data.total_runs} runs`, 10, HEAD / 2);
    ctx.strokeStyle = "#dde1e8"; ctx.beginPath(); ctx.moveTo(LEFT - 0.5, 0); ctx.lineTo(LEFT - 0.5, h); ctx.stroke();
  }

  const clipCache = new Map();
  function clip(text, max) {
    const key = text + "|" + max + "|" + ctx.font;
    if (clipCache.has(key)) return clipCache.get(key);
    let t = text;
    if (ctx.measureText(t).width > max) {
      while (t.length > 1 && ctx.measureText(t + "…").width > max) t = t.slice(0, -1);
      t += "…";
    }
    clipCache.set(key, t);
    return t;
  }

  function hit(ev) {
    if (!data) return null;
    const r = canvas.getBoundingClientRect();
    const x = ev.clientX - r.left + wrap.scrollLeft, y = ev.clientY - r.top;
    const i = Math.floor((x - LEFT - PAD) / COL);
    const vx = ev.clientX - r.left;
    if (vx < LEFT || i < 0 || i >= data.runs.length) return y >= HEAD ? { i: -1, j: Math.floor((y - HEAD + wrap.scrollTop) / ROW) } : null;
    if (y < HEAD) return { i, j: -1 };
    const j = Math.floor((y - HEAD + wrap.scrollTop) / ROW);
    return j < vis.length ? { i, j } : null;
  }

  wrap.addEventListener("mousemove", (ev) => {
    const h = hit(ev);
    const prev = hover; hover = h && h.j >= 0 && h.j < vis.length ? h : null;
    if (!h || h.i < 0) {
      tip.hidden = true;
      wrap.style.cursor = hover && vis[hover.j].group ? "pointer" : "default";
    } else {
      const run = data.runs[h.i];
      const row = h.j >= 0 ? vis[h.j] : null;
      const code = row ? rowCode(h.i, row) : null;
      const counts = row ? mappedCounts(h.i, row) : null;
      const text = !row ? `${run.run_id} · ${run.state} · ${fmtDate(run.logical_date)}`
        : `${row.id}${row.group ? " (group)" : ""} · ${run.run_id} · ${code === "-" ? "no task instance" : codeState(code)}` +
          (counts ? ` · ${mappedText(counts)}` : "");
      tip.textContent = text; tip.hidden = false;
      tip.style.left = (ev.clientX + 12) + "px"; tip.style.top = (ev.clientY + 12) + "px";
      wrap.style.cursor = "pointer";
    }
    if ((prev && prev.j) !== (hover && hover.j)) draw();
  });
  wrap.addEventListener("mouseleave", () => { tip.hidden = true; hover = null; draw(); });
  wrap.addEventListener("click", (ev) => {
    const h = hit(ev);
    if (!h) return;
    const row = h.j >= 0 && h.j < vis.length ? vis[h.j] : null;
    if (row && row.group) { toggle(row.id); return; }
    if (h.i < 0) return;
    const run = data.runs[h.i];
    if (h.j < 0) { select(run.run_id); return; }
    if (!row || rowCode(h.i, row) === "-") return;
    location.href = `/dags/${enc(dagId)}/runs/${enc(run.run_id)}/tasks/${enc(row.id)}`;
  });
  wrap.addEventListener("scroll", () => requestAnimationFrame(draw));
  window.addEventListener("resize", () => { if (data) fitHeight(); resize(); });

  function select(runId) {
    selected = runId;
    const url = new URL(location.href);
    url.searchParams.set("run_id", runId);
    history.replaceState(null, "", url);
    document.querySelectorAll(".tabs a").forEach(a => {
      if (a.textContent === "Graph") a.href = `/dags/${enc(dagId)}/graph?run_id=${enc(runId)}`;
    });
    showSelected();
    draw();
  }

  function showSelected() {
    const el = document.getElementById("selected-run");
    const run = data && data.runs.find(r => r.run_id === selected);
    const buttons = ["clear-run", "mark-success", "mark-failed"].map(id => document.getElementById(id));
    if (!run) { el.textContent = "Click a run's header to select it."; buttons.forEach(b => b.disabled = true); return; }
    el.innerHTML = `Run <b class="mono">${esc(run.run_id)}</b> ${badge(run.state)}
      <span class="muted">${esc(fmtDate(run.logical_date))}</span>
      · <a href="/dags/${enc(dagId)}/runs/${enc(run.run_id)}/gantt">Gantt</a>
      · <a href="/dags/${enc(dagId)}/graph?run_id=${enc(run.run_id)}">Graph</a>`;
    el.dataset.runId = run.run_id; el.dataset.state = run.state;
    buttons.forEach(b => { b.disabled = !canOperate; b.title = canOperate ? "" : "Your role cannot change runs"; });
  }

  // the visible rows, the scrolled area and the frame's height, after new data or a group toggled
  function layout() {
    vis = visibleRows();
    sizer.style.width = (LEFT + PAD * 2 + data.runs.length * COL) + "px";
    sizer.style.height = (HEAD + vis.length * ROW + PAD) + "px";
    frame.dataset.rows = vis.map(r => r.id).join(" ");
    fitHeight();
  }

  function runPath() { return `/api/v1/dags/${enc(dagId)}/dagRuns/${enc(selected)}`; }
  document.getElementById("clear-run").addEventListener("click", async () => {
    // a dry run first: the confirmation says what would be cleared, other DAGs' (ExternalTaskMarkers) included
    const planned = await act("Clear", () => api("POST", runPath() + "/clear", { only_failed: false, dry_run: true }));
    if (!planned) return;
    const others = [...new Set(planned.task_instances.filter(t => t.dag_id !== dagId).map(t => t.dag_id))];
    const also = others.length ? `\n\nThrough ExternalTaskMarkers this also clears task instances of: ${others.join(", ")}` : "";
    if (!confirm(`Clear ${planned.task_instances.length} task instance(s) of run ${selected}? They will run again.${also}`)) return;
    await act("Clear", () => api("POST", runPath() + "/clear", { only_failed: false, dry_run: false }),
      r => `Cleared ${r.task_instances.length} task instance(s) of ${selected}`);
    poller.kick();
  });
  for (const [id, state] of [["mark-success", "success"], ["mark-failed", "failed"]]) {
    document.getElementById(id).addEventListener("click", async () => {
      if (!confirm(`Mark run ${selected} ${state}?`)) return;
      await act(`Mark ${state}`, () => api("PATCH", runPath(), { state }), `Run ${selected} marked ${state}`);
      poller.kick();
    });
  }
  const numRuns = document.getElementById("num-runs");
  const wanted = new URLSearchParams(location.search).get("num_runs");
  if (wanted && [...numRuns.options].some(o => o.value === wanted)) numRuns.value = wanted;
  numRuns.addEventListener("change", () => poller.kick());

  async function load() {
    data = await api("GET", `/ui/data/dags/${enc(dagId)}/grid?num_runs=${numRuns.value}`);
    ctx.font = "12px system-ui, 'DejaVu Sans', sans-serif";
    const widest = data.task_ids.slice(0, 2000).reduce((m, t) => Math.max(m, ctx.measureText(t).width), 0)
      + (data.groups.length ? 28 : 0);
    LEFT = Math.min(340, Math.max(180, Math.ceil(widest) + 24));
    if (!selected && data.runs.length) selected = data.runs[data.runs.length - 1].run_id;
    layout();
    const last = data.runs[data.runs.length - 1];
    frame.dataset.lastRunId = last ? last.run_id : "";
    frame.dataset.lastRunState = last ? last.state : "";
    frame.dataset.drawn = String(Date.now());
    showSelected();
    resize();
    if (window.hrGridFirstDrawnAt === undefined) window.hrGridFirstDrawnAt = performance.now();
    window.dispatchEvent(new CustomEvent("hr:grid-drawn"));
    return data.unfinished ? 2000 : 15000;
  }

  const poller = poll(load);
  // for tests and benchmarks: the data and cell positions behind the canvas
  window.hrGrid = { get data() { return data; }, get rows() { return vis; }, cellRect, draw, toggle };
})();
