// Trigger form: params (fields built from their JSON schemas by ui/trigger.py) + logical date + raw conf →
// POST /api/v1/dags/{dag_id}/dagRuns, then the grid with the new run selected. An error is shown beside its
// field and beside the button (the top of the page may be scrolled away): a param or conf that does not
// parse here, or the API's refusal (400 with the refused param's name, 409 run exists); no run is created
// then. An empty field is null for a nullable param, absent for a param without default (the API says it
// needs a value), else null for numbers/dates (the API says why that is wrong) and "" for strings.
// The page renders the submit button disabled; this script enables it for an operator once its handler is set.
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

  // message beside the button; beside the field (if any) the shorter `inline` when given
  function showError(message, field, inline) {
    if (field) {
      const slot = form.querySelector(`[data-error-for="${CSS.escape(field)}"]`);
      if (slot) { slot.textContent = inline || message; slot.hidden = false; }
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
      const required = input.dataset.required === "true", nullable = input.dataset.nullable === "true";
      if (kind === "bool") { out[name] = input.checked; continue; }
      const raw = input.value;
      if (raw.trim() === "") {
        if (nullable) out[name] = null;
        else if (required) continue;  // no value: the API refuses with the param's name
        else out[name] = (kind === "str" || kind === "text") ? raw : null;
        continue;
      }
      if (kind === "select") out[name] = JSON.parse(raw);  // option values are JSON written by the server
      else if (kind === "int" || kind === "float") {
        const n = Number(raw);
        if (Number.isNaN(n)) throw new FieldError(name, `param ${name}: not a number`);
        out[name] = n;
      } else if (kind === "json") {
        try { out[name] = JSON.parse(raw); }
        catch (e) { throw new FieldError(name, `param ${name}: invalid JSON (${e.message})`); }
      } else out[name] = raw;
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
    let fromConf = {};
    try {
      const params = readParams();
      fromConf = readConf();
      body.conf = Object.assign(params, fromConf);
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
      const refusal = e.body || {};
      let field = null, inline;  // beside the button only
      if (e.status === 409 && runId) field = "run-id";
      else if (refusal.error === "ParamValidationError" && refusal.param) {
        // beside the param's own field, unless its value came from the conf box (or it has no field)
        const inConf = Object.prototype.hasOwnProperty.call(fromConf, refusal.param) || !fieldOf(refusal.param);
        field = inConf ? "conf" : refusal.param;
        inline = inConf ? `param ${refusal.param}: ${refusal.reason}` : refusal.reason;
      }
      showError(`Trigger refused — ${e.message}`, field, inline);
      const input = field && fieldOf(field);
      if (input) input.focus({ preventScroll: true });
      button.disabled = false;
    }
  });
  button.disabled = button.dataset.canOperate !== "true";  // the page renders it disabled until this handler exists
})();
