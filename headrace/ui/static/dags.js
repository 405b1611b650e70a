// DAG list: /api/v1/dags + /ui/data/recent_runs + /api/v1/importErrors; live while a recent run is unfinished.
// A DAG with warnings (arguments headrace ignores) gets a badge that opens their list.
(function () {
  "use strict";
  const { api, poll, act, esc, enc, fmtDate, canOperate } = window.hr;
  const tbody = document.querySelector("#dags tbody");
  const filter = document.getElementById("filter");
  const onlyActive = document.getElementById("only-active");
  const openWarnings = new Set();  // dag_ids whose warning list is open: kept open across refreshes

  function warnings(d) {
    const list = d.warnings || [];
    if (!list.length) return "";
    const n = `${list.length} warning${list.length === 1 ? "" : "s"}`;
    return `<details class="dag-warn-list" data-dag-id="${esc(d.dag_id)}" ${openWarnings.has(d.dag_id) ? "open" : ""}>
      <summary class="warn-badge" title="${esc(list.map(w => w.message).join("\n"))}">&#9888; ${n}</summary>
      <ul>${list.map(w => `<li data-warning-type="${esc(w.warning_type)}">${esc(w.message)}</li>`).join("")}</ul>
    </details>`;
  }

  function squares(runs, dagId) {
    return (runs || []).map(([runId, state]) =>
      `<a class="sq state-${esc(state)}" title="${esc(runId)}: ${esc(state)}" href="/dags/${enc(dagId)}/grid?run_id=${enc(runId)}"></a>`
    ).join("") || '<span class="muted">no runs</span>';
  }

  function row(d, runs) {
    return `<tr data-dag-id="${esc(d.dag_id)}">
      <td><label class="switch" title="${d.is_paused ? "Paused" : "Active"}"><input type="checkbox" class="pause-toggle"
          data-dag-id="${esc(d.dag_id)}" ${d.is_paused ? "" : "checked"} ${canOperate ? "" : "disabled"}
          aria-label="${esc(d.dag_id)} active"><span class="knob"></span></label></td>
      <td><a href="/dags/${enc(d.dag_id)}/grid" title="${esc(d.dag_id)}"><b>${esc(d.dag_display_name || d.dag_id)}</b></a>
          ${d.description ? `<div class="muted" style="font-size:12px">${esc(d.description)}</div>` : ""}
          ${warnings(d)}</td>
      <td class="recent">${squares(runs, d.dag_id)}</td>
      <td><code>${esc(d.schedule || "None")}</code></td>
      <td>${esc(fmtDate(d.next_run_after || d.next_logical_date)) || '<span class="muted">—</span>'}</td>
      <td>${(d.tags || []).map(t => `<span class="tag">${esc(t)}</span>`).join("")}</td>
      <td>${canOperate
        ? `<a class="button trigger" href="/dags/${enc(d.dag_id)}/trigger" title="Trigger a run">Trigger</a>`
        : '<button class="trigger" disabled title="Triggering needs the operator role">Trigger</button>'}</td>
    </tr>`;
  }

  async function load() {
    const q = new URLSearchParams({ limit: "100" });
    if (onlyActive.checked) q.set("only_active", "true");
    if (filter.value.trim()) q.set("dag_id_pattern", filter.value.trim());
    const [dags, recent, errors] = await Promise.all([
      api("GET", "/api/v1/dags?" + q), api("GET", "/ui/data/recent_runs?limit=10"),
      api("GET", "/api/v1/importErrors?limit=100"),
    ]);
    const runs = recent.recent_runs;
    tbody.innerHTML = dags.dags.length ? dags.dags.map(d => row(d, runs[d.dag_id])).join("")
      : '<tr><td colspan="7" class="muted">No DAGs. Put DAG files in the dags folder.</td></tr>';
    document.getElementById("dag-count").textContent =
      `${dags.dags.length} of ${dags.total_entries} DAG${dags.total_entries === 1 ? "" : "s"}`;
    const banner = document.getElementById("import-errors");
    const list = errors.import_errors || [];
    banner.hidden = list.length === 0;
    banner.innerHTML = list.length ? `<b>${list.length} DAG file${list.length === 1 ? "" : "s"} failed to import</b><ul>` +
      list.map(e => `<li><code>${esc(e.fileloc)}${e.lineno ? ":" + e.lineno : ""}</code> — ${esc(e.message)}</li>`).join("") + "</ul>" : "";
    const busy = dags.dags.some(d => (runs[d.dag_id] || []).some(([, s]) => s === "queued" || s === "running"));
    return busy ? 2000 : 15000;
  }

  let poller = null;
  function start() {
    if (poller) poller.stop();
    poller = poll(load);
  }
  let t = null;
  filter.addEventListener("input", () => { clearTimeout(t); t = setTimeout(start, 250); });
  onlyActive.addEventListener("change", start);
  tbody.addEventListener("toggle", (ev) => {  // toggle does not bubble: listen in the capture phase
    const box = ev.target.closest && ev.target.closest(".dag-warn-list");
    if (!box) return;
    if (box.open) openWarnings.add(box.dataset.dagId); else openWarnings.delete(box.dataset.dagId);
  }, true);
  tbody.addEventListener("change", async (ev) => {
    const box = ev.target.closest(".pause-toggle");
    if (!box) return;
    const paused = !box.checked;
    const r = await act(paused ? "Pause" : "Unpause",
      () => api("PATCH", `/api/v1/dags/${enc(box.dataset.dagId)}`, { is_paused: paused }),
      `${box.dataset.dagId} ${paused ? "paused" : "unpaused"}`);
    if (r === null) box.checked = !box.checked;
  });
  start();
})();
