// The backend's /dashboard: live charts and figures of its own /api/stats,
// and the faults in force from /api/faults, read-only (changing them needs
// the API and, when set, its token).
// Uses Dash (dashboard.js) and, through it, uPlot.
"use strict";
(function () {
  var D = Dash;
  var charts, picker, poll;

  function renderFaults(body) {
    var b = D.obj(body), f = D.obj(b.faults), text = function (v) { return v == null ? "–" : String(v); };
    var list = D.byId("faults");
    D.facts(list, [
      ["mode", text(f.mode)],
      ["latency", text(f.latency) + " (jitter " + text(f.jitter) + ")"],
      ["error rate", D.fmtPct(f.error_rate) + " answered " + text(f.error_status)],
      ["until", b.expires_in == null ? "changed" : "configured ones are back in " + text(b.expires_in)],
      ["largest delay", text(b.max_delay)],
    ]);
    list.setAttribute("data-mode", text(f.mode));
  }

  // One poll: stats, then faults, one after the other.
  function tick() {
    var w = picker.get();
    return D.call("GET", "/api/stats/" + w + "?series=true").then(function (stats) {
      if (!stats.ok) return stats;
      // X-Served-By names this instance on every answer.
      var name = stats.headers && stats.headers.get("x-served-by");
      if (name) { D.byId("instance").textContent = name; document.title = name + " dashboard"; }
      if (w === picker.get()) {
        charts.update(stats.json, w);
        D.headline(D.byId("tiles"), stats.json, w);
      }
      return D.call("GET", "/api/faults").then(function (faults) {
        if (faults.ok) renderFaults(faults.json);
        return faults;
      });
    });
  }

  function start() {
    charts = D.charts(D.byId("charts"));
    picker = D.windowPicker(D.byId("windows"), "1m", function () { charts.reset(); poll.now(); });
    poll = D.poller(tick, D.byId("banner"), "The backend");
    poll.start();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
