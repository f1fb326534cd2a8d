// The report's charts (uPlot): one row per figure, one chart per run side by
// side, all on the same x range and, within a row, the same y scale. Stages
// are shaded bands, the phases made from the fault events (baseline, fault,
// recovery) a strip above the plot, fault events vertical markers with a
// label, and gates dashed lines at their thresholds (listed under the chart
// too, as ul.gate-lines). After each draw a chart records what it drew on its
// element: data-points (values plotted), data-ink (plot-area pixels in the
// series' colours), its scales' tops (data-x-max, data-y-max), and
// data-stage-bands, data-fault-phases and data-gate-lines (how many of each
// it drew), which the tests read.
// Uses uPlot (inlined before this file), ReportUtil and ReportGates.
"use strict";
var ReportCharts = (function () {
  var U = ReportUtil;
  var HEIGHT = 210;
  var BACKEND_COLOURS = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#e6b800", "#76b7b2", "#ff9da7", "#9c755f"];
  var FAULT_OK = "#c62828";
  var FAULT_FAILED = "#6d4c41";

  var ROWS = [
    {id: "rps", title: "Requests per second", note: "solid: client (Locust), dashed: gateway", unit: "req/s",
     series: [{label: "client", path: ["client", "rps"]}, {label: "gateway", path: ["gateway", "rps"], dash: [6, 4]}]},
    {id: "latency", title: "Latency, client", note: "solid: p99, long dashes: p90, short dashes: p50", unit: "ms",
     series: [{label: "p99", path: ["client", "p99_ms"]}, {label: "p90", path: ["client", "p90_ms"], dash: [8, 4], width: 1.5},
              {label: "p50", path: ["client", "p50_ms"], dash: [3, 3], width: 1.5}]},
    {id: "errors", title: "Failures per second", note: "solid: client failures, dashed: gateway errors", unit: "/s", counts: true,
     series: [{label: "client failures", path: ["client", "failures"]}, {label: "gateway errors", path: ["gateway", "errors"], dash: [6, 4]}]},
    {id: "share", title: "Share of traffic per backend, gateway", note: "one colour per backend, the same in every run", unit: "%",
     share: true},
  ];

  function backendNames(columns) {
    var names = [];
    columns.forEach(function (c) {
      Object.keys(U.obj(U.get(c.run, "series", "gateway", "backends"))).forEach(function (n) {
        if (names.indexOf(n) < 0) names.push(n);
      });
    });
    return names;
  }

  // Each row's series for one run: [{label, colour, dash, width, values}], values as long as t.
  function rowSeries(row, column, backends) {
    var series = U.obj(column.run.series);
    var n = U.arr(series.t).length;
    if (row.share) {
      var per = U.obj(U.get(series, "gateway", "backends"));
      return backends.map(function (name, i) {
        return {label: name, colour: BACKEND_COLOURS[i % BACKEND_COLOURS.length], width: 2,
                values: U.numbers(U.get(per, name, "share"), n)};
      });
    }
    return row.series.map(function (s) {
      return {label: s.label, colour: column.colour, dash: s.dash, width: s.width || 2,
              values: U.numbers(U.get(series, s.path[0], s.path[1]), n)};
    });
  }

  function xMax(columns) {
    var m = 0;
    columns.forEach(function (c) {
      var t = U.numbers(U.get(c.run, "series", "t"));
      m = Math.max(m, U.num(c.run.duration_s) || 0, t.length ? U.num(t[t.length - 1]) || 0 : 0);
      U.arr(c.run.phases).forEach(function (p) { m = Math.max(m, U.num(U.obj(p).end_s) || 0); });
    });
    return m > 0 ? m : 1;
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * p >= v * 1.05) return steps[i] * p;
    return 10 * p;
  }

  // A threshold this many times above a row's highest value is not given
  // room on its scale: the data would be squashed into the bottom of the
  // chart. Its line is listed under the chart as above the scale instead.
  var GATE_REACH = 4;

  function draw(container, columns) {
    var backends = backendNames(columns);
    var xm = xMax(columns);
    var faultNames = U.unique(columns.map(function (c) {
      return U.phases(c.run).filter(function (p) { return p.kind === "faults"; }).map(function (p) { return p.name; });
    }));
    var strip = faultNames.length ? STRIP : 0;
    var pad = topPadding(columns, strip);
    var charts = [];
    container.appendChild(key(faultNames));
    ROWS.forEach(function (row) {
      var perColumn = columns.map(function (c) { return rowSeries(row, c, backends); });
      var gateLines = columns.map(function (c) { return ReportGates.lines(c.run, row.id); });
      var ym = 1;
      if (!row.share) {
        var top = 0;
        perColumn.forEach(function (list) {
          list.forEach(function (s) { s.values.forEach(function (v) { if (v != null && v > top) top = v; }); });
        });
        var reach = top > 0 ? top * GATE_REACH : Infinity;
        gateLines.forEach(function (list) {
          list.forEach(function (l) { if (l.threshold > top && l.threshold <= reach) top = l.threshold; });
        });
        ym = niceMax(top);
      }
      gateLines.forEach(function (list) {
        list.forEach(function (l) { l.shown = l.threshold >= 0 && l.threshold <= ym; });
      });
      var section = U.el("section", {className: "chart-row", "data-row": row.id});
      var title = U.el("h3", {}, row.title);
      title.appendChild(U.el("span", {className: "note"}, " — " + row.note));
      section.appendChild(title);
      var grid = U.el("div", {className: "columns columns-" + Math.min(columns.length, 3)});
      section.appendChild(grid);
      container.appendChild(section);
      columns.forEach(function (c, ci) {
        var box = U.el("div", {className: "chart", "data-row": row.id, "data-column": String(ci)});
        box.appendChild(U.columnLabel(c));
        grid.appendChild(box);
        var t = U.numbers(U.get(c.run, "series", "t"), U.arr(U.get(c.run, "series", "t")).length);
        var drawable = t.length > 0 && t.every(function (x) { return x != null; });
        var values = perColumn[ci].some(function (s) { return s.values.some(function (v) { return v != null; }); });
        if (!drawable || !values) {
          box.setAttribute("data-empty", "1");
          box.appendChild(U.el("div", {className: "no-samples"},
            !t.length ? "no samples: the load did not start or nothing was sampled"
                      : !drawable ? "no chart: the sample times are not all numbers" : "no values in this run"));
          return;
        }
        charts.push(makeChart(box, row, c, t, perColumn[ci], xm, ym, {pad: pad, strip: strip, gates: gateLines[ci]}));
        gateList(box, gateLines[ci]);
      });
    });
    var resize = function () { charts.forEach(function (ch) { ch.u.setSize({width: chartWidth(ch.box), height: ch.u.height}); }); };
    var pending = null;
    window.addEventListener("resize", function () { clearTimeout(pending); pending = setTimeout(resize, 100); });
    // Printing lays the page out narrower: charts take the printed width.
    window.addEventListener("beforeprint", resize);
    window.addEventListener("afterprint", resize);
    if (window.matchMedia) window.matchMedia("print").addEventListener("change", resize);
    return charts;
  }

  function chartWidth(box) {
    return Math.max(240, (box.clientWidth || 600) - 2);
  }

  // What the marks on the charts mean, once above them all.
  function key(faultNames) {
    var p = U.el("p", {className: "chart-key"});
    p.appendChild(document.createTextNode("Shaded bands: the load's stages. "));
    if (faultNames.length) {
      p.appendChild(document.createTextNode("Strip above each chart: "));
      faultNames.forEach(function (n) {
        p.appendChild(U.swatch(U.faultPhaseColour(n)));
        p.appendChild(document.createTextNode(n + " "));
      });
      p.appendChild(document.createTextNode("(outlined part: the settle time, not judged). "));
    }
    p.appendChild(document.createTextNode("Dashed lines: gate thresholds over the seconds they judge, green passed, red failed. " +
                                          "Red vertical lines: fault events."));
    return p;
  }

  // The gate lines of one chart as a list under it: the canvas label may be
  // cut short where the phase is narrow, and a threshold above the scale is not drawn at all.
  function gateList(box, lines) {
    if (!lines.length) return;
    var ul = U.el("ul", {className: "gate-lines"});
    lines.forEach(function (l) {
      var result = l.pass === true ? "pass" : l.pass === false ? "fail" : "none";
      var li = U.el("li", {className: "gate-line " + result, "data-pass": result, "data-drawn": l.shown ? "1" : "0",
                           "data-metric": U.unique([l.gates.map(function (g) { return String(g.metric); })]).join(" "),
                           "data-phase": l.phase, "data-threshold": String(l.threshold)});
      li.appendChild(U.swatch(l.colour, "dash"));
      var where = (l.phase === "run" ? "the whole run" : l.phase) + " (" + U.fmtClock(l.x0) + "–" + U.fmtClock(l.x1) + ")";
      li.appendChild(document.createTextNode(l.label + " over " + where + ": " + (l.pass === false ? "FAIL" : result) +
                                             (l.shown ? "" : ", above this chart's scale")));
      ul.appendChild(li);
    });
    box.appendChild(ul);
  }

  function makeChart(box, row, column, t, list, xm, ym, marks) {
    var pad = marks.pad;
    var fmt = row.share ? U.fmtPercent : function (v) { return U.fmtNumber(v) + " " + row.unit; };
    var series = [{label: "time", value: function (u, v) { return v == null ? "—" : U.fmtClock(v); }}];
    list.forEach(function (s) {
      // Dots only where a line alone would hide the values: a run of a few seconds.
      var few = s.values.filter(function (v) { return v != null; }).length < 12;
      series.push({label: s.label, stroke: s.colour, width: s.width, dash: s.dash, spanGaps: false,
                   points: {show: few, size: 5},
                   value: function (u, v) { return v == null ? "—" : fmt(v); }});
    });
    var holder = U.el("div", {className: "plot"});
    box.appendChild(holder);
    var opts = {
      width: chartWidth(box), height: HEIGHT + pad, padding: [pad, 14, null, null],
      scales: {x: {time: false, range: [0, xm]}, y: {range: [0, ym]}},
      axes: [
        {stroke: "#444", grid: {stroke: "#ececec"}, ticks: {stroke: "#ccc"},
         incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600], space: 60,
         values: function (u, splits) { return splits.map(U.fmtClock); }},
        {stroke: "#444", grid: {stroke: "#ececec"}, ticks: {stroke: "#ccc"}, size: 56,
         incrs: row.counts ? [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000] : undefined,
         values: function (u, splits) { return splits.map(row.share ? U.fmtPercent : U.fmtAxis); }},
      ],
      series: series,
      cursor: {sync: {key: "scenario-report"}, drag: {x: false, y: false}},
      legend: {show: true},
      hooks: {
        drawClear: [function (u) { drawPhases(u, box, column.run, marks.strip); }],
        draw: [function (u) { record(u, box, list); drawFaults(u, column.run, marks.strip); drawGates(u, box, marks.gates); }],
      },
    };
    var data = [t].concat(list.map(function (s) { return s.values; }));
    return {box: box, u: new uPlot(opts, data, holder)};
  }

  // What this chart drew: the values it plotted and the plot-area pixels in the series' colours.
  function record(u, box, list) {
    var points = 0;
    list.forEach(function (s) { s.values.forEach(function (v) { if (v != null) points++; }); });
    var rgbs = list.map(function (s) { return U.rgb(s.colour); });
    var b = u.bbox;
    var ink = 0;
    if (b.width > 0 && b.height > 0) {
      var px = u.ctx.getImageData(Math.round(b.left), Math.round(b.top), Math.round(b.width), Math.round(b.height)).data;
      for (var i = 0; i < px.length; i += 4) {
        if (px[i + 3] < 128) continue;
        for (var k = 0; k < rgbs.length; k++) {
          var c = rgbs[k];
          if (Math.abs(px[i] - c[0]) + Math.abs(px[i + 1] - c[1]) + Math.abs(px[i + 2] - c[2]) < 60) { ink++; break; }
        }
      }
    }
    box.setAttribute("data-points", String(points));
    box.setAttribute("data-ink", String(ink));
    box.setAttribute("data-x-max", String(u.scales.x.max));
    box.setAttribute("data-y-max", String(u.scales.y.max));
  }

  // Labels live in a band above the plot (uPlot's top padding), so they never
  // cover the data: from the plot up, the strip of fault-made phases (when any
  // run has them), stage names on one line, fault labels on up to FAULT_LINES
  // lines above that.
  var PHASE_LINE = 15, STRIP = 13, LINE = 13, FAULT_LINES = 3;

  function topPadding(columns, strip) {
    var most = 0;
    columns.forEach(function (c) { most = Math.max(most, U.arr(c.run.fault_events).length); });
    return PHASE_LINE + strip + LINE * Math.min(FAULT_LINES, most) + 2;
  }

  function drawPhases(u, box, run, strip) {
    var ctx = u.ctx, b = u.bbox, pr = window.devicePixelRatio || 1;
    var all = U.phases(run).map(function (p) {
      return {name: p.name, kind: p.kind, x0: u.valToPos(p.start, "x", true), xf: u.valToPos(p.from, "x", true),
              x1: u.valToPos(p.end, "x", true)};
    });
    // The run phase is the whole x axis: drawn it would only box the chart in.
    var stages = all.filter(function (p) { return p.kind === "stage"; });
    var faults = strip ? all.filter(function (p) { return p.kind === "faults"; }) : [];
    ctx.save();
    ctx.beginPath();
    ctx.rect(b.left, 0, b.width, b.top + b.height);
    ctx.clip();
    ctx.font = Math.round(10 * pr) + "px sans-serif";
    ctx.textAlign = "left"; // uPlot leaves the axes' alignment on the context
    ctx.textBaseline = "bottom";
    stages.forEach(function (p, i) {
      if (i % 2 === 1) {
        ctx.fillStyle = "#f3f4f5"; // opaque: printed PDFs draw translucent fills unevenly
        ctx.fillRect(p.x0, b.top, p.x1 - p.x0, b.height);
      }
      if (i > 0) {
        ctx.strokeStyle = "#9e9e9e";
        ctx.lineWidth = pr;
        ctx.setLineDash([2 * pr, 3 * pr]);
        ctx.beginPath();
        ctx.moveTo(p.x0, b.top - (PHASE_LINE + strip) * pr);
        ctx.lineTo(p.x0, b.top + b.height);
        ctx.stroke();
      }
      ctx.fillStyle = "#616161";
      ctx.fillText(U.clip(p.name, Math.max(0, (p.x1 - p.x0 - 6 * pr) / (6 * pr))), p.x0 + 4 * pr, b.top - (strip + 3) * pr);
    });
    var top = b.top - (strip - 1) * pr, h = (strip - 3) * pr;
    ctx.setLineDash([]);
    ctx.textBaseline = "middle";
    ctx.font = Math.round(9 * pr) + "px sans-serif";
    faults.forEach(function (p) {
      var colour = U.faultPhaseColour(p.name);
      var gap = Math.min(pr, (p.x1 - p.x0) / 2); // keeps two phases that meet apart
      // The settle time is outlined, the judged part filled: figures begin where the fill does.
      ctx.strokeStyle = colour;
      ctx.lineWidth = pr;
      if (p.xf > p.x0) ctx.strokeRect(p.x0 + pr / 2, top + pr / 2, Math.max(0, p.xf - p.x0 - pr), h - pr);
      ctx.fillStyle = colour;
      ctx.fillRect(p.xf, top, Math.max(0, p.x1 - p.xf - gap), h);
      ctx.fillStyle = "#263238";
      ctx.fillText(U.clip(p.name, Math.max(0, (p.x1 - p.x0) / (5.5 * pr))), p.x0 + 3 * pr, top + h / 2);
    });
    ctx.restore();
    box.setAttribute("data-stage-bands", String(stages.length));
    box.setAttribute("data-fault-phases", String(faults.length));
  }

  function drawFaults(u, run, strip) {
    var ctx = u.ctx, b = u.bbox, pr = window.devicePixelRatio || 1;
    var lines = Math.max(1, Math.min(FAULT_LINES, Math.floor((b.top / pr - PHASE_LINE - strip) / LINE)));
    var room = Math.max(8, Math.floor(b.width / (3 * 6 * pr)));
    ctx.save();
    ctx.font = Math.round(10 * pr) + "px sans-serif";
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    U.arr(run.fault_events).forEach(function (f, i) {
      f = U.obj(f);
      var at = U.num(f.applied_s);
      if (at == null) at = U.num(f.at_s);
      if (at == null) return;
      var x = u.valToPos(at, "x", true);
      if (x < b.left - 1 || x > b.left + b.width + 1) return;
      var failed = f.ok === false;
      var colour = failed ? FAULT_FAILED : FAULT_OK;
      var y = b.top - (PHASE_LINE + strip + LINE * (lines - i % lines)) * pr;
      ctx.strokeStyle = colour;
      ctx.lineWidth = 1.5 * pr;
      ctx.setLineDash(failed ? [4 * pr, 3 * pr] : []);
      ctx.beginPath();
      ctx.moveTo(x, y);
      ctx.lineTo(x, b.top + b.height);
      ctx.stroke();
      var label = U.clip(String(f.action) + " " + String(f.backend), Math.min(26, room)) + (failed ? " (failed)" : "");
      var w = ctx.measureText(label).width + 6 * pr;
      var lx = Math.max(b.left, Math.min(x, b.left + b.width - w));
      ctx.fillStyle = "rgba(255, 255, 255, 0.9)";
      ctx.fillRect(lx + (lx === x ? 1.5 * pr : 0), y, w, 12 * pr);
      ctx.fillStyle = colour;
      ctx.fillText(label, lx + 3 * pr, y + pr);
    });
    ctx.restore();
  }

  // Each gate line across the seconds its gate judged, labelled at its right
  // end (above the line, or below it when it runs along the top of the plot).
  function drawGates(u, box, lines) {
    var ctx = u.ctx, b = u.bbox, pr = window.devicePixelRatio || 1;
    var drawn = 0;
    ctx.save();
    ctx.beginPath();
    ctx.rect(b.left, b.top - pr, b.width, b.height + 2 * pr);
    ctx.clip();
    ctx.font = Math.round(10 * pr) + "px sans-serif";
    ctx.textAlign = "right";
    ctx.textBaseline = "bottom";
    lines.forEach(function (l) {
      if (!l.shown) return;
      var y = u.valToPos(l.threshold, "y", true);
      var x0 = Math.max(b.left, u.valToPos(l.x0, "x", true)), x1 = Math.min(b.left + b.width, u.valToPos(l.x1, "x", true));
      if (!(x1 > x0)) return;
      drawn++;
      ctx.strokeStyle = l.colour;
      ctx.lineWidth = 1.5 * pr;
      ctx.setLineDash([7 * pr, 4 * pr]);
      ctx.beginPath();
      ctx.moveTo(x0, y);
      ctx.lineTo(x1, y);
      ctx.stroke();
      var label = U.clip(l.label, (x1 - x0) / (6 * pr));
      if (!label) return;
      var w = ctx.measureText(label).width;
      var base = y - 3 * pr - 12 * pr < b.top ? y + 14 * pr : y - 3 * pr;
      ctx.fillStyle = "rgba(255, 255, 255, 0.85)";
      ctx.fillRect(x1 - w - 6 * pr, base - 12 * pr, w + 4 * pr, 12 * pr);
      ctx.fillStyle = l.colour;
      ctx.fillText(label, x1 - 4 * pr, base - pr);
    });
    ctx.restore();
    box.setAttribute("data-gate-lines", String(drawn));
  }

  return {draw: draw, ROWS: ROWS};
})();
