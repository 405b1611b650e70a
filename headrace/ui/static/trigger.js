// Trigger form: params (typed by their defaults) + logical date + raw conf → POST /api/v1/dags/{dag_id}/dagRuns,
// then the grid with the new run selected. An error is shown beside its field and beside the button (the
// top of the page may be scrolled away): a param or conf that does not parse, or the API's refusal
// (400 bad conf, 409 run exists). A viewer's submit button is disabled by the page.
(function () {
  "use strict";
  const { api, clearFlash, enc } = window.hr;
  const form = document.getElementById("trigger-form");
  const dagId = form.dataset.dagId;
  const button = document.getElementById("trigger-submit");
  const summary = document.getElementById("trigger-error");

  class FieldError extends Error {
    constructor(field, message) { super(message); this.field = field; }
  }

  function fieldOf(name) {
    if (name === "conf" || name === "run-id") return document.getElementById(name);
    return form.querySelector(`[data-param="${CSS.escape(name)}"]`);
  }

  function clearErrors() {
    for (const el of form.querySelectorAll(".field-error")) { el.hidden = true; el.textContent = ""; }
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  }

  function showError(message, field) {
    if (field) {
      const slot = form.querySelector(`[data-error-for="${CSS.escape(field)}"]`);
      if (slot) { slot.textContent = message; slot.hidden = false; }
      const input = fieldOf(field);
      if (input) input.setAttribute("aria-invalid", "true");
    }
    summary.textContent = message;
    summary.hidden = false;
  }

  function readParams() {
    const out = {};
    for (const input of form.querySelectorAll("[data-param]")) {
      const name = input.dataset.param, kind = input.dataset.kind;
      if (kind === "bool") out[name] = input.checked;
      else if (kind === "int" || kind === "float") {
        if (input.value.trim() === "") throw new FieldError(name, `param ${name}: enter a number`);
        out[name] = kind === "int" ? parseInt(input.value, 10) : parseFloat(input.value);
        if (Number.isNaN(out[name])) throw new FieldError(name, `param ${name}: not a number`);
      } else if (kind === "json") {
        try { out[name] = JSON.parse(input.value); }
        catch (e) { throw new FieldError(name, `param ${name}: invalid JSON (${e.message})`); }
      } else out[name] = input.value;
    }
    return out;
  }

  function readConf() {
    let extra;
    try { extra = JSON.parse(document.getElementById("conf").value || "{}"); }
    catch (e) { throw new FieldError("conf", `conf: invalid JSON (${e.message})`); }
    if (extra === null || typeof extra !== "object" || Array.isArray(extra)) {
      throw new FieldError("conf", "conf must be a JSON object");
    }
    return extra;
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearFlash();
    clearErrors();
    const body = {};
    try {
      body.conf = Object.assign(readParams(), readConf());
    } catch (e) {
      showError(e.message, e.field);
      const input = e.field && fieldOf(e.field);
      if (input) input.focus({ preventScroll: true });
      return;
    }
    const when = document.getElementById("logical-date").value;
    if (when) body.logical_date = new Date(when).toISOString();
    const runId = document.getElementById("run-id").value.trim();
    if (runId) body.dag_run_id = runId;
    button.disabled = true;
    try {
      const run = await api("POST", `/api/v1/dags/${enc(dagId)}/dagRuns`, body);
      location.href = `/dags/${enc(dagId)}/grid?run_id=${enc(run.dag_run_id)}`;
    } catch (e) {
      const field = e.status === 409 && runId ? "run-id" : null;  // else beside the button only
      showError(`Trigger refused — ${e.message}`, field);
      button.disabled = false;
    }
  });
})();
