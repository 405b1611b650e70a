// Task instance page: facts, every try (process identity, memory, CPU, exit), a log viewer that follows a
// running try by polling GET .../logs/{try_number}?offset=N until the try has finished.
(function () {
  "use strict";
  const { api, poll, act, esc, enc, fmtDate, fmtSeconds, fmtMiB, badge, canOperate, FINISHED } = window.hr;
  const root = document.getElementById("ti");
  const { dagId, runId, taskId } = root.dataset;
  const mapIndex = Number(root.dataset.mapIndex || -1);  // -1: not mapped (or a mapped task's index list)
  const base = `/api/v1/dags/${enc(dagId)}/dagRuns/${enc(runId)}/taskInstances/${enc(taskId)}`;
  const tiUrl = mapIndex >= 0 ? `${base}/${mapIndex}` : base;
  const q = `map_index=${mapIndex}`;
  const pagePath = `/dags/${enc(dagId)}/runs/${enc(runId)}/tasks/${enc(taskId)}`;
  const logEl = document.getElementById("log");
  let shownTry = root.dataset.try ? Number(root.dataset.try) : null;
  let pickedByUser = shownTry !== null;
  let logFollower = null;
  let upstream = null;  // {trigger_rule, upstream: [{task_id, state}], failed: [task_id], waiting} once read
  const expanded = new Set();  // try numbers whose error is shown in full

  function fact(name, value) { return `<dt>${esc(name)}</dt><dd>${value}</dd>`; }

  function exitText(t) {
    if (t.signal != null) return `signal ${t.signal}`;
    if (t.exit_code != null) return `exit ${t.exit_code}`;
    return "";
  }

  // The task process's start as the page shows it: never before the try started. The recorded value comes
  // from psutil, which adds the boot time from /proc/stat (whole seconds), so it can read up to 1 s early.
  function processStart(t) {
    if (t.process_start_time == null) return null;
    const recorded = t.process_start_time * 1000, started = Date.parse(t.start_date);
    const early = recorded < started;
    const ms = early ? started : recorded;
    const title = early
      ? `recorded ${fmtClock(recorded)}, before the try started: psutil adds the boot time from /proc/stat, ` +
        `a whole second, so a recorded start can read up to 1 s early; shown as the try's start`
      : `pid ${t.pid} started ${fmtDate(new Date(ms).toISOString())}.${String(ms % 1000 | 0).padStart(3, "0")}`;
    return { iso: new Date(ms).toISOString(), text: fmtClock(ms), title };
  }

  function fmtClock(ms) {
    const d = new Date(ms), p = (n, w) => String(n).padStart(w || 2, "0");
    return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
  }

  // a date cell: date above time when the column is narrow
  function when(iso, cls) {
    const [day, time] = fmtDate(iso).split(" ");
    const text = time ? `<span class="day">${esc(day)}</span> <span class="time">${esc(time)}</span>` : esc(day);
    return `<td class="when ${cls}" data-time="${esc(iso || "")}">${text}</td>`;
  }

  function noTriesText() {
    if (upstream && upstream.failed.length) {
      const states = new Map(upstream.upstream.map(u => [u.task_id, u.state]));
      const names = upstream.failed.map(tid => states.get(tid) === "failed" ? tid : `${tid} (${states.get(tid)})`).join(", ");
      return `No tries: upstream task${upstream.failed.length === 1 ? "" : "s"} ${names} failed` +
        (upstream.trigger_rule ? ` (trigger rule ${upstream.trigger_rule})` : "") + ".";
    }
    if (upstream && upstream.waiting) return `No tries yet: ${upstream.waiting}.`;
    return "No tries yet.";
  }

  // Processes of the try still running when its task process ended, and how many the supervisor killed.
  function leftoversText(t) {
    if (!t.processes_left) return "";
    return t.processes_killed === t.processes_left ? `${t.processes_left} left, killed` : `${t.processes_left} left, ${t.processes_killed} killed`;
  }

  function leftoversTitle(t) {
    const how = t.containment === "cgroup" ? "the try's cgroup" : t.containment === "marker" ? "best-effort (environment marker)" : "";
    if (t.processes_left == null) return how ? `containment: ${how}` : "";
    return `${t.processes_left} process(es) left running after the task process ended, ${t.processes_killed} killed; containment: ${how}`;
  }

  function renderTries(tries) {
    const body = document.querySelector("#tries tbody");
    if (!tries.length) { body.innerHTML = `<tr><td colspan="15" class="muted">${esc(noTriesText())}</td></tr>`; return; }
    body.innerHTML = tries.map(t => {
      const ps = processStart(t);
      const open = expanded.has(t.try_number);
      return `<tr data-try="${t.try_number}" class="${t.try_number === shownTry ? "selected" : ""}">
      <td class="num">${t.try_number}</td><td>${badge(t.state)}</td><td class="host">${esc(t.hostname)}</td>
      <td class="num mono">${esc(t.supervisor_pid ?? "")}</td><td class="num mono">${esc(t.pid ?? "")}</td>
      <td class="process-start mono" data-time="${ps ? esc(ps.iso) : ""}" title="${ps ? esc(ps.title) : ""}">${ps ? esc(ps.text) : ""}</td>
      ${when(t.start_date, "start")}${when(t.end_date, "end")}
      <td class="num">${esc(fmtSeconds(t.duration))}</td><td class="num">${esc(fmtMiB(t.peak_rss_bytes))}</td>
      <td class="num">${t.cpu_seconds == null ? "" : t.cpu_seconds.toFixed(2)}</td>
      <td>${esc(exitText(t))}</td>
      <td class="reason" title="${esc(leftoversTitle(t))}">${esc(t.end_reason || "")}${leftoversText(t)
        ? `<div class="leftovers muted">${esc(leftoversText(t))}</div>` : ""}</td>
      <td class="error">${t.error ? `<div class="try-error" role="button" tabindex="0" data-try="${t.try_number}"
          aria-expanded="${open}" title="${esc(t.error)}">${esc(t.error)}</div>` : ""}</td>
      <td><button class="show-log" data-try="${t.try_number}">Log</button></td></tr>`;
    }).join("");
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
      const r = await api("GET", `${base}/logs/${tryNumber}?offset=${offset}&${q}`);
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

  function upstreamFact() {
    if (!upstream || !upstream.failed.length) return "";
    const states = new Map(upstream.upstream.map(u => [u.task_id, u.state]));
    const links = upstream.failed.map(tid =>
      `<a href="/dags/${enc(dagId)}/runs/${enc(runId)}/tasks/${enc(tid)}" class="mono" data-upstream="${esc(tid)}">` +
      `${esc(tid)}</a> ${badge(states.get(tid))}`).join(" ");
    return fact("Upstream failed", `<span class="upstream-list">${links}</span>`);
  }

  // A mapped task without an index: list its task instances (each links to its own page).
  async function loadMapped() {
    const page = await api("GET", `${base}/listMapped?limit=1000`);
    if (!page.total_entries) return null;
    const tis = page.task_instances;
    const counts = {};
    for (const t of tis) counts[t.state] = (counts[t.state] || 0) + 1;
    document.getElementById("ti-state").innerHTML = Object.entries(counts).map(([s, n]) => `${badge(s)} ${n}`).join(" ");
    document.getElementById("ti-facts").innerHTML =
      fact("DAG run", `<a href="/dags/${enc(dagId)}/grid?run_id=${enc(runId)}" class="mono">${esc(runId)}</a>`) +
      fact("Mapped", `${page.total_entries} task instances`);
    document.getElementById("mapped").hidden = false;
    document.getElementById("mapped-count").textContent = page.total_entries > tis.length ? `(first ${tis.length})` : "";
    document.querySelector("#mapped-list tbody").innerHTML = tis.map(t => `<tr data-map-index="${t.map_index}">
      <td class="num"><a href="${pagePath}?map_index=${t.map_index}">${t.map_index}</a></td>
      <td class="label">${t.rendered_map_index == null ? "" : `<a href="${pagePath}?map_index=${t.map_index}">${esc(t.rendered_map_index)}</a>`}</td>
      <td>${badge(t.state)}</td>
      <td class="num">${t.try_number}</td>${when(t.start_date, "start")}${when(t.end_date, "end")}</tr>`).join("");
    document.querySelector("#tries").closest(".table-scroll").hidden = true;
    logEl.textContent = "A mapped task: pick a map index above for its tries and logs.";
    return Object.keys(counts).every(s => FINISHED.has(s)) ? 15000 : 2000;
  }

  async function load() {
    if (mapIndex < 0) {
      const wait = await loadMapped();
      if (wait !== null) { enableActions(); return wait; }
    }
    const [ti, tries] = await Promise.all([api("GET", tiUrl), api("GET", `${base}/tries?${q}`)]);
    if (ti.state === "upstream_failed" && upstream === null) {
      upstream = await api("GET", `/ui/data/dags/${enc(dagId)}/runs/${enc(runId)}/tasks/${enc(taskId)}`);
    } else if (ti.state !== "upstream_failed") upstream = null;
    document.getElementById("ti-state").innerHTML = badge(ti.state);
    root.dataset.state = ti.state;
    document.getElementById("ti-facts").innerHTML =
      fact("DAG run", `<a href="/dags/${enc(dagId)}/grid?run_id=${enc(runId)}" class="mono">${esc(runId)}</a>`) +
      fact("State", badge(ti.state)) + upstreamFact() + fact("Try", `${ti.try_number} of ${ti.max_tries + 1}`) +
      fact("Pool / queue", `${esc(ti.pool)} / ${esc(ti.queue)}`) + fact("Priority weight", esc(ti.priority_weight)) +
      fact("Queued", esc(fmtDate(ti.queued_at))) + fact("Start", esc(fmtDate(ti.start_date))) +
      fact("End", esc(fmtDate(ti.end_date))) + fact("Duration", esc(fmtSeconds(ti.duration))) +
      (ti.next_retry_at ? fact("Next retry", esc(fmtDate(ti.next_retry_at))) : "") +
      (ti.end_reason ? fact("End reason", esc(ti.end_reason) + (upstream && upstream.failed.length
        ? ` <span class="muted">(upstream ${esc(upstream.failed.join(", "))} failed)</span>` : "")) : "");
    const list = (tries.tries || []).slice().sort((a, b) => a.try_number - b.try_number);
    renderTries(list);
    if (list.length) {
      const latest = list[list.length - 1].try_number;
      if (shownTry === null || (!pickedByUser && latest !== shownTry)) showLog(latest);
    }
    enableActions();
    return FINISHED.has(ti.state) ? 15000 : 2000;
  }

  function toggleError(el) {
    const n = Number(el.dataset.try), open = !expanded.has(n);
    if (open) expanded.add(n); else expanded.delete(n);
    el.setAttribute("aria-expanded", String(open));
  }

  const triesBody = document.querySelector("#tries tbody");
  triesBody.addEventListener("click", (ev) => {
    const b = ev.target.closest(".show-log");
    if (b) { pickedByUser = true; showLog(Number(b.dataset.try)); return; }
    const err = ev.target.closest(".try-error");
    if (err) toggleError(err);
  });
  triesBody.addEventListener("keydown", (ev) => {
    const err = ev.target.closest(".try-error");
    if (err && (ev.key === "Enter" || ev.key === " ")) { ev.preventDefault(); toggleError(err); }
  });

  // Clear / Mark: enabled once the task instance is shown, and only for a role that may change it
  let actionsEnabled = false;
  function enableActions() {
    if (actionsEnabled) return;
    actionsEnabled = true;
    for (const id of Object.keys(buttons)) document.getElementById(id).disabled = !canOperate;
  }

  const buttons = { "ti-clear": null, "ti-mark-success": "success", "ti-mark-failed": "failed" };
  for (const [id, state] of Object.entries(buttons)) {
    const b = document.getElementById(id);
    if (!canOperate) b.title = "Your role cannot change task instances";
    b.addEventListener("click", async () => {
      if (state === null) {
        const downstream = document.getElementById("ti-clear-downstream").checked;
        const body = dryRun => ({ dag_run_id: runId, task_ids: [mapIndex >= 0 ? [taskId, mapIndex] : taskId],
          include_downstream: downstream, include_upstream: false, only_failed: false, dry_run: dryRun });
        const clearUrl = `/api/v1/dags/${enc(dagId)}/clearTaskInstances`;
        // a dry run first: the confirmation lists what will be cleared, other DAGs' marked tasks included
        const planned = await act("Clear", () => api("POST", clearUrl, body(true)));
        if (!planned) return;
        const names = planned.task_instances.map(t =>
          `${t.dag_id === dagId ? "" : t.dag_id + " "}${t.task_id}${t.map_index >= 0 ? `[${t.map_index}]` : ""}`);
        const shown = names.slice(0, 25).join("\n") + (names.length > 25 ? `\n… and ${names.length - 25} more` : "");
        if (!confirm(`Clear ${names.length} task instance(s)? They will run again.\n\n${shown}`)) return;
        await act("Clear", () => api("POST", clearUrl, body(false)), r => `Cleared ${r.task_instances.length} task instance(s)`);
        pickedByUser = false;
      } else {
        if (!confirm(`Mark ${taskId} ${state}?`)) return;
        await act(`Mark ${state}`, () => api("PATCH", tiUrl, { state, dry_run: false }), `${taskId} marked ${state}`);
      }
      poller.kick();
    });
  }
  const poller = poll(load);
})();
