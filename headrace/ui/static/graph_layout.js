// Lays out a DAG with dagre (vendored). Loaded two ways:
// * as a Web Worker (new Worker("/static/graph_layout.js")): it loads dagre itself, takes
//   {nodes: [[id, width, height]], edges: [[from, to]]} and posts back the layout (below), so a
//   1,000-task DAG does not freeze the page while dagre works;
// * as a page script after dagre.min.js: window.hrGraphLayout(input), the same function, for a
//   browser where the worker cannot start.
// Layout: {width, height, nodes: [[x, y]] (centres, in input order), edges: [[x0, y0, x1, y1, …]] (input order)}.
// Above SIMPLEX_MAX nodes dagre's network-simplex ranking takes tens of seconds (O(n²) or worse on
// 1,000 nodes), so bigger graphs are ranked with "tight-tree" (longest path, then tightened).
(function (scope) {
  "use strict";
  const SIMPLEX_MAX = 150;
  const round = v => Math.round(v * 10) / 10;

  function layout(input) {
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: "LR", nodesep: 18, ranksep: 56, marginx: 20, marginy: 20,
                 ranker: input.nodes.length > SIMPLEX_MAX ? "tight-tree" : "network-simplex" });
    g.setDefaultEdgeLabel(() => ({}));
    for (const [id, width, height] of input.nodes) g.setNode(id, { width, height });
    for (const [a, b] of input.edges) g.setEdge(a, b);
    dagre.layout(g);
    const info = g.graph();
    return {
      width: Math.ceil(info.width), height: Math.ceil(info.height),
      nodes: input.nodes.map(([id]) => { const n = g.node(id); return [round(n.x), round(n.y)]; }),
      edges: input.edges.map(([a, b]) => g.edge(a, b).points.flatMap(p => [round(p.x), round(p.y)])),
    };
  }

  if (typeof WorkerGlobalScope !== "undefined" && scope instanceof WorkerGlobalScope) {
    scope.importScripts("/static/vendor/dagre.min.js");
    scope.onmessage = ev => {
      try { scope.postMessage({ layout: layout(ev.data) }); }
      catch (e) { scope.postMessage({ error: String(e && e.message || e) }); }
    };
  } else {
    scope.hrGraphLayout = layout;
  }
})(self);
