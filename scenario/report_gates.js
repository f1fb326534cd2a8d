// Gates on the page: the threshold lines a run's charts carry (which chart a
// gate belongs on, over which seconds, merged when two gates would draw the
// same line), the gate table with how each gate was judged, and the
// one-line account of a gate the verdict banner gives.
// Uses ReportUtil; report_charts.js draws what lines() plans.
"use strict";
var ReportGates = (function () {
  var U = ReportUtil;
  var COLOURS = {pass: "#1e7e34", fail: "#c62828", none: "#757575"};
  // The percentiles the latency chart draws: a p95 or max gate's line would
  // be read against a curve that is not its figure.
  var LATENCY = ["p50", "p90", "p99"];

  // The chart row a gate's threshold is read against, or null. The latency
  // chart plots the client's figures, so only client latency gates go there;
  // error rates and request counts have no chart on their scale (failures are
  // drawn per second), the gate table carries them.
  function rowOf(g) {
    if (LATENCY.indexOf(g.metric) >= 0) return g.source == null || g.source === "client" ? "latency" : null;
    if (g.metric === "rps") return "rps";
    if (g.metric === "share") return "share";
    return null;
  }

  function runEnd(run, phases) {
    var whole = phases.filter(function (p) { return p.kind === "run"; })[0];
    if (whole) return whole.end;
    var t = U.numbers(U.get(run, "series", "t"));
    var end = Math.max(U.num(U.obj(run).duration_s) || 0, t.length ? t[t.length - 1] : 0);
    phases.forEach(function (p) { end = Math.max(end, p.end); });
    return end;
  }

  // [from, to] seconds a gate on `phase` was judged over: the phase after its
  // settle time; `run` is the whole run even where the summary does not list it.
  function spanOf(phase, phases, end) {
    var p = phases.filter(function (x) { return x.name === phase; })[0];
    if (p) return [p.from, p.end];
    return phase === "run" && end > 0 ? [0, end] : null;
  }

  function passOf(gates) {
    if (gates.some(function (g) { return g.pass === false; })) return false;
    return gates.every(function (g) { return g.pass === true; }) ? true : null;
  }

  function gateText(g) {
    return String(g.gate != null ? g.gate : g.name);
  }

  // The lines one run's chart of `rowId` carries: [{threshold, x0, x1, phase,
  // gates, pass, colour, label}]. Gates that would draw the very same line (same
  // threshold over the same seconds) share one, so no line is drawn twice;
  // it is red when any of them failed. Gates with no resolved threshold (a
  // relative gate without a baseline figure) have nothing to draw.
  function lines(run, rowId) {
    var phases = U.phases(run);
    var end = runEnd(run, phases);
    var out = [], byKey = Object.create(null);
    U.arr(U.obj(run).gates).forEach(function (raw) {
      var g = U.obj(raw);
      var threshold = U.num(g.threshold);
      if (threshold == null || rowOf(g) !== rowId) return;
      var span = spanOf(String(g.phase == null ? "run" : g.phase), phases, end);
      if (!span || !(span[1] > span[0])) return;
      var key = threshold + " " + span[0] + " " + span[1];
      if (!byKey[key]) {
        byKey[key] = {threshold: threshold, x0: span[0], x1: span[1], phase: String(g.phase == null ? "run" : g.phase), gates: []};
        out.push(byKey[key]);
      }
      byKey[key].gates.push(g);
    });
    out.forEach(function (l) {
      l.pass = passOf(l.gates);
      l.colour = COLOURS[l.pass === true ? "pass" : l.pass === false ? "fail" : "none"];
      l.label = U.unique([l.gates.map(gateText)]).join(", ");
    });
    return out;
  }

  function seconds(v) {
    v = U.num(v);
    return v == null ? "—" : Math.round(v * 100) / 100 + " s";
  }

  function relative(g) {
    return g.baseline != null || /baseline/.test(String(g.threshold_text || ""));
  }

  // A cell with its main text and, under it, smaller lines that qualify it.
  function cell(className, main, subs) {
    var td = U.el("td", {className: className}, main);
    subs.forEach(function (s) { if (s) td.appendChild(U.el("span", {className: "sub"}, s)); });
    return td;
  }

  function judgedCell(g, extra) {
    var win = U.num(g.window_s), forS = U.num(g.for_s);
    var td = cell("judged" + extra, win != null ? "every " + seconds(win) + " window" : "whole phase",
                  [forS != null ? "fails when " + seconds(forS) + " of windows in a row breach" : null]);
    if (g.abort_on_fail === true) td.appendChild(U.el("span", {className: "badge"}, "abort on fail"));
    return td;
  }

  function limitCell(g) {
    var unit = g.unit, op = g.op == null ? "" : String(g.op) + " ";
    var threshold = U.num(g.threshold), text = g.threshold_text == null ? null : String(g.threshold_text);
    var main = threshold != null ? op + U.fmtUnit(threshold, unit, g.metric) : op + (text || "—");
    var subs = [];
    if (relative(g)) {
      var base = U.num(g.baseline);
      // "baseline + 10%" reads as the sum it is once the baseline figure stands in it.
      subs.push(base == null ? "no baseline figure" : (text || "baseline").replace("baseline", "baseline " + U.fmtUnit(base, unit, g.metric)));
    }
    return cell("num limit", main, subs);
  }

  function valueCell(g) {
    var windowed = U.num(g.window_s) != null;
    return cell("num", U.fmtUnit(g.value, g.unit, g.metric),
                [windowed && U.num(g.windows) != null ? "worst of " + U.fmtNumber(g.windows) + " windows" : null]);
  }

  function notesCell(g, run) {
    var notes = [];
    if (U.num(g.window_s) != null && U.num(g.breached_s) != null) {
      notes.push(g.breached_s > 0 ? "longest breach " + seconds(g.breached_s) + " in a row" : "no window breached");
    }
    if (g.value == null && g.reason) notes.push(String(g.reason));
    var by = U.obj(U.obj(run).aborted_by);
    if (by.gate != null && String(by.gate) === String(g.name)) notes.push("stopped the run at " + seconds(by.at_s));
    var td = U.el("td", {className: "notes"});
    notes.forEach(function (n) { td.appendChild(U.el("div", {}, n)); });
    return td;
  }

  function find(run, name) {
    return U.arr(U.obj(run).gates).map(U.obj).filter(function (g) { return String(g.name) === name; })[0];
  }

  // One row per gate and run: a gate's name says its phase, source, window
  // and `for`, so runs that share a name share what the first four columns say.
  function table(parent, columns) {
    var many = columns.length > 1;
    var s = U.section(parent, "Gates");
    var names = U.unique(columns.map(function (c) { return U.arr(c.run.gates).map(function (g) { return String(U.obj(g).name); }); }));
    if (!names.length) { s.appendChild(U.el("p", {className: "empty"}, "No gates.")); return; }
    var heads = ["gate", "phase", "source", "judged on"].concat(many ? ["run"] : [], ["limit", "value", "result", "notes"]);
    var body = U.table(s, heads);
    names.forEach(function (name) {
      var first = true;
      columns.forEach(function (c) {
        var g = find(c.run, name);
        if (!g) return;
        var extra = first ? "" : " repeat";
        var cells = [U.el("td", {className: "gate" + extra}, gateText(g)),
                     U.el("td", {className: "phase" + extra}, g.phase == null ? "—" : String(g.phase)),
                     U.el("td", {className: extra.trim()}, g.source == null ? "—" : String(g.source)),
                     judgedCell(g, extra)];
        if (many) cells.push(U.labelCell(c));
        cells.push(limitCell(g), valueCell(g), U.resultCell(g.pass), notesCell(g, c.run));
        U.row(body, cells).className = first ? "group-start" : "";
        first = false;
      });
    });
  }

  // `p99 < 50ms (recovery, client) was 83.2 ms`, for the verdict banner.
  function failedLine(g) {
    var name = String(g.name);
    if (g.value == null) return name + ": no figure" + (g.reason ? " (" + String(g.reason) + ")" : "");
    var line = name + " was " + U.fmtUnit(g.value, g.unit, g.metric);
    if (U.num(g.window_s) != null) line += " in its worst window";
    return line;
  }

  return {rowOf: rowOf, lines: lines, table: table, failedLine: failedLine, COLOURS: COLOURS};
})();
