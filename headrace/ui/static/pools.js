// Pools page: lists /api/v1/pools (every page of it) with running / queued / open slots, refreshed
// every few seconds; operators create, change slots and delete through the same API (X-CSRF-Token
// via hr.api). A viewer's buttons are disabled; the API would refuse them anyway (403).
(function () {
  "use strict";
  const body = document.querySelector("#pools tbody");
  if (!body) return;
  const dis = hr.canOperate ? "" : ' disabled title="needs the operator role"';
  let editing = null;  // pool name whose slots input is open: do not redraw under the user's cursor

  async function allPools() {
    const pools = [];
    for (let offset = 0; ; ) {
      const page = await hr.api("GET", `/api/v1/pools?limit=100&offset=${offset}`);
      pools.push(...page.pools);
      offset += page.pools.length;
      if (!page.pools.length || offset >= page.total_entries) return pools;
    }
  }

  function usage(p) {
    if (p.slots <= 0) return "";
    const w = v => Math.max(0, Math.min(100, (100 * v) / p.slots)).toFixed(1) + "%";
    return `<div class="pool-bar" title="${p.running_slots} running, ${p.queued_slots} queued of ${p.slots}">` +
      `<i style="width:${w(p.running_slots)};background:${hr.stateColor("running")}"></i>` +
      `<i style="width:${w(p.queued_slots)};background:${hr.stateColor("queued")}"></i></div>`;
  }

  function row(p) {
    const name = hr.esc(p.name);
    const del = p.name === "default_pool" ? ' disabled title="default_pool cannot be deleted"' : dis;
    return `<tr data-pool="${name}">
      <td><b>${name}</b></td>
      <td class="num slots">${p.slots}</td>
      <td class="num">${p.running_slots}</td><td class="num">${p.queued_slots}</td>
      <td class="num">${p.slots === -1 ? "unlimited" : p.open_slots}</td><td>${usage(p)}</td>
      <td>${hr.esc(p.description || "")}</td>
      <td class="actions"><button class="edit"${dis}>Edit slots</button> <button class="danger delete"${del}>Delete</button></td>
    </tr>`;
  }

  async function refresh() {
    if (editing) return true;
    const pools = await allPools();
    body.innerHTML = pools.length ? pools.map(row).join("") : `<tr><td colspan="8" class="muted">No pools.</td></tr>`;
    return true;
  }
  const poller = hr.poll(refresh, 5000);

  function openEditor(tr) {
    const name = tr.dataset.pool;
    const cell = tr.querySelector("td.slots");
    const current = cell.textContent.trim();
    editing = name;
    cell.innerHTML = `<input type="number" min="-1" class="slots-input" value="${hr.esc(current)}" style="width:80px" aria-label="slots of ${hr.esc(name)}">`;
    tr.querySelector("td.actions").innerHTML = `<button class="primary save">Save</button> <button class="cancel">Cancel</button>`;
    cell.querySelector("input").focus();
  }

  body.addEventListener("click", async ev => {
    const btn = ev.target.closest("button");
    if (!btn) return;
    const tr = btn.closest("tr");
    const name = tr.dataset.pool;
    if (btn.classList.contains("edit")) { openEditor(tr); return; }
    if (btn.classList.contains("cancel")) { editing = null; poller.kick(); return; }
    if (btn.classList.contains("save")) {
      const slots = Number(tr.querySelector("input.slots-input").value);
      const r = await hr.act(`Changing pool ${name}`, () => hr.api("PATCH", `/api/v1/pools/${hr.enc(name)}`, { slots }),
                             p => `Pool ${p.name} has ${p.slots} slots.`);
      if (r) { editing = null; poller.kick(); }
      return;
    }
    if (btn.classList.contains("delete")) {
      if (!confirm(`Delete pool ${name}? Tasks that use it will wait until it exists again.`)) return;
      const r = await hr.act(`Deleting pool ${name}`, async () => { await hr.api("DELETE", `/api/v1/pools/${hr.enc(name)}`); return true; },
                             `Pool ${name} deleted.`);
      if (r) poller.kick();
    }
  });

  document.getElementById("pool-create").addEventListener("submit", async ev => {
    ev.preventDefault();
    const f = ev.target, field = n => f.elements.namedItem(n);  // (f.name is the form's own name)
    const payload = { name: field("name").value.trim(), slots: Number(field("slots").value),
                      description: field("description").value || null };
    const r = await hr.act(`Creating pool ${payload.name}`, () => hr.api("POST", "/api/v1/pools", payload),
                           p => `Pool ${p.name} created with ${p.slots} slots.`);
    if (r) { f.reset(); poller.kick(); }
  });
})();
