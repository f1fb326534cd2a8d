// The report page: reads the JSON in #report-data ({mode, sources: [{label, dir,
// summary}], comparison}), lays every run of every source side by side as one
// "column" each with its own colour, and writes the header, verdict banners,
// what changed between two runs (compare mode), the gate table (ReportGates),
// charts (ReportCharts) and the other tables. Text is set with textContent only.
// Uses ReportUtil, ReportGates and ReportCharts; sets data-report-ready="1" on
// <html> once everything is drawn.
"use strict";
(function () {
  var U = ReportUtil;
  var RUN_COLOURS = ["#1f6fb4", "#e8710a", "#12939a", "#7b4bb3", "#d81b7d", "#5a8f00"];
  var CLIENT_KEYS = [["requests", "requests", U.fmtNumber], ["failures", "failures", U.fmtNumber],
                     ["error_rate", "error rate", U.fmtPercent], ["rps", "req/s", U.fmtNumber],
                     ["p50_ms", "p50 ms", U.fmtNumber], ["p90_ms", "p90 ms", U.fmtNumber],
                     ["p95_ms", "p95 ms", U.fmtNumber], ["p99_ms", "p99 ms", U.fmtNumber],
                     ["max_ms", "max ms", U.fmtNumber]];
  var GATEWAY_KEYS = [["requests", "requests", U.fmtNumber], ["errors", "errors", U.fmtNumber],
                      ["error_rate", "error rate", U.fmtPercent], ["rps", "req/s", U.fmtNumber]];

  var data = U.obj(JSON.parse(document.getElementById("report-data").textContent));
  var sources = U.arr(data.sources).map(U.obj);
  var compare = data.mode === "compare";

  var columns = [];
  sources.forEach(function (src) {
    var runs = U.arr(U.obj(src.summary).runs).map(U.obj);
    runs.forEach(function (run) {
      var variant = String(run.variant == null ? "default" : run.variant);
      var label = compare ? String(src.label) + (runs.length > 1 || variant !== "default" ? " · " + variant : "") : variant;
      columns.push({source: src, run: run, label: label, colour: RUN_COLOURS[columns.length % RUN_COLOURS.length]});
    });
  });
  var many = columns.length > 1;

  var section = U.section, table = U.table, row = U.row, labelCell = U.labelCell, resultCell = U.resultCell,
      unique = U.unique;

  function header() {
    var head = document.getElementById("head");
    var first = U.obj(U.obj(sources[0]).summary);
    var name = String(U.obj(first.scenario).name || "scenario");
    var title = compare ? "Scenario comparison" : "Scenario " + name;
    document.title = title + (compare ? "" : ": " + String(first.verdict));
    head.appendChild(U.el("h1", {}, title));
    var cards = U.el("div", {className: "columns columns-" + Math.min(sources.length, 3)});
    head.appendChild(cards);
    sources.forEach(function (src) {
      var s = U.obj(src.summary), sc = U.obj(s.scenario);
      var card = U.el("div", {className: "card"});
      if (compare) card.appendChild(U.el("h2", {}, String(src.label) + ": " + String(sc.name || "")));
      if (sc.description) card.appendChild(U.el("p", {className: "description"}, sc.description));
      var dl = U.el("dl");
      [["file", sc.file], ["target", s.target], ["started", s.started_at], ["finished", s.finished_at],
       ["run directory", src.dir], ["runs", U.arr(s.runs).length]].forEach(function (kv) {
        if (kv[1] == null || kv[1] === "") return;
        dl.appendChild(U.el("dt", {}, kv[0]));
        dl.appendChild(U.el("dd", {}, kv[1]));
      });
      card.appendChild(dl);
      cards.appendChild(card);
    });
  }

  function verdicts() {
    var box = document.getElementById("verdicts");
    sources.forEach(function (src) {
      var s = U.obj(src.summary);
      var v = String(s.verdict == null ? "unknown" : s.verdict);
      var banner = U.el("div", {className: "verdict verdict-" + U.verdictClass(v)});
      banner.appendChild(U.el("strong", {}, (compare ? String(src.label) + ": " : "") + v.toUpperCase()));
      var runs = U.arr(s.runs).map(U.obj);
      if (!runs.length) banner.appendChild(U.el("div", {}, "no run was recorded"));
      runs.forEach(function (run) { banner.appendChild(runLine(run)); });
      box.appendChild(banner);
    });
  }

  function runLine(run) {
    var gs = U.arr(run.gates).map(U.obj);
    var failed = gs.filter(function (g) { return g.pass === false; });
    var line = U.el("div", {}, String(run.variant == null ? "default" : run.variant) + ": " + String(run.verdict));
    var by = U.obj(run.aborted_by);
    if (run.verdict === "aborted" || by.gate != null) {
      // Which gate stopped the run and when leads: the figures after it are of a cut-short run.
      line.className = "aborted-by";
      line.appendChild(document.createTextNode(by.gate != null
        ? ": stopped at " + U.fmtSeconds(by.at_s) + " by gate " + String(by.gate) + " (abort_on_fail)"
        : run.error ? ": " + String(run.error) : ""));
      if (failed.length) line.appendChild(U.el("div", {className: "sub"}, "failed: " + failed.map(ReportGates.failedLine).join("; ")));
    } else if (run.error) {
      line.appendChild(document.createTextNode(": " + String(run.error)));
    } else if (failed.length) {
      line.appendChild(document.createTextNode(": " + failed.map(ReportGates.failedLine).join("; ")));
    } else {
      var passed = gs.filter(function (g) { return g.pass === true; }).length;
      var open = gs.length - passed;
      line.appendChild(document.createTextNode(", " + passed + " gates passed" + (open ? ", " + open + " not judged (no figure)" : "")));
    }
    return line;
  }

  // Compare mode: B's figures and gates against A's, as the compare command
  // judged them (payload.comparison); a change within the tolerance is noise.
  function changes(parent) {
    var cmp = data.comparison;
    if (cmp == null || typeof cmp !== "object") return;
    cmp = U.obj(cmp);
    var tol = U.num(cmp.tolerance);
    var s = section(parent, "What changed" + (tol == null ? "" : " (tolerance ±" + Math.round(tol * 1000) / 10 + "%)"));
    s.setAttribute("data-block", "comparison");
    var rows = U.arr(cmp.rows).map(U.obj);
    if (!rows.length) { s.appendChild(U.el("p", {className: "empty"}, "The two runs have no variant in common: nothing to compare figure by figure.")); return; }
    var counts = {};
    rows.forEach(function (r) { var v = String(r.verdict); counts[v] = (counts[v] || 0) + 1; });
    s.appendChild(U.el("p", {}, "B against A: " + ["worse", "better", "changed", "same", "missing"].filter(function (v) { return counts[v]; })
      .map(function (v) { return counts[v] + " " + v; }).join(", ") + "."));
    // Figures within the tolerance are most rows and say nothing changed: they
    // wait folded under the table of those that did.
    var moved = rows.filter(function (r) { return r.verdict !== "same"; });
    var same = rows.filter(function (r) { return r.verdict === "same"; });
    if (moved.length) changeRows(table(s, CHANGE_HEADS), moved);
    else s.appendChild(U.el("p", {className: "empty"}, "Nothing changed beyond the tolerance."));
    if (same.length) {
      var d = U.el("details");
      d.appendChild(U.el("summary", {}, same.length + " figures within the tolerance"));
      s.appendChild(d);
      changeRows(table(d, CHANGE_HEADS), same);
    }
  }

  var CHANGE_HEADS = ["", "variant", "what", "A", "B", "change"];

  function changeRows(body, rows) {
    rows.forEach(function (r) {
      var v = String(r.verdict);
      var known = ["worse", "better", "same", "changed", "missing"].indexOf(v) >= 0 ? v : "unknown";
      row(body, [U.el("td", {className: "cmp-verdict"}, v),
                 U.el("td", {}, r.variant == null ? "—" : String(r.variant)),
                 U.el("td", {}, r.what == null ? "—" : String(r.what)),
                 U.el("td", {className: "num"}, U.fmtUnit(r.a, r.unit)),
                 U.el("td", {className: "num"}, U.fmtUnit(r.b, r.unit)),
                 U.el("td", {className: "num"}, U.fmtChange(r.change))]).className = "cmp cmp-" + known;
    });
  }

  // The phase's name as the figure tables show it; the fault-made ones with
  // their colour in the charts' strip.
  function phaseCell(phase, kind, extra) {
    var td = U.el("td", {className: "phase" + extra});
    if (kind === "faults") td.appendChild(U.swatch(U.faultPhaseColour(phase)));
    td.appendChild(document.createTextNode(phase === "run" ? "whole run" : phase));
    return td;
  }

  function kindOf(phase) {
    for (var i = 0; i < columns.length; i++) {
      var p = U.phases(columns[i].run).filter(function (x) { return x.name === phase; })[0];
      if (p) return p.kind;
    }
    return phase === "run" ? "run" : "stage";
  }

  // The seconds a phase's figures cover in a run: after the settle time to its end.
  function spanText(run, phase) {
    var p = U.phases(run).filter(function (x) { return x.name === phase; })[0];
    if (!p && phase === "run") return "whole run";
    return p ? U.fmtClock(p.from) + "–" + U.fmtClock(p.end) : "—";
  }

  function figures(parent) {
    var phases = U.phaseOrder(columns);
    [["client", "Figures per phase, client (Locust)", CLIENT_KEYS], ["gateway", "Figures per phase, gateway", GATEWAY_KEYS]].forEach(function (part) {
      var s = section(parent, part[1]);
      var any = columns.some(function (c) { return Object.keys(U.obj(U.get(c.run, "figures", "run", part[0]))).length > 0; });
      if (!any) { s.appendChild(U.el("p", {className: "empty"}, "No figures were recorded.")); return; }
      var heads = ["phase"].concat(many ? ["run"] : [], ["seconds"], part[2].map(function (k) { return k[1]; }));
      var body = table(s, heads);
      phases.forEach(function (phase) {
        var kind = kindOf(phase);
        columns.forEach(function (c, ci) {
          var f = U.obj(U.get(c.run, "figures", phase, part[0]));
          var cells = [phaseCell(phase, kind, ci > 0 ? " repeat" : "")];
          if (many) cells.push(labelCell(c));
          cells.push(U.el("td", {className: "num span"}, spanText(c.run, phase)));
          part[2].forEach(function (k) { cells.push(U.el("td", {className: "num"}, k[2](f[k[0]]))); });
          row(body, cells).className = ci === 0 ? "group-start" : "";
        });
      });
    });
  }

  function backends(parent) {
    var s = section(parent, "Backends");
    s.appendChild(U.el("p", {className: "note"}, "attempts, errors and shares: the gateway's view (retries are " +
      "attempts on the backend that got them); served and 5xx: what the backend counted itself, sampled from its own " +
      "/metrics (health checks left out)."));
    var phases = U.phaseOrder(columns).slice(1); // the whole run has its own column
    var names = unique(columns.map(function (c) {
      return Object.keys(U.obj(U.get(c.run, "figures", "run", "gateway", "backends")))
        .concat(Object.keys(U.obj(U.get(c.run, "series", "gateway", "backends"))));
    }));
    if (!names.length) { s.appendChild(U.el("p", {className: "empty"}, "No backend figures.")); return; }
    var heads = ["backend"].concat(many ? ["run"] : [], ["attempts", "errors", "served", "5xx", "share, whole run"],
                                   phases.map(function (p) { return "share, " + p; }));
    var body = table(s, heads);
    names.forEach(function (name) {
      columns.forEach(function (c, ci) {
        var b = U.obj(U.get(c.run, "figures", "run", "gateway", "backends", name));
        var cells = [U.el("td", {className: "backend" + (ci > 0 ? " repeat" : "")}, name)];
        if (many) cells.push(labelCell(c));
        cells.push(U.el("td", {className: "num"}, U.fmtNumber(b.requests)));
        cells.push(U.el("td", {className: "num"}, U.fmtNumber(b.errors)));
        var own = U.obj(U.get(c.run, "figures", "run", "backends", name));
        cells.push(U.el("td", {className: "num"}, U.fmtNumber(own.requests)));
        cells.push(U.el("td", {className: "num"}, U.fmtNumber(own.errors)));
        cells.push(U.el("td", {className: "num"}, U.fmtPercent(b.share)));
        phases.forEach(function (p) {
          cells.push(U.el("td", {className: "num"}, U.fmtPercent(U.get(c.run, "figures", p, "gateway", "backends", name, "share"))));
        });
        row(body, cells).className = ci === 0 ? "group-start" : "";
      });
    });
  }

  function faultText(faults) {
    if (faults == null) return "";
    if (typeof faults !== "object") return String(faults);
    return Object.keys(faults).map(function (k) { return k + " " + (typeof faults[k] === "object" ? JSON.stringify(faults[k]) : String(faults[k])); }).join(", ");
  }

  function faultTimeline(parent) {
    var s = section(parent, "Fault timeline");
    var any = columns.some(function (c) { return U.arr(c.run.fault_events).length > 0; });
    if (!any) { s.appendChild(U.el("p", {className: "empty"}, "No fault events.")); return; }
    var heads = (many ? ["run"] : []).concat(["planned", "applied", "late by", "backend", "action", "faults", "result"]);
    var body = table(s, heads);
    columns.forEach(function (c) {
      U.arr(c.run.fault_events).map(U.obj).forEach(function (f) {
        var at = U.num(f.at_s), applied = U.num(f.applied_s);
        var cells = many ? [labelCell(c)] : [];
        cells.push(U.el("td", {className: "num"}, U.fmtSeconds(at)));
        cells.push(U.el("td", {className: "num"}, U.fmtSeconds(applied)));
        cells.push(U.el("td", {className: "num"}, at != null && applied != null ? Math.round((applied - at) * 1000) + " ms" : "—"));
        cells.push(U.el("td", {className: "backend"}, f.backend == null ? "—" : String(f.backend)));
        cells.push(U.el("td", {}, f.action == null ? "—" : String(f.action)));
        cells.push(U.el("td", {className: "faults"}, faultText(f.faults)));
        var ok = f.ok === true;
        cells.push(U.el("td", {className: "result " + (ok ? "pass" : "fail")}, ok ? "ok" : "error" + (f.error ? ": " + String(f.error) : "")));
        row(body, cells);
      });
    });
  }

  function checks(parent) {
    var s = section(parent, "Checks");
    var names = unique(columns.map(function (c) { return Object.keys(U.obj(c.run.checks)); }));
    if (!names.length) { s.appendChild(U.el("p", {className: "empty"}, "No checks were recorded.")); return; }
    var heads = ["check"];
    columns.forEach(function (c) {
      var th = U.el("th");
      th.appendChild(many ? U.columnLabel(c) : document.createTextNode("result"));
      heads.push(th);
    });
    var body = table(s, heads);
    names.forEach(function (name) {
      row(body, [U.el("td", {}, name.replace(/_/g, " "))].concat(columns.map(function (c) {
        var v = U.get(c.run, "checks", name);
        return resultCell(v === true ? true : v === false ? false : null);
      })));
    });
  }

  // Leaf settings as "a.b.c" -> JSON text, to show which ones differ between runs.
  function flatten(v, prefix, out) {
    if (v !== null && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length) {
      Object.keys(v).forEach(function (k) { flatten(v[k], prefix ? prefix + "." + k : k, out); });
    } else if (prefix) {
      out[prefix] = typeof v === "string" ? v : JSON.stringify(v);
    }
    return out;
  }

  function settings(parent) {
    var s = section(parent, "Gateway settings");
    if (many) {
      var flat = columns.map(function (c) { return flatten(c.run.gateway_settings, "", Object.create(null)); });
      var keys = unique(flat.map(Object.keys)).filter(function (k) {
        return flat.some(function (f) { return f[k] !== flat[0][k]; });
      }).sort();
      if (keys.length) {
        s.appendChild(U.el("p", {}, "Settings that differ between the runs:"));
        var heads = ["setting"];
        columns.forEach(function (c) { var th = U.el("th"); th.appendChild(U.columnLabel(c)); heads.push(th); });
        var body = table(s, heads);
        keys.forEach(function (k) {
          row(body, [U.el("td", {className: "mono"}, k)].concat(flat.map(function (f) { return U.el("td", {className: "mono"}, f[k] == null ? "—" : f[k]); })));
        });
      } else {
        s.appendChild(U.el("p", {}, "Every run used the same settings."));
      }
    }
    columns.forEach(function (c) {
      var d = U.el("details");
      var sum = U.el("summary", {}, "Effective settings" + (many ? ": " : ""));
      if (many) sum.appendChild(U.columnLabel(c));
      d.appendChild(sum);
      d.appendChild(U.el("pre", {}, JSON.stringify(c.run.gateway_settings == null ? null : c.run.gateway_settings, null, 2)));
      s.appendChild(d);
    });
    sources.forEach(function (src) {
      var d = U.el("details");
      d.appendChild(U.el("summary", {}, "Scenario as validated" + (compare ? ": " + String(src.label) : "")));
      d.appendChild(U.el("pre", {}, JSON.stringify(U.get(src.summary, "scenario", "spec") || null, null, 2)));
      s.appendChild(d);
    });
  }

  header();
  verdicts();
  var main = document.getElementById("report");
  if (compare) changes(main);
  ReportGates.table(main, columns);
  var over = section(main, "Over time");
  var sampled = columns.some(function (c) { return U.arr(U.get(c.run, "series", "t")).length > 0; });
  if (sampled) ReportCharts.draw(over, columns);
  else over.appendChild(U.el("p", {className: "empty"}, columns.length ? "No samples: the load did not start or nothing was sampled." : "No run was recorded."));
  figures(main);
  backends(main);
  faultTimeline(main);
  checks(main);
  settings(main);
  // uPlot draws in a microtask after each chart is made; a task queued now runs after all of them.
  setTimeout(function () { document.documentElement.setAttribute("data-report-ready", "1"); }, 0);
})();
