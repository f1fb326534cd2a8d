// Helpers shared by the report's scripts: safe reading of a summary that may
// lack any part (an interrupted or failed run), number formatting, and building
// elements whose text is set with textContent only (no user string is ever
// parsed as HTML). Depends on nothing.
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
    var sw = el("span", {className: "swatch"});
    sw.style.backgroundColor = c.colour;
    span.appendChild(sw);
    span.appendChild(document.createTextNode(c.label));
    return span;
  }

  // Verdicts and results the page knows how to colour; anything else is "unknown".
  function verdictClass(v) {
    return ["pass", "fail", "interrupted", "error"].indexOf(v) >= 0 ? v : "unknown";
  }

  return {obj: obj, arr: arr, num: num, get: get, numbers: numbers, el: el, fmtNumber: fmtNumber, fmtAxis: fmtAxis,
          fmtPercent: fmtPercent, fmtClock: fmtClock, fmtSeconds: fmtSeconds, rgb: rgb, clip: clip,
          columnLabel: columnLabel, verdictClass: verdictClass};
})();
