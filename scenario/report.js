// The report page: reads the JSON in #report-data ({mode, sources: [{label, dir,
// summary}]}), lays every run of every source side by side as one "column"
// each with its own colour, and writes the header, verdict banners, charts
// (ReportCharts) and tables. Text is set with textContent only.
// Uses ReportUtil and ReportCharts; sets data-report-ready="1" on <html> once
// everything is drawn.
"use strict";
(function () {
  var U = ReportUtil;
  var RUN_COLOURS = ["#1f6fb4", "#e8710a", "#12939a", "#7b4bb3", "#d81b7d", "#5a8f00"];
  var CLIENT_KEYS = [["requests", "requests", U.fmtNumber], ["failures", "failures", U.fmtNumber],
                     ["error_rate", "error rate", U.fmtPercent], ["rps", "req/s", U.fmtNumber],
                     ["p50_ms", "p50 ms", U.fmtNumber], ["p95_ms", "p95 ms", U.fmtNumber],
                     ["p99_ms", "p99 ms", U.fmtNumber], ["max_ms", "max ms", U.fmtNumber]];
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

  function section(parent, title) {
    var s = U.el("section", {className: "block"});
    s.appendChild(U.el("h2", {}, title));
    parent.appendChild(s);
    return s;
  }

  function table(parent, heads) {
    var wrap = U.el("div", {className: "table-wrap"});
    var t = U.el("table");
    var tr = U.el("tr");
    heads.forEach(function (h) { tr.appendChild(typeof h === "string" ? U.el("th", {}, h) : h); });
    t.appendChild(U.el("thead")).appendChild(tr);
    var body = t.appendChild(U.el("tbody"));
    wrap.appendChild(t);
    parent.appendChild(wrap);
    return body;
  }

  function row(body, cells) {
    var tr = U.el("tr");
    cells.forEach(function (c) { tr.appendChild(c instanceof Node ? c : U.el("td", {}, c)); });
    body.appendChild(tr);
    return tr;
  }

  function labelCell(c) {
    var td = U.el("td", {className: "run"});
    td.appendChild(U.columnLabel(c));
    return td;
  }

  function resultCell(pass) {
    var word = pass === true ? "pass" : pass === false ? "FAIL" : "—";
    return U.el("td", {className: "result " + (pass === true ? "pass" : pass === false ? "fail" : "none")}, word);
  }

  function unique(lists) {
    var out = [];
    lists.forEach(function (l) { l.forEach(function (x) { if (out.indexOf(x) < 0) out.push(x); }); });
    return out;
  }

  function fmtValue(v, unit) {
    return v == null ? "—" : U.fmtNumber(v) + (unit ? " " + unit : "");
  }

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
      runs.forEach(function (run) {
        var failed = U.arr(run.gates).map(U.obj).filter(function (g) { return g.pass === false; });
        var line = String(run.variant == null ? "default" : run.variant) + ": " + String(run.verdict);
        if (run.error) line += ": " + String(run.error);
        else if (failed.length) line += ": " + failed.map(function (g) { return String(g.name) + " was " + fmtValue(U.num(g.value), g.unit); }).join("; ");
        else {
          var passed = U.arr(run.gates).filter(function (g) { return U.obj(g).pass === true; }).length;
          var open = U.arr(run.gates).length - passed;
          line += ", " + passed + " gates passed" + (open ? ", " + open + " not judged (no figure)" : "");
        }
        banner.appendChild(U.el("div", {}, line));
      });
      box.appendChild(banner);
    });
  }

  function gates(parent) {
    var s = section(parent, "Gates");
    var names = unique(columns.map(function (c) { return U.arr(c.run.gates).map(function (g) { return String(U.obj(g).name); }); }));
    if (!names.length) { s.appendChild(U.el("p", {className: "empty"}, "No gates.")); return; }
    var heads = ["gate", "threshold"];
    columns.forEach(function (c) {
      var th = U.el("th", {colSpan: "2"});
      th.appendChild(many ? U.columnLabel(c) : document.createTextNode("value"));
      heads.push(th);
    });
    var body = table(s, heads);
    names.forEach(function (name) {
      var cells = [U.el("td", {}, name)], threshold = null;
      columns.forEach(function (c) {
        var g = U.obj(U.arr(c.run.gates).filter(function (x) { return String(U.obj(x).name) === name; })[0]);
        if (threshold == null && g.threshold != null) threshold = (g.op ? g.op + " " : "") + fmtValue(U.num(g.threshold), g.unit);
        cells.push(U.el("td", {className: "num"}, fmtValue(U.num(g.value), g.unit)));
        cells.push(resultCell(g.pass));
      });
      cells.splice(1, 0, U.el("td", {className: "num"}, threshold || "—"));
      row(body, cells);
    });
  }

  function figures(parent) {
    var phases = unique(columns.map(function (c) {
      return ["run"].concat(U.arr(c.run.phases).map(function (p) { return String(U.obj(p).name); }));
    }));
    [["client", "Figures per phase, client (Locust)", CLIENT_KEYS], ["gateway", "Figures per phase, gateway", GATEWAY_KEYS]].forEach(function (part) {
      var s = section(parent, part[1]);
      var any = columns.some(function (c) { return Object.keys(U.obj(U.get(c.run, "figures", "run", part[0]))).length > 0; });
      if (!any) { s.appendChild(U.el("p", {className: "empty"}, "No figures were recorded.")); return; }
      var heads = ["phase"].concat(many ? ["run"] : [], part[2].map(function (k) { return k[1]; }));
      var body = table(s, heads);
      phases.forEach(function (phase) {
        columns.forEach(function (c, ci) {
          var f = U.obj(U.get(c.run, "figures", phase, part[0]));
          var cells = [U.el("td", {className: "phase" + (ci > 0 ? " repeat" : "")}, phase === "run" ? "whole run" : phase)];
          if (many) cells.push(labelCell(c));
          part[2].forEach(function (k) { cells.push(U.el("td", {className: "num"}, k[2](f[k[0]]))); });
          row(body, cells).className = ci === 0 ? "group-start" : "";
        });
      });
    });
  }

  function backends(parent) {
    var s = section(parent, "Backends (gateway's view)");
    var phases = unique(columns.map(function (c) { return U.arr(c.run.phases).map(function (p) { return String(U.obj(p).name); }); }));
    var names = unique(columns.map(function (c) {
      return Object.keys(U.obj(U.get(c.run, "figures", "run", "gateway", "backends")))
        .concat(Object.keys(U.obj(U.get(c.run, "series", "gateway", "backends"))));
    }));
    if (!names.length) { s.appendChild(U.el("p", {className: "empty"}, "No backend figures.")); return; }
    var heads = ["backend"].concat(many ? ["run"] : [], ["requests", "errors", "share, whole run"],
                                   phases.map(function (p) { return "share, " + p; }));
    var body = table(s, heads);
    names.forEach(function (name) {
      columns.forEach(function (c, ci) {
        var b = U.obj(U.get(c.run, "figures", "run", "gateway", "backends", name));
        var cells = [U.el("td", {className: "backend" + (ci > 0 ? " repeat" : "")}, name)];
        if (many) cells.push(labelCell(c));
        cells.push(U.el("td", {className: "num"}, U.fmtNumber(b.requests)));
        cells.push(U.el("td", {className: "num"}, U.fmtNumber(b.errors)));
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
  gates(main);
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
