// Shared by the DAG pages (grid, graph): the pause toggle in the header and the state legend.
(function () {
  "use strict";
  const { api, act, enc, esc, STATE_COLORS } = window.hr;
  const box = document.querySelector(".pause-toggle");
  if (box) {
    box.addEventListener("change", async () => {
      const paused = !box.checked;
      const r = await act(paused ? "Pause" : "Unpause",
        () => api("PATCH", `/api/v1/dags/${enc(box.dataset.dagId)}`, { is_paused: paused }),
        `${box.dataset.dagId} ${paused ? "paused" : "unpaused"}`);
      if (r === null) box.checked = !box.checked;
    });
  }
  const legend = document.getElementById("legend");
  if (legend) {
    legend.innerHTML = Object.keys(STATE_COLORS).map(s =>
      `<span><i class="sq state-${esc(s)}"></i>${esc(s)}</span>`).join("");
  }
})();
