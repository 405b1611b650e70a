// Task instance page tabs: "Tries & log" (task_instance.js), "XCom" (the REST API's xcomEntries of this
// task instance) and "Rendered templates" (/ui/data/…/rendered: the template fields as the latest try
// rendered them, recorded by its supervisor; secrets masked). The tab is kept in the URL's hash.
(function () {
  "use strict";
  const nav = document.getElementById("ti-tabs");
  const ti = document.getElementById("ti");
  if (!nav || !ti) return;
  const { dagId, runId, taskId } = ti.dataset;
  const mapIndex = Number(ti.dataset.mapIndex || -1);
  const indexQuery = `map_index=${mapIndex}`;  // -1: a task that is not mapped
  // a mapped task's page without an index lists its indices: XComs and rendered fields belong to each index
  const mappedParent = mapIndex < 0 && ti.dataset.mapped === "true";
  const PICK = "A mapped task: each map index has its own; pick one in the list on the Tries & log tab.";
  const tiPath = `/dags/${hr.enc(dagId)}/dagRuns/${hr.enc(runId)}/taskInstances/${hr.enc(taskId)}`;
  const panels = { tries: ti, xcom: document.getElementById("tab-xcom"), rendered: document.getElementById("tab-rendered") };
  const loaded = {};

  async function loadXcom() {
    const body = document.querySelector("#xcoms tbody");
    if (mappedParent) { body.innerHTML = `<tr><td colspan="3" class="muted mapped-pick">${PICK}</td></tr>`; return; }
    const page = await hr.api("GET", `/api/v1${tiPath}/xcomEntries?limit=100&${indexQuery}`);
    body.innerHTML = page.xcom_entries.length
      ? page.xcom_entries.map(x => `<tr data-key="${hr.esc(x.key)}"><td><b>${hr.esc(x.key)}</b></td>
          <td><pre class="xcom-value">${hr.esc(JSON.stringify(x.value, null, 2))}</pre></td><td>${hr.esc(hr.fmtDate(x.created_at))}</td></tr>`).join("")
      : `<tr><td colspan="3" class="muted">No XComs: this task instance pushed none (or its latest try has not yet).</td></tr>`;
    if (page.total_entries > page.xcom_entries.length) {
      body.insertAdjacentHTML("beforeend", `<tr><td colspan="3" class="muted">${page.total_entries - page.xcom_entries.length} more not shown.</td></tr>`);
    }
  }

  async function loadRendered() {
    if (mappedParent) {
      document.getElementById("rendered-note").textContent = PICK;
      document.getElementById("rendered-fields").innerHTML = "";
      return;
    }
    const data = await hr.api("GET", `/ui/data/dags/${hr.enc(dagId)}/runs/${hr.enc(runId)}/tasks/${hr.enc(taskId)}/rendered?${indexQuery}`);
    const note = document.getElementById("rendered-note");
    const box = document.getElementById("rendered-fields");
    if (!data.fields) {
      note.textContent = "Not rendered yet: a try records its template fields when it renders them, before the task runs.";
      box.innerHTML = "";
      return;
    }
    const names = Object.keys(data.fields);
    note.textContent = names.length
      ? `As try ${data.try_number} rendered them (${hr.fmtDate(data.updated_at)}).`
      : `Try ${data.try_number} rendered no template fields.`;
    box.innerHTML = names.map(n => `<h3><code>${hr.esc(n)}</code></h3><pre class="log rendered-field" data-field="${hr.esc(n)}">${hr.esc(data.fields[n])}</pre>`).join("");
  }

  const loaders = { xcom: loadXcom, rendered: loadRendered };

  function show(tab) {
    if (!panels[tab]) tab = "tries";
    for (const [name, el] of Object.entries(panels)) el.hidden = name !== tab;
    for (const a of nav.querySelectorAll("a")) a.classList.toggle("active", a.dataset.tab === tab);
    if (loaders[tab] && !loaded[tab]) {
      loaded[tab] = true;
      loaders[tab]().catch(e => { loaded[tab] = false; hr.flash(e.message); });
    }
  }

  nav.addEventListener("click", ev => {
    const a = ev.target.closest("a[data-tab]");
    if (!a) return;
    ev.preventDefault();
    history.replaceState(null, "", "#" + a.dataset.tab);
    show(a.dataset.tab);
  });
  show(location.hash.slice(1) || "tries");
})();
