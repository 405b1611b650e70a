// Connections page: lists /api/v1/connections (password *** when set, sensitive extra fields ***); an
// operator creates, edits (PATCH of the fields changed) and deletes through the same API with X-CSRF-Token
// (hr.api). The password is never shown: left empty while editing, it is not sent and stays as it is.
// The masked extra is not sent back unless it was changed. A viewer's buttons are disabled; the API
// would refuse them anyway (403).
(function () {
  "use strict";
  const body = document.querySelector("#connections tbody");
  if (!body) return;
  const form = document.getElementById("connection-form");
  const title = document.getElementById("connection-form-title");
  const cancel = form.querySelector("button.cancel");
  const field = n => form.elements.namedItem(n);
  const dis = hr.canOperate ? "" : ' disabled title="needs the operator role"';
  const TEXT = ["conn_type", "host", "login", "schema", "description"];
  let editing = null;       // the connection being edited (as the API gave it), or null when creating
  let extraShown = "";      // the extra put in the form when editing (masked)

  async function allConnections() {
    const rows = [];
    for (let offset = 0; ; ) {
      const page = await hr.api("GET", `/api/v1/connections?limit=100&offset=${offset}`);
      rows.push(...page.connections);
      offset += page.connections.length;
      if (!page.connections.length || offset >= page.total_entries) return rows;
    }
  }

  const extraText = e => (e && Object.keys(e).length ? JSON.stringify(e, null, 2) : "");

  function row(c) {
    const id = hr.esc(c.conn_id);
    return `<tr data-conn-id="${id}"><td><b>${id}</b></td><td>${hr.esc(c.conn_type)}</td><td>${hr.esc(c.host || "")}</td>
      <td class="num">${c.port == null ? "" : c.port}</td><td>${hr.esc(c.login || "")}</td><td>${hr.esc(c.schema || "")}</td>
      <td class="password">${hr.esc(c.password || "")}</td><td><code class="extra">${hr.esc(extraText(c.extra) ? JSON.stringify(c.extra) : "")}</code></td>
      <td>${hr.esc(c.description || "")}</td>
      <td class="actions"><button class="edit"${dis}>Edit</button> <button class="danger delete"${dis}>Delete</button></td></tr>`;
  }

  let shown = [];
  async function refresh() {
    shown = await allConnections();
    body.innerHTML = shown.length ? shown.map(row).join("") : `<tr><td colspan="10" class="muted">No connections.</td></tr>`;
  }

  function reset() {
    editing = null;
    extraShown = "";
    form.reset();
    field("conn_id").readOnly = false;
    title.textContent = "New connection";
    cancel.hidden = true;
  }

  function payload() {
    const p = {};
    for (const n of TEXT) p[n] = field(n).value.trim() || null;
    const port = field("port").value;
    p.port = port === "" ? null : Number(port);
    const extra = field("extra").value.trim();
    if (!editing || extra !== extraShown.trim()) {
      if (extra === "") p.extra = null;
      else {
        try { p.extra = JSON.parse(extra); } catch (e) { throw new Error(`extra is not valid JSON: ${e.message}`); }
        if (typeof p.extra !== "object" || Array.isArray(p.extra) || p.extra === null) throw new Error("extra must be a JSON object");
      }
    }
    const password = field("password").value;
    if (password !== "") p.password = password;
    return p;
  }

  body.addEventListener("click", async ev => {
    const btn = ev.target.closest("button");
    if (!btn) return;
    const id = btn.closest("tr").dataset.connId;
    if (btn.classList.contains("edit")) {
      const c = shown.find(x => x.conn_id === id);
      if (!c) return;
      editing = c;
      field("conn_id").value = c.conn_id;
      field("conn_id").readOnly = true;
      for (const n of TEXT) field(n).value = c[n] || "";
      field("port").value = c.port == null ? "" : c.port;
      field("password").value = "";
      extraShown = extraText(c.extra);
      field("extra").value = extraShown;
      title.textContent = `Edit connection ${id}`;
      cancel.hidden = false;
      field("conn_type").focus();
    } else if (btn.classList.contains("delete")) {
      if (!confirm(`Delete connection ${id}? Tasks that use it will fail until it exists again.`)) return;
      const r = await hr.act(`Deleting connection ${id}`,
        async () => { await hr.api("DELETE", `/api/v1/connections/${hr.enc(id)}`); return true; }, `Connection ${id} deleted.`);
      if (r) { if (editing && editing.conn_id === id) reset(); await refresh(); }
    }
  });

  cancel.addEventListener("click", reset);

  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    const id = editing ? editing.conn_id : field("conn_id").value.trim();
    const r = await hr.act(editing ? `Changing connection ${id}` : `Creating connection ${id}`, () => {
      const p = payload();
      return editing ? hr.api("PATCH", `/api/v1/connections/${hr.enc(id)}`, p)
                     : hr.api("POST", "/api/v1/connections", { conn_id: id, ...p });
    }, c => `Connection ${c.conn_id} saved.`);
    if (r) { reset(); await refresh(); }
  });

  refresh().catch(e => hr.flash(e.message));
})();
