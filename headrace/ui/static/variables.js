// Variables page: lists /api/v1/variables (every page of it; sensitive values come as ***); an operator
// creates, edits (PATCH) and deletes through the same API with X-CSRF-Token (hr.api). Editing a variable
// loads it from GET /api/v1/variables/{key}, which gives an operator the real value. A viewer's buttons
// are disabled; the API would refuse them anyway (403).
(function () {
  "use strict";
  const body = document.querySelector("#variables tbody");
  if (!body) return;
  const form = document.getElementById("variable-form");
  const title = document.getElementById("variable-form-title");
  const cancel = form.querySelector("button.cancel");
  const field = n => form.elements.namedItem(n);
  const dis = hr.canOperate ? "" : ' disabled title="needs the operator role"';
  let editing = null;  // key being edited, or null when the form creates

  async function allVariables() {
    const rows = [];
    for (let offset = 0; ; ) {
      const page = await hr.api("GET", `/api/v1/variables?limit=100&offset=${offset}`);
      rows.push(...page.variables);
      offset += page.variables.length;
      if (!page.variables.length || offset >= page.total_entries) return rows;
    }
  }

  function row(v) {
    const key = hr.esc(v.key);
    return `<tr data-key="${key}"><td><b>${key}</b></td><td><code class="value">${hr.esc(v.value)}</code></td>
      <td>${hr.esc(v.description || "")}</td>
      <td class="actions"><button class="edit"${dis}>Edit</button> <button class="danger delete"${dis}>Delete</button></td></tr>`;
  }

  async function refresh() {
    const rows = await allVariables();
    body.innerHTML = rows.length ? rows.map(row).join("") : `<tr><td colspan="4" class="muted">No variables.</td></tr>`;
  }

  function reset() {
    editing = null;
    form.reset();
    field("key").readOnly = false;
    title.textContent = "New variable";
    cancel.hidden = true;
  }

  body.addEventListener("click", async ev => {
    const btn = ev.target.closest("button");
    if (!btn) return;
    const key = btn.closest("tr").dataset.key;
    if (btn.classList.contains("edit")) {
      const v = await hr.act(`Loading variable ${key}`, () => hr.api("GET", `/api/v1/variables/${hr.enc(key)}`));
      if (!v) return;
      editing = key;
      field("key").value = v.key;
      field("key").readOnly = true;
      field("value").value = v.value;
      field("description").value = v.description || "";
      title.textContent = `Edit variable ${key}`;
      cancel.hidden = false;
      field("value").focus();
    } else if (btn.classList.contains("delete")) {
      if (!confirm(`Delete variable ${key}? Tasks that read it will fail until it exists again.`)) return;
      const r = await hr.act(`Deleting variable ${key}`,
        async () => { await hr.api("DELETE", `/api/v1/variables/${hr.enc(key)}`); return true; }, `Variable ${key} deleted.`);
      if (r) { if (editing === key) reset(); await refresh(); }
    }
  });

  cancel.addEventListener("click", reset);

  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    const value = field("value").value, description = field("description").value || null;
    const r = editing
      ? await hr.act(`Changing variable ${editing}`,
          () => hr.api("PATCH", `/api/v1/variables/${hr.enc(editing)}`, { value, description }), v => `Variable ${v.key} saved.`)
      : await hr.act(`Creating variable ${field("key").value}`,
          () => hr.api("POST", "/api/v1/variables", { key: field("key").value.trim(), value, description }),
          v => `Variable ${v.key} created.`);
    if (r) { reset(); await refresh(); }
  });

  refresh().catch(e => hr.flash(e.message));
})();
