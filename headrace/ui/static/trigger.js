// Trigger form: params (typed by their defaults) + logical date + raw conf → POST /api/v1/dags/{dag_id}/dagRuns,
// then the grid with the new run selected. A refusal (403 for a viewer, 400 bad conf, 409 exists) is shown.
(function () {
  "use strict";
  const { api, flash, clearFlash, enc } = window.hr;
  const form = document.getElementById("trigger-form");
  const dagId = form.dataset.dagId;

  function readParams() {
    const out = {};
    for (const input of form.querySelectorAll("[data-param]")) {
      const name = input.dataset.param, kind = input.dataset.kind;
      if (kind === "bool") out[name] = input.checked;
      else if (kind === "int" || kind === "float") {
        if (input.value.trim() === "") throw new Error(`param ${name}: enter a number`);
        out[name] = kind === "int" ? parseInt(input.value, 10) : parseFloat(input.value);
        if (Number.isNaN(out[name])) throw new Error(`param ${name}: not a number`);
      } else if (kind === "json") {
        try { out[name] = JSON.parse(input.value); } catch (e) { throw new Error(`param ${name}: invalid JSON (${e.message})`); }
      } else out[name] = input.value;
    }
    return out;
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearFlash();
    const body = {};
    try {
      let extra;
      try { extra = JSON.parse(document.getElementById("conf").value || "{}"); }
      catch (e) { throw new Error(`conf: invalid JSON (${e.message})`); }
      if (extra === null || typeof extra !== "object" || Array.isArray(extra)) throw new Error("conf must be a JSON object");
      body.conf = Object.assign(readParams(), extra);
    } catch (e) { flash(e.message); return; }
    const when = document.getElementById("logical-date").value;
    if (when) body.logical_date = new Date(when).toISOString();
    const runId = document.getElementById("run-id").value.trim();
    if (runId) body.dag_run_id = runId;
    const button = document.getElementById("trigger-submit");
    button.disabled = true;
    try {
      const run = await api("POST", `/api/v1/dags/${enc(dagId)}/dagRuns`, body);
      location.href = `/dags/${enc(dagId)}/grid?run_id=${enc(run.dag_run_id)}`;
    } catch (e) {
      flash(`Trigger refused — ${e.message}`);
      button.disabled = false;
    }
  });
})();
