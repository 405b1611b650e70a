// Resources of a DAG: which task is the memory hog. Data: GET /ui/data/dags/{dag_id}/resources?runs=N.
// A table of every task, biggest peak RSS first, with its memory_limit and % of it; an overview bar
// chart of the top tasks; then per task a chart (vendored Chart.js) of each try's peak memory (MiB,
// left axis) and duration (s, right axis) across runs, with the memory_limit as a dashed line.
(function () {
  "use strict";
  const root = document.getElementById("resources");
  if (!root) return;
  const dagId = root.dataset.dagId, runs = Number(root.dataset.runs) || 50;
  const base = `/ui/data/dags/${hr.enc(dagId)}/resources?runs=${runs}`;
  const MIB = 1048576;
  const RED = "#d9302c", BLUE = "#2563eb", GREY = "#97a0b3", AMBER = "#f0b400", SLATE = "#64748b";
  const charts = new Map();  // task_id -> Chart
  Chart.defaults.animation = false;
  Chart.defaults.font.size = 11;

  function pctCell(p) {
    if (p == null) return `<td class="num muted">—</td>`;
    const cls = p >= 100 ? "pct-over" : p >= 80 ? "pct-near" : "";
    return `<td class="num ${cls}">${p.toFixed(1)} %</td>`;
  }
  function mib(b) { return b == null ? "—" : hr.fmtMiB(b); }

  function table(data) {
    const body = document.querySelector("#resources-table tbody");
    if (!data.tasks.length) { body.innerHTML = `<tr><td colspan="10" class="muted">No tasks.</td></tr>`; return; }
    body.innerHTML = data.tasks.map(t => `
      <tr data-task-id="${hr.esc(t.task_id)}">
        <td><a href="#chart-${hr.esc(t.task_id)}" class="show-chart" data-task-id="${hr.esc(t.task_id)}">${hr.esc(t.task_id)}</a></td>
        <td class="num">${mib(t.max_peak_rss_bytes)}</td><td class="num">${mib(t.mean_peak_rss_bytes)}</td>
        <td class="num">${t.memory_limit_bytes == null ? "none" : mib(t.memory_limit_bytes)}</td>
        ${pctCell(t.pct_of_limit)}
        <td class="num ${t.memory_limit_exceeded ? "pct-over" : ""}">${t.memory_limit_exceeded}</td>
        <td class="num">${hr.fmtSeconds(t.max_duration) || "—"}</td><td class="num">${hr.fmtSeconds(t.mean_duration) || "—"}</td>
        <td class="num">${t.max_cpu_seconds == null ? "—" : t.max_cpu_seconds.toFixed(2)}</td>
        <td class="num">${t.tries}</td>
      </tr>`).join("");
  }

  // colour of a task's bar in the overview, by how close its max peak came to its memory_limit
  const BANDS = [
    { text: "under 80 % of memory_limit", color: BLUE, test: p => p != null && p < 80 },
    { text: "80–100 % of memory_limit", color: AMBER, test: p => p != null && p >= 80 && p < 100 },
    { text: "over memory_limit", color: RED, test: p => p != null && p >= 100 },
    { text: "no memory_limit", color: SLATE, test: p => p == null },
  ];
  const LIMIT_FILL = "rgba(151,160,179,.35)";
  const ROW_PX = 44;  // per task: its peak bar above its limit bar, each ~17 px thick

  function band(t) { return BANDS.find(b => b.test(t.memory_limit_bytes == null ? null : t.pct_of_limit || 0)); }

  function overview(data, shown) {
    const top = data.tasks.filter(t => t.max_peak_rss_bytes != null).slice(0, shown);
    if (!top.length) return;
    const card = document.createElement("div");
    card.className = "res-card res-wide panel";
    card.innerHTML = `<h3>Max peak memory by task (MiB)</h3><div class="res-canvas" style="height:${90 + ROW_PX * top.length}px"><canvas id="res-overview"></canvas></div>`;
    document.getElementById("res-charts").appendChild(card);
    const present = new Set(top.map(band));
    const legendItems = BANDS.filter(b => b !== BANDS[3] || present.has(b))
      .map(b => ({ text: b.text, fillStyle: b.color, strokeStyle: b.color, lineWidth: 0, datasetIndex: 0 }))
      .concat([{ text: "memory_limit", fillStyle: LIMIT_FILL, strokeStyle: GREY, lineWidth: 1, datasetIndex: 1 }]);
    new Chart(card.querySelector("canvas"), {
      type: "bar",
      data: {
        labels: top.map(t => t.task_id),
        datasets: [
          { label: "max peak RSS", data: top.map(t => t.max_peak_rss_bytes / MIB),
            backgroundColor: top.map(t => band(t).color) },
          { label: "memory_limit", data: top.map(t => t.memory_limit_bytes == null ? null : t.memory_limit_bytes / MIB),
            backgroundColor: LIMIT_FILL, borderColor: GREY, borderWidth: 1 },
        ],
      },
      options: { indexAxis: "y", maintainAspectRatio: false,
                 datasets: { bar: { categoryPercentage: 0.85, barPercentage: 0.9, maxBarThickness: 22 } },
                 plugins: { legend: { onClick: () => {}, labels: { generateLabels: () => legendItems } } },
                 scales: { x: { title: { display: true, text: "MiB" } }, y: { ticks: { autoSkip: false } } } },
    });
  }

  function runLabel(data, i) {
    const r = data.runs[i];
    if (!r) return "";
    return r.logical_date ? hr.fmtDate(r.logical_date) : r.run_id;
  }

  function taskChart(data, taskId, tries) {
    const old = charts.get(taskId);
    if (old) old.destroy();
    const oldCard = document.getElementById(`chart-${taskId}`);
    if (oldCard) oldCard.remove();
    const card = document.createElement("div");
    card.className = "res-card panel";
    card.id = `chart-${taskId}`;
    const summary = data.tasks.find(t => t.task_id === taskId) || {};
    const limit = summary.memory_limit_bytes;
    const limitText = limit == null ? "no memory_limit" : `memory_limit ${mib(limit)} MiB`;
    if (!tries.length) {  // never ran in these runs (e.g. upstream failed): say so, no empty chart
      card.classList.add("res-empty");
      card.innerHTML = `<h3>${hr.esc(taskId)} <span class="muted">${limitText}</span></h3>` +
        `<p class="muted">No tries yet in the last ${data.runs.length} run(s): nothing measured.</p>`;
      document.getElementById("res-charts").appendChild(card);
      charts.set(taskId, null);
      return card;
    }
    card.innerHTML = `<h3>${hr.esc(taskId)} <span class="muted">max ${mib(summary.max_peak_rss_bytes)} MiB` +
      `${limit == null ? ", no memory_limit" : ` of ${mib(limit)} MiB limit`}</span></h3>` +
      `<div class="res-canvas"><canvas data-task-id="${hr.esc(taskId)}"></canvas></div>`;
    document.getElementById("res-charts").appendChild(card);
    // retries of one run sit side by side, a little right of the run's position
    const xOf = p => p.run_index + (p.try_number - 1) * 0.12;
    const point = p => ({ x: xOf(p), y: p.peak_rss_bytes / MIB, p });
    const memPts = tries.filter(p => p.peak_rss_bytes != null).map(point);
    const durPts = tries.filter(p => p.duration != null).map(p => ({ x: xOf(p), y: p.duration, p }));
    const limitPts = [];
    const byRun = new Map(tries.map(p => [p.run_index, p.memory_limit_bytes]));
    for (let i = 0; i < data.runs.length; i++) {
      const l = byRun.has(i) ? byRun.get(i) : limit;
      limitPts.push({ x: i, y: l == null ? null : l / MIB });
    }
    const datasets = [
      { label: "peak memory (MiB)", type: "scatter", data: memPts, yAxisID: "mem", pointRadius: 4,
        backgroundColor: BLUE, borderColor: BLUE,  // the legend's colour; tries killed for memory_limit are red
        pointBackgroundColor: memPts.map(d => d.p.end_reason === "memory_limit_exceeded" ? RED : BLUE),
        pointBorderColor: memPts.map(d => d.p.end_reason === "memory_limit_exceeded" ? RED : BLUE) },
      { label: "duration (s)", type: "scatter", data: durPts, yAxisID: "dur", pointStyle: "triangle", pointRadius: 4,
        backgroundColor: "rgba(240,180,0,.8)", borderColor: AMBER },
    ];
    if (limitPts.some(d => d.y != null)) {
      datasets.push({ label: "memory_limit (MiB)", type: "line", data: limitPts, yAxisID: "mem", borderColor: RED,
                      borderDash: [6, 4], borderWidth: 1.5, pointRadius: 0, stepped: "middle", spanGaps: false });
    }
    const chart = new Chart(card.querySelector("canvas"), {
      type: "scatter",
      data: { datasets },
      options: {
        maintainAspectRatio: false,
        scales: {
          x: { type: "linear", min: -0.5, max: Math.max(data.runs.length - 0.5, 0.5),
               // one tick per run (at its index), labelled with its logical date; Chart.js skips labels that collide
               afterBuildTicks: axis => { axis.ticks = data.runs.map((_, i) => ({ value: i })); },
               ticks: { autoSkip: true, maxRotation: 30, callback: v => runLabel(data, v) },
               title: { display: true, text: "DAG run (oldest → newest)" } },
          mem: { position: "left", beginAtZero: true, title: { display: true, text: "peak MiB" } },
          dur: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: "seconds" } },
        },
        plugins: {
          legend: { labels: { generateLabels: c => Chart.defaults.plugins.legend.labels.generateLabels(c)
            .map(l => l.datasetIndex === 0 ? { ...l, fillStyle: BLUE, strokeStyle: BLUE } : l) } },
          tooltip: { callbacks: { label: ctx => {
            const p = ctx.raw && ctx.raw.p;
            if (!p) return `memory_limit ${ctx.parsed.y == null ? "none" : ctx.parsed.y.toFixed(0) + " MiB"}`;
            return `${p.run_id} try ${p.try_number} (${p.state}${p.end_reason ? ", " + p.end_reason : ""}): ` +
              `${mib(p.peak_rss_bytes)} MiB, ${hr.fmtSeconds(p.duration)}` + (p.cpu_seconds == null ? "" : `, CPU ${p.cpu_seconds.toFixed(2)} s`);
          } } },
        },
      },
    });
    charts.set(taskId, chart);
    return card;
  }

  async function showTask(data, taskId) {
    if (charts.has(taskId)) { document.getElementById(`chart-${taskId}`).scrollIntoView(); return; }
    const more = await hr.api("GET", `${base}&series=0&task_id=${hr.enc(taskId)}`);
    taskChart(data, taskId, more.series[taskId] || []).scrollIntoView();
  }

  async function load() {
    const data = await hr.api("GET", base);
    table(data);
    const shown = Object.keys(data.series);
    document.getElementById("charts-note").textContent = data.runs.length
      ? `${data.runs.length} run(s); charts for the ${shown.length} task(s) with the highest peak — click a task in the table for its chart.`
      : "No runs yet.";
    if (!data.runs.length) return;
    overview(data, shown.length);
    for (const taskId of shown) taskChart(data, taskId, data.series[taskId]);
    document.querySelector("#resources-table tbody").addEventListener("click", ev => {
      const a = ev.target.closest("a.show-chart");
      if (!a) return;
      ev.preventDefault();
      hr.act("Loading the chart", () => showTask(data, a.dataset.taskId));
    });
  }
  load().catch(e => hr.flash(e.message));
})();
