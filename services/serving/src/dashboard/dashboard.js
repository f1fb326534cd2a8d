// What every /dashboard page shares: an error catcher (loaded first, so it
// sees errors in the files after it), DOM helpers that only ever write text,
// same-origin JSON calls, a poller and the three live charts.
// Nothing from the API is ever written as HTML: el() sets textContent.
// Uses uPlot (uplot.js, loaded after this file, used only once a page starts).
"use strict";
var Dash = (function () {
  var root = document.documentElement;
  var POLL_MS = 2000;        // the normal rate
  var MAX_BACKOFF_MS = 30000; // slowest retry while the service is unreachable
  var HIDDEN_MS = 10000;     // rate while the tab is hidden
  var TIMEOUT_MS = 5000;     // a poll that takes longer counts as a failure
  var WINDOWS = {"1m": 60, "5m": 300, "1h": 3600};

  // Errors are shown on the page and counted in data-dash-errors, which the
  // tests read along with the console.
  function noteError(text) {
    root.setAttribute("data-dash-errors", String(Number(root.getAttribute("data-dash-errors") || 0) + 1));
    var show = function () {
      var box = document.getElementById("page-errors");
      if (!box) return;
      box.appendChild(el("div", "", "This page hit an error: " + text));
      box.hidden = false;
    };
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", show);
    else show();
  }
  window.addEventListener("error", function (e) { noteError(String(e.message || e.type)); });
  window.addEventListener("unhandledrejection", function (e) { noteError(String(e.reason)); });
  document.addEventListener("securitypolicyviolation", function (e) { noteError("blocked " + e.blockedURI); });

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = String(text);
    return e;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function byId(id) { return document.getElementById(id); }
  function num(v) { return typeof v === "number" && isFinite(v) ? v : null; }
  function obj(v) { return v && typeof v === "object" && !Array.isArray(v) ? v : {}; }
  function arr(v) { return Array.isArray(v) ? v : []; }

  function fixed(v, digits) {
    v = num(v);
    return v == null ? "–" : v.toFixed(v !== 0 && Math.abs(v) < 10 ? digits : Math.min(digits, 1));
  }
  function fmtMs(v) { return num(v) == null ? "–" : fixed(v, 2) + " ms"; }
  function fmtPct(v) { return num(v) == null ? "–" : fixed(v * 100, 2) + " %"; }
  function fmtRate(v) { return num(v) == null ? "–" : fixed(v, 1) + "/s"; }
  function fmtDuration(s) {
    s = Math.max(0, Math.floor(num(s) || 0));
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + m + "m";
    if (m) return m + "m " + (s % 60) + "s";
    return s + "s";
  }
  function clock(date) { return date.toTimeString().slice(0, 8); }

  // One same-origin call. Resolves {ok, status, json, headers, message}; the
  // message is the API's own error text ("HTTP 401 unauthorized: ...") so a
  // refused action can show it as the API put it.
  function call(method, path, body, token) {
    var headers = {"Accept": "application/json"};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token) headers["Authorization"] = "Bearer " + token;
    var ctl = typeof AbortController === "function" ? new AbortController() : null;
    var timer = ctl ? setTimeout(function () { ctl.abort(); }, TIMEOUT_MS) : null;
    return fetch(path, {method: method, headers: headers, cache: "no-store", credentials: "omit",
                        redirect: "error", signal: ctl ? ctl.signal : undefined,
                        body: body === undefined ? undefined : JSON.stringify(body)})
      .then(function (r) {
        return r.text().then(function (text) {
          var json = null;
          try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
          var err = obj(obj(json).error);
          var message = r.ok ? "" : "HTTP " + r.status + (err.code ? " " + err.code : "") +
            (err.message ? ": " + err.message : text && !json ? ": " + text.slice(0, 200) : "");
          return {ok: r.ok, status: r.status, json: json, headers: r.headers, message: message};
        });
      }, function (e) {
        var why = e && e.name === "AbortError" ? "no answer within " + TIMEOUT_MS / 1000 + " s" : "unreachable";
        return {ok: false, status: 0, json: null, headers: null, message: why};
      })
      .finally(function () { if (timer) clearTimeout(timer); });
  }

  // Runs tick() (a promise of {ok, message}) again and again, never two at
  // once: every POLL_MS while it succeeds, backing off (doubling, up to
  // MAX_BACKOFF_MS) while it fails, and slower while the tab is hidden.
  // The banner says which; `now()` asks for a run as soon as the current
  // one (if any) is done, e.g. after an admin action.
  function poller(tick, banner, service) {
    var running = false, again = false, timer = null, failures = 0, downSince = null;
    function schedule(ms) { clearTimeout(timer); timer = setTimeout(run, ms); }
    function run() {
      if (running) { again = true; return; }
      running = true;
      clearTimeout(timer);
      Promise.resolve().then(tick).catch(function (e) { return {ok: false, message: String(e)}; })
        .then(function (result) {
          running = false;
          var ok = result && result.ok;
          var delay;
          if (ok) {
            failures = 0; downSince = null;
            banner.setAttribute("data-state", "ok");
            banner.textContent = "Live: updated " + clock(new Date()) + ", every " + POLL_MS / 1000 + " s";
            delay = POLL_MS;
          } else {
            failures += 1;
            if (!downSince) downSince = new Date();
            delay = Math.min(MAX_BACKOFF_MS, POLL_MS * Math.pow(2, failures));
            banner.setAttribute("data-state", "down");
            banner.textContent = service + " has been unreachable since " + clock(downSince) + " (" +
              ((result && result.message) || "no answer") + "); retrying in " + Math.round(delay / 1000) + " s";
          }
          if (document.hidden) delay = Math.max(delay, HIDDEN_MS);
          if (again) { again = false; delay = 0; }
          schedule(delay);
        });
    }
    document.addEventListener("visibilitychange", function () { if (!document.hidden) run(); });
    return {start: run, now: run};
  }

  // The three live charts. With the API's per-bucket `series`, each poll
  // replaces their data with it; without one (an older API), they start
  // empty and gain one point per poll from the window's totals, kept to one
  // window's worth of points.
  var CHARTS = [
    {id: "rps", title: "Requests per second", series: [{label: "req/s", stroke: "#4e79a7"}]},
    {id: "errors", title: "Error rate (%)", series: [{label: "errors %", stroke: "#c62828"}]},
    {id: "latency", title: "Latency (ms)", series: [{label: "p50", stroke: "#59a14f"}, {label: "p99", stroke: "#f28e2b"}]},
  ];

  function charts(container) {
    var plots = [], points = [], fromTotals = false, note = el("p", "chart-note");
    container.appendChild(note);
    var grid = el("div", "charts");
    container.appendChild(grid);
    // Every box is in the grid before any is measured: measured alone, the
    // first would take the whole row.
    var boxes = CHARTS.map(function (c) {
      var box = el("div", "chart");
      box.setAttribute("data-chart", c.id);
      box.appendChild(el("h3", "", c.title));
      grid.appendChild(box);
      return box;
    });
    CHARTS.forEach(function (c, i) {
      var box = boxes[i];
      var opts = {width: width(box), height: 180, legend: {live: false},
                  scales: {x: {time: true}, y: {range: function (u, lo, hi) { return [0, hi > 0 ? hi * 1.1 : 1]; }}},
                  series: [{}].concat(c.series.map(function (s) {
                    return {label: s.label, stroke: s.stroke, width: 2, spanGaps: false, points: {show: false}};
                  }))};
      plots.push({box: box, plot: new uPlot(opts, empty(c.series.length), box)});
    });
    function width(box) { return Math.max(260, Math.floor(box.getBoundingClientRect().width || 360) - 4); }
    function empty(n) { var d = [[]]; for (var i = 0; i < n; i++) d.push([]); return d; }
    var resizing = null;
    window.addEventListener("resize", function () {
      clearTimeout(resizing);
      resizing = setTimeout(function () {
        plots.forEach(function (p) { p.plot.setSize({width: width(p.box), height: 180}); });
      }, 200);
    });
    function draw(columns) {
      // columns: [t, rps, errPct, p50, p99]
      var data = [[columns[0], columns[1]], [columns[0], columns[2]], [columns[0], columns[3], columns[4]]];
      plots.forEach(function (p, i) {
        p.plot.setData(data[i]);
        var drawn = data[i].slice(1).reduce(function (n, s) {
          return n + s.filter(function (v) { return v != null; }).length;
        }, 0);
        p.box.setAttribute("data-points", String(drawn));
      });
    }
    // Buckets of a `series`, the current partial one left out: its counts
    // cover only part of a bucket and would draw a dip at the right edge.
    function fromSeries(s) {
      var bucket = num(s.bucket_seconds) || 1;
      var start = arr(s.start), n = Math.max(0, start.length - 1);
      var cols = [[], [], [], [], []];
      for (var i = 0; i < n; i++) {
        var req = num(arr(s.requests)[i]), errs = num(arr(s.errors)[i]);
        cols[0].push(num(start[i]));
        cols[1].push(req == null ? null : req / bucket);
        cols[2].push(req ? (errs || 0) / req * 100 : null);
        cols[3].push(num(arr(s.p50_ms)[i]));
        cols[4].push(num(arr(s.p99_ms)[i]));
      }
      return cols;
    }
    return {
      // A new window: forget the points gathered for the old one.
      reset: function () { points = []; draw([[], [], [], [], []]); },
      update: function (stats, windowName) {
        var s = obj(stats);
        var series = s.series && typeof s.series === "object" ? s.series : null;
        fromTotals = !series;
        container.setAttribute("data-source", series ? "series" : "totals");
        note.textContent = series ? "" :
          "The API sends no per-second series: the charts plot the " + windowName +
          " window's figures once per poll, from when this page was opened.";
        if (series) { draw(fromSeries(series)); return; }
        var lat = obj(s.latency_ms);
        points.push([Date.now() / 1000, num(s.requests_per_second), num(s.error_rate) == null ? null : s.error_rate * 100,
                     num(lat.p50), num(lat.p99)]);
        var keep = Math.ceil((WINDOWS[windowName] || 60) * 1000 / POLL_MS) + 1;
        if (points.length > keep) points.splice(0, points.length - keep);
        draw([0, 1, 2, 3, 4].map(function (k) { return points.map(function (p) { return p[k]; }); }));
      },
      fromTotals: function () { return fromTotals; },
    };
  }

  // The 1m/5m/1h buttons; onChange(name) when another is picked.
  function windowPicker(container, initial, onChange) {
    var current = initial, buttons = {};
    Object.keys(WINDOWS).forEach(function (name) {
      var b = el("button", "window", name);
      b.type = "button";
      b.setAttribute("data-window", name);
      b.setAttribute("aria-pressed", String(name === current));
      b.addEventListener("click", function () {
        if (name === current) return;
        current = name;
        Object.keys(buttons).forEach(function (n) { buttons[n].setAttribute("aria-pressed", String(n === current)); });
        onChange(name);
      });
      buttons[name] = b;
      container.appendChild(b);
    });
    return {get: function () { return current; }};
  }

  // The headline figures of a stats answer, as label/value tiles.
  function headline(container, stats, windowName) {
    var s = obj(stats), lat = obj(s.latency_ms);
    clear(container);
    [["req/s (" + windowName + ")", fmtRate(s.requests_per_second)],
     ["error rate", fmtPct(s.error_rate)],
     ["p50", fmtMs(lat.p50)], ["p90", fmtMs(lat.p90)], ["p99", fmtMs(lat.p99)],
     ["requests", num(s.requests) == null ? "–" : String(s.requests)],
     ["errors", num(s.errors) == null ? "–" : String(s.errors)]].forEach(function (t) {
      var tile = el("div", "tile");
      tile.appendChild(el("span", "label", t[0]));
      tile.appendChild(el("span", "value", t[1]));
      container.appendChild(tile);
    });
  }

  // A definition list of [term, value] pairs.
  function facts(container, pairs) {
    clear(container);
    pairs.forEach(function (p) {
      container.appendChild(el("dt", "", p[0]));
      container.appendChild(el("dd", "", p[1]));
    });
  }

  return {el: el, clear: clear, byId: byId, num: num, obj: obj, arr: arr, call: call, poller: poller,
          charts: charts, windowPicker: windowPicker, headline: headline, facts: facts, noteError: noteError,
          fmtMs: fmtMs, fmtPct: fmtPct, fmtRate: fmtRate, fmtDuration: fmtDuration, clock: clock, WINDOWS: WINDOWS};
})();
