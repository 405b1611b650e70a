// Gantt chart of a DAG run: one SVG bar per try (retries are separate bars), a thin bar for the
// queued wait of each task instance's latest try. Data: GET /ui/data/dags/{dag_id}/runs/{run_id}/gantt.
// Bars are coloured by the try's state; a try the supervisor ended (memory_limit, timeout, killed,
// zombie) gets a dark outline and hatching. Hover shows the try's times, duration and process.
(function () {
  "use strict";
  const root = document.getElementById("gantt");
  if (!root) return;
  const dagId = root.dataset.dagId, runId = root.dataset.runId;
  const url = `/ui/data/dags/${hr.enc(dagId)}/runs/${hr.enc(runId)}/gantt`;
  const SVGNS = "http://www.w3.org/2000/svg";
  const ROW = 24, BAR = 16, LABEL = 220, AXIS = 26, PAD = 12;
  const KILLED = new Set(["memory_limit_exceeded", "timeout", "killed", "zombie", "not_started"]);
  const STEPS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  const tip = document.createElement("div");
  tip.className = "gantt-tip";
  tip.hidden = true;
  document.body.appendChild(tip);

  function el(name, attrs, text) {
    const e = document.createElementNS(SVGNS, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text != null) e.textContent = text;
    return e;
  }
  // the task instance page (its tries, process identity and logs)
  function tiUrl(taskId) { return `/dags/${hr.enc(dagId)}/runs/${hr.enc(runId)}/tasks/${hr.enc(taskId)}`; }
  function ms(iso) { return iso ? Date.parse(iso) : null; }
  function clock(t, step) {
    const d = new Date(t), p = n => String(n).padStart(2, "0");
    const base = `${p(d.getHours())}:${p(d.getMinutes())}`;
    if (step >= 60) return base;
    const s = `${base}:${p(d.getSeconds())}`;
    return step < 1 ? `${s}.${String(d.getMilliseconds()).padStart(3, "0").slice(0, 1)}` : s;
  }

  function tipHtml(b) {
    const rows = [
      ["try", `${b.try_number} — ${b.state}${b.end_reason ? " (" + b.end_reason + ")" : ""}`],
      ["start", hr.fmtDate(b.start_date)],
      ["end", b.end_date ? hr.fmtDate(b.end_date) : "running"],
      ["duration", hr.fmtSeconds(b.duration)],
    ];
    if (b.hostname) rows.push(["process", `${b.hostname} pid ${b.pid == null ? "?" : b.pid}`]);
    if (b.peak_rss_bytes != null) rows.push(["peak RSS", hr.fmtMiB(b.peak_rss_bytes) + " MiB"]);
    if (b.cpu_seconds != null) rows.push(["CPU", hr.fmtSeconds(b.cpu_seconds)]);
    if (b.exit_code != null) rows.push(["exit code", String(b.exit_code)]);
    if (b.error) rows.push(["error", b.error.length > 160 ? b.error.slice(0, 160) + "…" : b.error]);
    return `<b>${hr.esc(b.task_id)}</b><table>` +
      rows.map(([k, v]) => `<tr><td>${hr.esc(k)}</td><td>${hr.esc(v)}</td></tr>`).join("") + "</table>";
  }
  function waitHtml(w) {
    return `<b>${hr.esc(w.task_id)}</b><table><tr><td>try</td><td>${w.try_number} waiting for a slot</td></tr>` +
      `<tr><td>queued</td><td>${hr.esc(hr.fmtDate(w.queued_at))}</td></tr>` +
      `<tr><td>started</td><td>${hr.esc(w.start_date ? hr.fmtDate(w.start_date) : "not yet")}</td></tr>` +
      `<tr><td>waited</td><td>${hr.esc(hr.fmtSeconds(w.duration))}</td></tr></table>`;
  }
  function hover(node, html) {
    node.addEventListener("mousemove", ev => {
      tip.innerHTML = html;
      tip.hidden = false;
      tip.style.left = Math.min(ev.clientX + 14, window.innerWidth - tip.offsetWidth - 8) + "px";
      tip.style.top = (ev.clientY + 14) + "px";
    });
    node.addEventListener("mouseleave", () => { tip.hidden = true; });
  }

  function draw(g) {
    const now = ms(g.now);
    let lo = Infinity, hi = -Infinity;
    const span = (a, b) => { if (a != null) { lo = Math.min(lo, a); hi = Math.max(hi, a); } if (b != null) hi = Math.max(hi, b); };
    for (const b of g.tries) span(ms(b.start_date), b.end_date ? ms(b.end_date) : now);
    for (const w of g.waits) span(ms(w.queued_at), w.start_date ? ms(w.start_date) : now);
    if (!isFinite(lo)) { span(ms(g.start_date) || ms(g.queued_at), ms(g.end_date) || now); }
    if (hi - lo < 1000) hi = lo + 1000;
    const width = Math.max(root.clientWidth - 2 * PAD, 500);
    const plotW = width - LABEL - 10;
    const x = t => LABEL + ((t - lo) / (hi - lo)) * plotW;
    const rowOf = new Map(g.tasks.map((t, i) => [t, i]));
    const height = AXIS + g.tasks.length * ROW + 6;
    const svg = el("svg", { width, height, class: "gantt", role: "img",
                            "aria-label": `Gantt of ${runId}: ${g.tries.length} tries` });

    // time axis: ~8 ticks at a round step
    const totalS = (hi - lo) / 1000;
    const step = STEPS.find(s => totalS / s <= 8) || 86400;
    const first = Math.ceil(lo / (step * 1000)) * step * 1000;
    for (let t = first; t <= hi; t += step * 1000) {
      svg.appendChild(el("line", { x1: x(t), x2: x(t), y1: AXIS - 4, y2: height, class: "gantt-grid" }));
      svg.appendChild(el("text", { x: x(t), y: AXIS - 9, "text-anchor": "middle", class: "gantt-tick" }, clock(t, step)));
    }
    g.tasks.forEach((task, i) => {
      const y = AXIS + i * ROW;
      if (i % 2 === 0) svg.appendChild(el("rect", { x: 0, y, width, height: ROW, class: "gantt-stripe" }));
      const link = el("a", { href: tiUrl(task) });
      const label = el("text", { x: 6, y: y + ROW / 2 + 4, class: "gantt-label" }, task.length > 30 ? task.slice(0, 29) + "…" : task);
      label.appendChild(el("title", {}, task));
      link.appendChild(label);
      svg.appendChild(link);
    });

    for (const w of g.waits) {
      const i = rowOf.get(w.task_id);
      if (i == null) continue;
      const a = x(ms(w.queued_at)), b = x(w.start_date ? ms(w.start_date) : now);
      const r = el("rect", { x: a, y: AXIS + i * ROW + ROW / 2 - 2, width: Math.max(b - a, 1), height: 4,
                             class: "gantt-wait", "data-task-id": w.task_id });
      hover(r, waitHtml(w));
      svg.appendChild(r);
    }
    for (const b of g.tries) {
      const i = rowOf.get(b.task_id);
      if (i == null) continue;
      const a = x(ms(b.start_date)), e = x(b.end_date ? ms(b.end_date) : now);
      const w = Math.max(e - a, 2), y = AXIS + i * ROW + (ROW - BAR) / 2;
      const grp = el("g", { class: "gantt-try" + (KILLED.has(b.end_reason) ? " ended-by-supervisor" : "") + (b.running ? " running" : ""),
                            "data-task-id": b.task_id, "data-try-number": String(b.try_number), "data-state": b.state });
      grp.appendChild(el("rect", { x: a, y, width: w, height: BAR, rx: 3, fill: hr.stateColor(b.state) }));
      if (KILLED.has(b.end_reason)) grp.appendChild(el("rect", { x: a, y, width: w, height: BAR, rx: 3, fill: "url(#gantt-hatch)" }));
      if (w > 26) grp.appendChild(el("text", { x: a + 4, y: y + BAR - 4, class: "gantt-bar-label" }, `#${b.try_number}`));
      grp.appendChild(el("title", {}, `${b.task_id} try ${b.try_number}: ${b.state}, ${hr.fmtSeconds(b.duration)}`));
      hover(grp, tipHtml(b));
      grp.addEventListener("click", () => { location.href = `${tiUrl(b.task_id)}?try_number=${b.try_number}`; });
      svg.appendChild(grp);
    }
    const defs = el("defs");
    const pat = el("pattern", { id: "gantt-hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" });
    pat.appendChild(el("rect", { width: 2, height: 6, fill: "rgba(0,0,0,.35)" }));
    defs.appendChild(pat);
    svg.insertBefore(defs, svg.firstChild);
    root.replaceChildren(svg);
  }

  function legend() {
    const states = ["running", "success", "failed", "up_for_retry", "skipped"];
    document.getElementById("gantt-legend").innerHTML =
      states.map(s => `<span><i class="sq" style="background:${hr.stateColor(s)}"></i>${s}</span>`).join("") +
      `<span><i class="sq hatched"></i>ended by the supervisor (memory limit, timeout, killed, zombie)</span>` +
      `<span><i class="sq wait"></i>queued, waiting for a slot</span>`;
  }

  function summary(g) {
    document.getElementById("run-state").innerHTML = hr.badge(g.state);
    const retried = new Set(g.tries.filter(b => b.try_number > 1).map(b => b.task_id)).size;
    const start = g.start_date ? hr.fmtDate(g.start_date) : "not started";
    const dur = g.start_date ? hr.fmtSeconds(((g.end_date ? ms(g.end_date) : ms(g.now)) - ms(g.start_date)) / 1000) : "";
    document.getElementById("gantt-summary").textContent =
      `${g.tries.length} tries of ${g.tasks.length} tasks; ${retried} task(s) retried. Started ${start}` +
      (dur ? `, ${g.end_date ? "took" : "running for"} ${dur}.` : ".");
  }

  let last = null;
  legend();
  hr.poll(async () => {
    const g = await hr.api("GET", url);
    last = g;
    summary(g);
    draw(g);
    return !hr.FINISHED.has(g.state);  // keep following an unfinished run
  }, 3000);
  window.addEventListener("resize", () => { if (last) draw(last); });
})();
