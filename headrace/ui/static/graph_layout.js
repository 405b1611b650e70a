// Lays out a DAG with dagre (vendored). Loaded two ways:
// * as a Web Worker (new Worker("/static/graph_layout.js")): it loads dagre itself, takes
//   {nodes: [[id, width, height]], edges: [[from, to]]} and posts back the layout (below), so a
//   1,000-task DAG does not freeze the page while dagre works;
// * as a page script after dagre.min.js: window.hrGraphLayout(input), the same function, for a
//   browser where the worker cannot start.
// Optional input: labels: [[width, height] | null] per edge (a Label's text box, placed by dagre),
// parents: [[child, cluster]] (an expanded task group is a cluster: a compound node around its members).
// Layout: {width, height, nodes: [[x, y]] (centres, in input order), edges: [[x0, y0, x1, y1, …]] (input order),
//          labels: [[x, y] | null] (label centres, input order), clusters: [[id, x, y, width, height]] (top-left)}.
// Above SIMPLEX_MAX nodes dagre's network-simplex ranking takes tens of seconds (O(n²) or worse on
// 1,000 nodes), so bigger graphs are ranked with "tight-tree" (longest path, then tightened).
(function (scope) {
  "use strict";
  const SIMPLEX_MAX = 150;
  const round = v => Math.round(v * 10) / 10;

  // the compound layout; should dagre fail on a shape, the flat one with each cluster drawn around its members
  function layout(input) {
    if (!(input.parents || []).length) return place(input);
    try { return place(input); } catch (e) { /* fall through to the flat layout */ }
    const lay = place({ ...input, parents: [] });
    const parentOf = new Map(input.parents), index = new Map(input.nodes.map(([id], i) => [id, i]));
    const boxes = new Map();
    input.nodes.forEach(([id, w, h], i) => {
      const [x, y] = lay.nodes[i];
      for (let p = parentOf.get(id), pad = 8; p; p = parentOf.get(p), pad += 8) {
        const b = boxes.get(p) || [Infinity, Infinity, -Infinity, -Infinity];
        boxes.set(p, [Math.min(b[0], x - w / 2 - pad), Math.min(b[1], y - h / 2 - pad),
                      Math.max(b[2], x + w / 2 + pad), Math.max(b[3], y + h / 2 + pad)]);
      }
    });
    lay.clusters = [...boxes].filter(([id]) => !index.has(id))
      .map(([id, b]) => [id, round(b[0]), round(b[1]), round(b[2] - b[0]), round(b[3] - b[1])]);
    return lay;
  }

  function place(input) {
    const parents = input.parents || [];
    const g = new dagre.graphlib.Graph({ compound: parents.length > 0 });
    g.setGraph({ rankdir: "LR", nodesep: parents.length ? 34 : 18, ranksep: 56, marginx: 20, marginy: 30,
                 ranker: input.nodes.length > SIMPLEX_MAX ? "tight-tree" : "network-simplex" });
    g.setDefaultEdgeLabel(() => ({}));
    for (const [id, width, height] of input.nodes) g.setNode(id, { width, height });
    const clusters = [...new Set(parents.map(([, p]) => p))];
    for (const id of clusters) if (!g.hasNode(id)) g.setNode(id, {});
    for (const [child, parent] of parents) g.setParent(child, parent);
    const labels = input.labels || [];
    input.edges.forEach(([a, b], i) => {
      const box = labels[i];
      g.setEdge(a, b, box ? { width: box[0], height: box[1], labelpos: "c" } : {});
    });
    dagre.layout(g);
    const info = g.graph();
    return {
      width: Math.ceil(info.width), height: Math.ceil(info.height),
      nodes: input.nodes.map(([id]) => { const n = g.node(id); return [round(n.x), round(n.y)]; }),
      edges: input.edges.map(([a, b]) => g.edge(a, b).points.flatMap(p => [round(p.x), round(p.y)])),
      labels: input.edges.map(([a, b], i) => { const e = g.edge(a, b); return labels[i] ? [round(e.x), round(e.y)] : null; }),
      clusters: clusters.map(id => { const n = g.node(id);
        return [id, round(n.x - n.width / 2), round(n.y - n.height / 2), round(n.width), round(n.height)]; }),
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
