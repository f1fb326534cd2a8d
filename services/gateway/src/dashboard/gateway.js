// The gateway's /dashboard: live charts and figures of /api/stats, the
// backend table of /api/servers, the admin actions (sent with the token the
// user typed, kept in sessionStorage only) and /api/settings.
// Backend names and URLs are whatever was registered: they are only ever
// written with textContent (Dash.el), never as HTML.
// Uses Dash (dashboard.js) and, through it, uPlot.
"use strict";
(function () {
  var D = Dash;
  var TOKEN_KEY = "gatewaylab.dashboard.token";
  var HIGHLIGHT_MS = 10000;   // how long a row whose state changed stays marked
  var SETTINGS_EVERY_MS = 60000;
  var page = {settings: null, settingsAt: 0, fetchedUptime: 0, rows: {}, states: {}, changedAt: {}, wasDown: false};
  var charts, picker, poll;

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
  }
  function setToken(value) {
    try {
      if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage off: the page stays read-only */ }
  }
  function admin() { return D.obj(D.obj(page.settings).admin); }
  // Changes are offered where this listener takes them and either a token
  // was entered or the gateway needs none.
  function canChange() {
    var a = admin();
    if (!page.settings || a.changes_here === false) return false;
    return Boolean(token()) || a.token_required === false;
  }

  function message(text, kind) {
    var m = D.byId("admin-message");
    m.textContent = text;
    m.setAttribute("data-kind", kind);
  }

  // "." and ".." are valid names, but a browser resolves them as path
  // segments (even written %2E), so the call would reach another route.
  function serverPath(name) {
    if (name === "." || name === "..") return null;
    return "/api/servers/" + encodeURIComponent(name);
  }

  function act(what, method, path, body) {
    if (!path) { message(what + ": not possible from a browser (the name is a dot segment); use curl --path-as-is", "error"); return; }
    message(what + "…", "pending");
    D.call(method, path, body, token()).then(function (r) {
      if (r.ok) message(what + ": done (HTTP " + r.status + ")", "ok");
      else message(what + " refused: " + r.message, "error");
      poll.now();
    });
  }

  function renderAdmin() {
    var a = admin(), status = D.byId("admin-status"), can = canChange();
    if (!page.settings) status.textContent = "Read-only until the gateway's settings are loaded.";
    else if (a.changes_here === false)
      status.textContent = "Read-only here: this gateway takes changes only on its admin listener (admin.listen " +
        a.listen + "); open /dashboard there.";
    else if (a.token_required && !token()) status.textContent = "Read-only: enter the admin token to make changes.";
    else if (a.token_required) status.textContent = "Changes are sent with the token entered in this tab.";
    else status.textContent = "This gateway's admin API needs no token: changes are open to anyone who can reach it.";
    // The stylesheet hides .admin-only while this is "off", rows added later included.
    document.documentElement.setAttribute("data-admin", can ? "on" : "off");
  }

  function cell(tr, cls) { var td = D.el("td", cls); tr.appendChild(td); return td; }

  function newRow(name) {
    var tr = D.el("tr");
    tr.setAttribute("data-name", name);
    var r = {tr: tr, server: null};
    ["name", "url", "status", "since", "weight num", "active num", "share num", "errors num", "failures num",
     "ejections num"].forEach(function (c) { r[c.split(" ")[0]] = cell(tr, c); });
    var actions = cell(tr, "actions admin-only");
    r.drain = D.el("button", "drain", "Drain");
    r.drain.type = "button";
    r.drain.addEventListener("click", function () {
      var draining = r.server && r.server.state === "draining";
      act((draining ? "Undrain " : "Drain ") + name, "PATCH", serverPath(name), {state: draining ? "up" : "draining"});
    });
    r.weightInput = D.el("input", "weight");
    r.weightInput.type = "number";
    r.weightInput.min = "1";
    r.weightInput.setAttribute("aria-label", "new weight of " + name);
    var setWeight = D.el("button", "set-weight", "Set weight");
    setWeight.type = "button";
    setWeight.addEventListener("click", function () {
      var w = Number(r.weightInput.value);
      if (!r.server) return;
      act("Weight " + w + " for " + name, "PUT", serverPath(name), {url: r.server.url, weight: w});
      r.weightInput.value = "";
    });
    // Two clicks to remove: a first click arms the button for 5 s.
    var remove = D.el("button", "remove", "Remove"), armed = null;
    remove.type = "button";
    remove.addEventListener("click", function () {
      if (!armed) {
        remove.textContent = "Confirm remove";
        armed = setTimeout(function () { armed = null; remove.textContent = "Remove"; }, 5000);
        return;
      }
      clearTimeout(armed); armed = null; remove.textContent = "Remove";
      act("Remove " + name, "DELETE", serverPath(name));
    });
    [r.drain, r.weightInput, setWeight, remove].forEach(function (e) { actions.appendChild(e); });
    return r;
  }

  function renderServers(list, stats) {
    var tbody = D.byId("backends").querySelector("tbody"), now = Date.now(), seen = {};
    var per = D.obj(D.obj(stats).servers), total = 0;
    Object.keys(per).forEach(function (n) { total += D.num(D.obj(per[n]).requests) || 0; });
    D.byId("no-backends").hidden = list.length > 0;
    list.forEach(function (s) {
      s = D.obj(s);
      var name = String(s.name), r = page.rows[name] || (page.rows[name] = newRow(name)), st = D.obj(per[name]);
      seen[name] = true;
      r.server = s;
      var state = String(s.state);
      if (page.states[name] !== undefined && page.states[name] !== state) page.changedAt[name] = now;
      page.states[name] = state;
      var changed = now - (page.changedAt[name] || -Infinity) < HIGHLIGHT_MS;
      r.tr.classList.toggle("changed", changed);
      r.tr.setAttribute("data-state", state);
      r.name.textContent = name;
      r.url.textContent = String(s.url);
      D.clear(r.status);
      r.status.appendChild(D.el("span", "state state-" + state.replace(/[^a-z_]/g, ""), state));
      var change = D.obj(s.last_state_change), at = new Date(String(change.at));
      r.since.textContent = (isNaN(at) ? "" : D.clock(at) + ", ") + (change.reason == null ? "" : String(change.reason));
      r.since.title = change.at == null ? "" : String(change.at);
      r.weight.textContent = String(s.weight);
      r.active.textContent = String(s.active_requests);
      var req = D.num(st.requests);
      r.share.textContent = req == null || !total ? "–" : (req / total * 100).toFixed(1) + " %";
      r.errors.textContent = D.num(st.errors) == null ? "–" : String(st.errors);
      r.failures.textContent = String(s.failures_total);
      r.ejections.textContent = String(s.ejections);
      r.drain.textContent = state === "draining" ? "Undrain" : "Drain";
      r.weightInput.placeholder = String(s.weight);
      tbody.appendChild(r.tr); // in the API's order; moves an existing row
    });
    Object.keys(page.rows).forEach(function (name) {
      if (!seen[name]) { tbody.removeChild(page.rows[name].tr); delete page.rows[name]; delete page.states[name]; }
    });
  }

  function renderSettings() {
    var s = D.obj(page.settings), a = admin(), retry = D.obj(s.retry), limits = D.obj(s.limits);
    var health = D.obj(s.health_check), outlier = D.obj(s.outlier), up = D.obj(s.upstream);
    var text = function (v) { return v == null ? "–" : Array.isArray(v) ? (v.length ? v.join(", ") : "none") : String(v); };
    var limit = function (v) { return v === 0 ? "no limit" : text(v); };
    D.facts(D.byId("settings"), [
      ["strategy", text(D.obj(s.balancer).strategy)],
      ["retries", "up to " + text(retry.max_attempts) + " attempts, " + text(retry.per_try_timeout) + " each; budget " +
        text(retry.budget_ratio) + " of requests + " + text(retry.budget_min_per_second) + "/s"],
      ["retried statuses", text(retry.on_statuses)],
      ["in flight, max", limit(limits.max_in_flight) + " (per backend: " + limit(limits.max_in_flight_per_backend) + ")"],
      ["request body, max", limit(limits.max_body_bytes) + " bytes"],
      ["timeouts", "connect " + text(up.connect_timeout) + ", request " + text(up.request_timeout)],
      ["health checks", health.enabled ? text(health.path) + " every " + text(health.interval) : "off"],
      ["outlier ejection", outlier.enabled ? "after " + text(outlier.consecutive_failures) + " failures in a row, " +
        text(outlier.base_ejection_time) + " to " + text(outlier.max_ejection_time) : "off"],
      ["admin token", a.token_required ? "required" : "none set"],
      ["admin listener", a.listen ? text(a.listen) : "this port"],
      ["workers", s.workers === 0 ? "one per CPU" : text(s.workers)],
    ]);
  }

  function renderAbout() {
    if (!page.settings) return;
    var up = page.fetchedUptime + (Date.now() - page.settingsAt) / 1000;
    D.byId("about").textContent = "version " + String(page.settings.version) + ", up " + D.fmtDuration(up);
  }

  function loadSettings() {
    return D.call("GET", "/api/settings").then(function (r) {
      if (!r.ok) return r;
      page.settings = D.obj(r.json);
      page.settingsAt = Date.now();
      page.fetchedUptime = D.num(page.settings.uptime_seconds) || 0;
      renderSettings();
      renderAdmin();
      return r;
    });
  }

  // One poll: settings when due, then stats, then servers, one after the
  // other so a page never has more than one request in flight.
  function tick() {
    var w = picker.get();
    var due = !page.settings || page.wasDown || Date.now() - page.settingsAt > SETTINGS_EVERY_MS;
    return (due ? loadSettings() : Promise.resolve({ok: true})).then(function (r) {
      if (!r.ok) return r;
      return D.call("GET", "/api/stats/" + w + "?series=true");
    }).then(function (stats) {
      // stats.enabled=false answers 404: the table still works without them.
      if (!stats.ok && stats.status !== 404) return stats;
      return D.call("GET", "/api/servers").then(function (servers) {
        if (!servers.ok) return servers;
        if (w === picker.get()) {
          var figures = stats.ok ? stats.json : null;
          charts.update(figures, w);
          D.headline(D.byId("tiles"), figures, w);
        }
        renderServers(D.arr(D.obj(servers.json).servers), stats.ok ? stats.json : null);
        renderAbout();
        return {ok: true};
      });
    }).then(function (result) { page.wasDown = !result.ok; return result; });
  }

  function start() {
    charts = D.charts(D.byId("charts"));
    picker = D.windowPicker(D.byId("windows"), "1m", function () { charts.reset(); poll.now(); });
    poll = D.poller(tick, D.byId("banner"), "The gateway");
    D.byId("token-form").addEventListener("submit", function (e) {
      e.preventDefault();
      var input = D.byId("token");
      setToken(input.value.trim());
      input.value = "";
      message(token() ? "Token kept for this tab." : "No token entered.", token() ? "ok" : "error");
      renderAdmin();
    });
    D.byId("token-forget").addEventListener("click", function () {
      setToken("");
      message("Token forgotten.", "ok");
      renderAdmin();
    });
    D.byId("register-form").addEventListener("submit", function (e) {
      e.preventDefault();
      var body = {name: D.byId("reg-name").value.trim(), url: D.byId("reg-url").value.trim()};
      var weight = D.byId("reg-weight").value;
      if (weight !== "") body.weight = Number(weight);
      act("Register " + body.name, "POST", "/api/servers", body);
    });
    renderAdmin();
    poll.start();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
