// headrace UI helpers, shared by every page: window.hr = {api, poll, flash, stateColor, esc, fmt...}.
// Changes go through the REST API with the session's CSRF token (X-CSRF-Token, from <body data-csrf>).
(function () {
  "use strict";
  const STATE_COLORS = {
    none: "#e8e8ec", scheduled: "#d2b48c", queued: "#9e9e9e", running: "#37c837", success: "#1e8c3a",
    failed: "#d9302c", up_for_retry: "#f0b400", up_for_reschedule: "#40e0d0", deferred: "#9370db", upstream_failed: "#f58a1f", skipped: "#e57fc4",
    removed: "#d3d3d3",
  };
  const FINISHED = new Set(["success", "failed", "upstream_failed", "skipped", "removed"]);
  const csrf = document.body.dataset.csrf || "";
  const canOperate = document.body.dataset.canOperate === "true";

  class ApiError extends Error {
    constructor(status, detail, error, body) { super(detail); this.status = status; this.error = error; this.body = body; }
  }

  // fetch JSON from the API; throws ApiError with the server's {"detail"} message.
  async function api(method, path, body) {
    const headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRF-Token"] = csrf;
    const resp = await fetch(path, { method, headers, credentials: "same-origin",
                                     body: body === undefined ? undefined : JSON.stringify(body) });
    if (resp.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); }
    let data = null;
    const text = await resp.text();
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { detail: text }; }
    if (!resp.ok) {
      let detail = data && data.detail;
      if (Array.isArray(detail)) detail = detail.map(d => (d.loc || []).join(".") + ": " + d.msg).join("; ");
      throw new ApiError(resp.status, `${resp.status}: ${detail || resp.statusText}`, data && data.error, data);
    }
    return data;
  }

  // show a message in the page's flash area; kind "error" (default) or "ok"
  function flash(message, kind) {
    const el = document.getElementById("flash");
    el.textContent = message;
    el.className = "flash" + (kind === "ok" ? " ok" : "");
    el.hidden = false;
    el.dataset.status = kind || "error";
  }
  function clearFlash() { const el = document.getElementById("flash"); el.hidden = true; el.textContent = ""; }

  // run fn() now and again: fn resolves to the delay before the next run (ms), true (= ms), or false to stop.
  // An error is flashed and retried after 5 s.
  function poll(fn, ms) {
    let timer = null, stopped = false;
    async function tick() {
      let next = 5000;
      try { const r = await fn(); next = r === true ? (ms || 2000) : r; } catch (e) { flash(e.message); }
      if (!stopped && next) timer = setTimeout(tick, next);
    }
    tick();
    return { stop() { stopped = true; clearTimeout(timer); }, kick() { clearTimeout(timer); tick(); } };
  }

  // wrap an action: confirm, call, flash the result or the API's refusal (e.g. 403 for a viewer)
  async function act(label, fn, okMessage) {
    clearFlash();
    try { const r = await fn(); if (okMessage) flash(typeof okMessage === "function" ? okMessage(r) : okMessage, "ok"); return r; }
    catch (e) { flash(`${label} refused — ${e.message}`); return null; }
  }

  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }
  function fmtDate(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    if (isNaN(d)) return iso;
    const p = n => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }
  function fmtSeconds(s) {
    if (s == null) return "";
    if (s < 1) return (s * 1000).toFixed(0) + " ms";
    if (s < 120) return s.toFixed(s < 10 ? 2 : 1) + " s";
    const m = Math.floor(s / 60), r = Math.round(s % 60);
    if (m < 120) return `${m} min ${r} s`;
    return `${Math.floor(m / 60)} h ${m % 60} min`;
  }
  function fmtMiB(bytes) { return bytes == null ? "" : (bytes / 1048576).toFixed(1); }
  function badge(state) { const s = state || "none"; return `<span class="badge state-${esc(s)}">${esc(s)}</span>`; }
  function enc(s) { return encodeURIComponent(s); }

  window.hr = { api, poll, flash, clearFlash, act, esc, enc, fmtDate, fmtSeconds, fmtMiB, badge, ApiError,
                STATE_COLORS, FINISHED, canOperate, csrf,
                stateColor: s => STATE_COLORS[s || "none"] || STATE_COLORS.none };
})();
