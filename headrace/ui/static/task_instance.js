// Task instance page: facts, every try (process identity, memory, CPU, exit), a log viewer that follows a
// running try by polling GET .../logs/{try_number}?offset=N until the try has finished.
(function () {
  "use strict";
  const { api, poll, act, esc, enc, fmtDate, fmtSeconds, fmtMiB, badge, canOperate, FINISHED } = window.hr;
  const root = document.getElementById("ti");
  const { dagId, runId, taskId } = root.dataset;
  const base = `/api/v1/dags/${enc(dagId)}/dagRuns/${enc(runId)}/taskInstances/${enc(taskId)}`;
  const logEl = document.getElementById("log");
  let shownTry = root.dataset.try ? Number(root.dataset.try) : null;
  let pickedByUser = shownTry !== null;
  let logFollower = null;

  function fact(name, value) { return `<dt>${esc(name)}</dt><dd>${value}</dd>`; }

  function exitText(t) {
    if (t.signal != null) return `signal ${t.signal}`;
    if (t.exit_code != null) return `exit ${t.exit_code}`;
    return "";
  }

  function processStart(t) {
    return t.process_start_time != null ? fmtDate(new Date(t.process_start_time * 1000).toISOString()) : "";
  }

  function renderTries(tries) {
    const body = document.querySelector("#tries tbody");
    if (!tries.length) { body.innerHTML = '<tr><td colspan="15" class="muted">No tries yet.</td></tr>'; return; }
    body.innerHTML = tries.map(t => `<tr data-try="${t.try_number}" class="${t.try_number === shownTry ? "selected" : ""}">
      <td class="num">${t.try_number}</td><td>${badge(t.state)}</td><td>${esc(t.hostname)}</td>
      <td class="num mono">${esc(t.supervisor_pid ?? "")}</td><td class="num mono">${esc(t.pid ?? "")}</td>
      <td>${esc(processStart(t))}</td><td>${esc(fmtDate(t.start_date))}</td><td>${esc(fmtDate(t.end_date))}</td>
      <td class="num">${esc(fmtSeconds(t.duration))}</td><td class="num">${esc(fmtMiB(t.peak_rss_bytes))}</td>
      <td class="num">${t.cpu_seconds == null ? "" : t.cpu_seconds.toFixed(2)}</td><td>${esc(exitText(t))}</td>
      <td>${esc(t.end_reason || "")}</td><td class="error" style="max-width:280px">${esc(t.error || "")}</td>
      <td><button class="show-log" data-try="${t.try_number}">Log</button></td></tr>`).join("");
  }

  function showLog(tryNumber) {
    if (logFollower) logFollower.stop();
    shownTry = tryNumber;
    document.querySelectorAll("#tries tbody tr").forEach(tr => tr.classList.toggle("selected", Number(tr.dataset.try) === tryNumber));
    document.getElementById("log-title").textContent = `try ${tryNumber}`;
    const status = document.getElementById("log-status");
    logEl.textContent = "";
    let offset = 0;
    logFollower = poll(async () => {
      const r = await api("GET", `${base}/logs/${tryNumber}?offset=${offset}`);
      if (r.content) {
        const atBottom = logEl.scrollTop + logEl.clientHeight >= logEl.scrollHeight - 4;
        logEl.textContent += r.content;
        if (atBottom) logEl.scrollTop = logEl.scrollHeight;
      }
      offset = r.next_offset;
      logEl.dataset.finished = String(r.finished);
      status.textContent = r.finished ? "" : "· following…";
      if (r.finished && !logEl.textContent) logEl.textContent = "(empty log)";
      return r.finished ? false : 1000;
    });
  }

  async function load() {
    const [ti, tries] = await Promise.all([api("GET", base), api("GET", `${base}/tries`)]);
    document.getElementById("ti-state").innerHTML = badge(ti.state);
    root.dataset.state = ti.state;
    document.getElementById("ti-facts").innerHTML =
      fact("DAG run", `<a href="/dags/${enc(dagId)}/grid?run_id=${enc(runId)}" class="mono">${esc(runId)}</a>`) +
      fact("State", badge(ti.state)) + fact("Try", `${ti.try_number} of ${ti.max_tries + 1}`) +
      fact("Pool / queue", `${esc(ti.pool)} / ${esc(ti.queue)}`) + fact("Priority weight", esc(ti.priority_weight)) +
      fact("Queued", esc(fmtDate(ti.queued_at))) + fact("Start", esc(fmtDate(ti.start_date))) +
      fact("End", esc(fmtDate(ti.end_date))) + fact("Duration", esc(fmtSeconds(ti.duration))) +
      (ti.next_retry_at ? fact("Next retry", esc(fmtDate(ti.next_retry_at))) : "") +
      (ti.end_reason ? fact("End reason", esc(ti.end_reason)) : "");
    const list = (tries.tries || []).slice().sort((a, b) => a.try_number - b.try_number);
    renderTries(list);
    if (list.length) {
      const latest = list[list.length - 1].try_number;
      if (shownTry === null || (!pickedByUser && latest !== shownTry)) showLog(latest);
    }
    return FINISHED.has(ti.state) ? 15000 : 2000;
  }

  document.querySelector("#tries tbody").addEventListener("click", (ev) => {
    const b = ev.target.closest(".show-log");
    if (b) { pickedByUser = true; showLog(Number(b.dataset.try)); }
  });

  const buttons = { "ti-clear": null, "ti-mark-success": "success", "ti-mark-failed": "failed" };
  for (const [id, state] of Object.entries(buttons)) {
    const b = document.getElementById(id);
    b.disabled = !canOperate;
    if (!canOperate) b.title = "Your role cannot change task instances";
    b.addEventListener("click", async () => {
      if (state === null) {
        if (!confirm(`Clear ${taskId} in ${runId}? It will run again.`)) return;
        await act("Clear", () => api("POST", `/api/v1/dags/${enc(dagId)}/clearTaskInstances`, {
          dag_run_id: runId, task_ids: [taskId], include_downstream: false, include_upstream: false,
          only_failed: false, dry_run: false }), `Cleared ${taskId}`);
        pickedByUser = false;
      } else {
        if (!confirm(`Mark ${taskId} ${state}?`)) return;
        await act(`Mark ${state}`, () => api("PATCH", base, { state, dry_run: false }), `${taskId} marked ${state}`);
      }
      poller.kick();
    });
  }
  const poller = poll(load);
})();
