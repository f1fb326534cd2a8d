// Helpers shared by the report's scripts: safe reading of a summary that may
// lack any part (an interrupted or failed run), a run's phases by kind, number
// formatting by unit, and building elements and tables whose text is set with
// textContent only (no user string is ever parsed as HTML). Depends on nothing.
"use strict";
var ReportUtil = (function () {
  function obj(v) { return v !== null && typeof v === "object" && !Array.isArray(v) ? v : {}; }
  function arr(v) { return Array.isArray(v) ? v : []; }
  function num(v) { return typeof v === "number" && isFinite(v) ? v : null; }

  // get(o, "a", "b") is o.a.b, or undefined when any step is missing.
  function get(o) {
    for (var i = 1; i < arguments.length; i++) {
      if (o === null || typeof o !== "object" || !Object.prototype.hasOwnProperty.call(o, arguments[i])) return undefined;
      o = o[arguments[i]];
    }
    return o;
  }

  // A list of numbers-or-null, cut or padded with null to n when n is given.
  function numbers(v, n) {
    var a = arr(v).map(num);
    if (n == null) return a.filter(function (x) { return x != null; });
    if (a.length > n) a = a.slice(0, n);
    while (a.length < n) a.push(null);
    return a;
  }

  // el("td", {className: "x", "data-a": "1"}, "text"): attributes are fixed names
  // chosen by the report; the text goes in through textContent.
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "className") e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    });
    if (text != null) e.textContent = String(text);
    return e;
  }

  function fmtNumber(v) {
    v = num(v);
    if (v == null) return "—";
    var a = Math.abs(v);
    if (a >= 1000) return Math.round(v).toLocaleString("en-US");
    if (a >= 100 || Number.isInteger(v)) return String(Math.round(v * 10) / 10);
    if (a >= 1) return v.toFixed(a >= 10 ? 1 : 2);
    if (a === 0) return "0";
    return String(Number(v.toPrecision(3)));
  }

  function fmtAxis(v) {
    if (v == null) return "";
    if (Math.abs(v) >= 10000) return Math.round(v / 1000) + "k";
    return fmtNumber(v);
  }

  function fmtPercent(v) {
    v = num(v);
    if (v == null) return "—";
    var p = v * 100;
    return (p === 0 || p >= 10 || Number.isInteger(p) ? Math.round(p * 10) / 10 : p.toFixed(2)) + "%";
  }

  // A figure in its unit as summary.json names it. Summaries written before
  // gates had units leave ratios without one, hence the metric as a fallback.
  function fmtUnit(v, unit, metric) {
    v = num(v);
    if (v == null) return "—";
    if (!unit && (metric === "error_rate" || metric === "share")) unit = "ratio";
    if (unit === "ratio") return fmtPercent(v);
    if (unit === "ms" || unit === "req/s") return v.toFixed(1) + " " + unit;
    if (unit === "requests") return fmtNumber(v) + " requests";
    return fmtNumber(v) + (unit ? " " + String(unit) : "");
  }

  // A relative change (0.24) as "+24%"; a dash when there is none (no A figure to divide by).
  function fmtChange(v) {
    v = num(v);
    if (v == null) return "—";
    var p = Math.abs(v * 100);
    return (v > 0 ? "+" : v < 0 ? "−" : "±") + (p >= 10 ? Math.round(p) : Math.round(p * 10) / 10) + "%";
  }

  function fmtClock(s) {
    s = num(s);
    if (s == null) return "";
    var neg = s < 0;
    s = Math.abs(Math.round(s));
    var m = Math.floor(s / 60), r = s % 60;
    return (neg ? "-" : "") + m + ":" + (r < 10 ? "0" : "") + r;
  }

  function fmtSeconds(s) {
    s = num(s);
    return s == null ? "—" : Math.round(s * 100) / 100 + " s";
  }

  function rgb(hex) {
    var h = hex.replace("#", "");
    return [parseInt(h.slice(0, 2), 16), parseInt(h.slice(2, 4), 16), parseInt(h.slice(4, 6), 16)];
  }

  function clip(text, max) {
    max = Math.floor(max);
    if (text.length <= max) return text;
    return max <= 1 ? "" : text.slice(0, max - 1) + "…";
  }

  // A run's name with its colour swatch, as it heads its charts and table rows.
  function columnLabel(c) {
    var span = el("span", {className: "run-label"});
    span.appendChild(swatch(c.colour));
    span.appendChild(document.createTextNode(c.label));
    return span;
  }

  // Verdicts and results the page knows how to colour; anything else is "unknown".
  function verdictClass(v) {
    return ["pass", "fail", "interrupted", "error", "aborted"].indexOf(v) >= 0 ? v : "unknown";
  }

  // A run's phases as {name, kind, start, end, from}: kind is "run", "stage" or
  // "faults" (summaries from before phases had kinds listed stages only, so a
  // phase without one is a stage); `from` is where its figures begin, after
  // the settle time. Phases without both times are left out: nothing can place them.
  function phases(run) {
    var out = [];
    arr(obj(run).phases).forEach(function (p) {
      p = obj(p);
      var start = num(p.start_s), end = num(p.end_s);
      if (start == null || end == null) return;
      var from = num(p.judged_from_s);
      out.push({name: String(p.name == null ? "" : p.name), kind: p.kind == null ? "stage" : String(p.kind),
                start: start, end: end, from: from == null ? start : Math.min(Math.max(from, start), end)});
    });
    return out;
  }

  // Phase names of all columns in the order the tables list them: the whole
  // run, then the stages, then the phases made from the fault events; each once.
  function phaseOrder(columns) {
    var out = ["run"];
    ["stage", "faults"].forEach(function (kind) {
      columns.forEach(function (c) {
        phases(c.run).forEach(function (p) { if (p.kind === kind && out.indexOf(p.name) < 0) out.push(p.name); });
      });
    });
    return out;
  }

  // The fault-made phases' colours, in the strip above each chart and beside
  // their names in the tables; a name the runner does not make gets grey.
  var FAULT_PHASE_COLOURS = {baseline: "#90a4ae", fault: "#ef9a9a", recovery: "#a5d6a7"};
  function faultPhaseColour(name) {
    return Object.prototype.hasOwnProperty.call(FAULT_PHASE_COLOURS, name) ? FAULT_PHASE_COLOURS[name] : "#bdbdbd";
  }

  function swatch(colour, className) {
    var sw = el("span", {className: className || "swatch"});
    sw.style.backgroundColor = colour;
    return sw;
  }

  function section(parent, title) {
    var s = el("section", {className: "block"});
    s.appendChild(el("h2", {}, title));
    parent.appendChild(s);
    return s;
  }

  // A table under parent with the given heads (text, or a ready <th>); returns its <tbody>.
  function table(parent, heads) {
    var wrap = el("div", {className: "table-wrap"});
    var t = el("table");
    var tr = el("tr");
    heads.forEach(function (h) { tr.appendChild(typeof h === "string" ? el("th", {}, h) : h); });
    t.appendChild(el("thead")).appendChild(tr);
    var body = t.appendChild(el("tbody"));
    wrap.appendChild(t);
    parent.appendChild(wrap);
    return body;
  }

  // A row of cells: each a ready element or text for a plain <td>.
  function row(body, cells) {
    var tr = el("tr");
    cells.forEach(function (c) { tr.appendChild(c instanceof Node ? c : el("td", {}, c)); });
    body.appendChild(tr);
    return tr;
  }

  function labelCell(c, extra) {
    var td = el("td", {className: "run" + (extra || "")});
    td.appendChild(columnLabel(c));
    return td;
  }

  function resultCell(pass) {
    var word = pass === true ? "pass" : pass === false ? "FAIL" : "—";
    return el("td", {className: "result " + (pass === true ? "pass" : pass === false ? "fail" : "none")}, word);
  }

  function unique(lists) {
    var out = [];
    lists.forEach(function (l) { l.forEach(function (x) { if (out.indexOf(x) < 0) out.push(x); }); });
    return out;
  }

  return {obj: obj, arr: arr, num: num, get: get, numbers: numbers, el: el, fmtNumber: fmtNumber, fmtAxis: fmtAxis,
          fmtPercent: fmtPercent, fmtUnit: fmtUnit, fmtChange: fmtChange, fmtClock: fmtClock, fmtSeconds: fmtSeconds,
          rgb: rgb, clip: clip, columnLabel: columnLabel, verdictClass: verdictClass, phases: phases,
          phaseOrder: phaseOrder, faultPhaseColour: faultPhaseColour, swatch: swatch, section: section,
          table: table, row: row, labelCell: labelCell, resultCell: resultCell, unique: unique};
})();
