"""The command line, `python3 -m scenario check|run|report|compare`, and its
exit codes: 0 all gates pass, 1 a gate failed (for compare: a figure got
worse beyond the tolerance), 2 an invalid scenario or usage, 3 the run could
not be done, 4 an `abort_on_fail` gate stopped it, 130 interrupted (Ctrl-C;
143 for SIGTERM). Depends on scenario.spec, scenario.stack, scenario.run,
scenario.summary, scenario.baseline and, when present, scenario.report.
"""

import argparse
import signal
import sys
import traceback
import urllib.parse
from pathlib import Path

from . import baseline, spec, summary
from .checks import SpecError
from .run import Interrupted, Target, run_variant
from .stack import print_config

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "target" / "release"
OK, INVALID, NOT_DONE = 0, 2, 3
_SIGNALS = []  # the signal that interrupted the run, if one did


def main(argv=None):
    args = _parser().parse_args(argv)
    return args.func(args)


def _parser():
    p = argparse.ArgumentParser(prog="python3 -m scenario", description="Scenario runs: load shape, timed backend "
                                "faults and SLO gates against the gateway, judged and reported.")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="validate scenario files")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("--target", choices=spec.TARGETS, default="local")
    c.add_argument("--gateway-bin", type=Path, default=BIN / "gateway",
                   help="checks the gateway settings with it when it exists (default target/release/gateway)")
    c.set_defaults(func=cmd_check)
    r = sub.add_parser("run", help="run a scenario and judge it")
    r.add_argument("file", metavar="FILE")
    r.add_argument("--variant", help="run only this variant")
    r.add_argument("--out", type=Path, help="the run directory (default target/scenarios/<name>/<UTC time>)")
    r.add_argument("--target", choices=spec.TARGETS, default="local")
    r.add_argument("--gateway-bin", type=Path, default=BIN / "gateway")
    r.add_argument("--backend-bin", type=Path, default=BIN / "backend")
    r.add_argument("--locust-bin", help="the locust executable (default: .venv/bin/locust, else PATH)")
    r.add_argument("--gateway-url", help="kubernetes: the gateway's base URL")
    r.add_argument("--backend-urls", help="kubernetes: the backends' base URLs, comma separated; "
                   "the scenario's backends are the first ones, in order")
    r.add_argument("--token-file", type=Path, help="kubernetes: file holding the backends' fault API token")
    r.add_argument("--baseline", type=Path, metavar="RUN_DIR",
                   help="an earlier run that gates written `METRIC OP baseline [+|- N%%]` are judged against")
    r.set_defaults(func=cmd_run)
    rep = sub.add_parser("report", help="render DIR/report.html from DIR/summary.json")
    rep.add_argument("dir", type=Path, metavar="DIR")
    rep.set_defaults(func=cmd_report)
    cmp_ = sub.add_parser("compare", help="a comparison report of two runs")
    cmp_.add_argument("dir_a", type=Path, metavar="DIR_A")
    cmp_.add_argument("dir_b", type=Path, metavar="DIR_B")
    cmp_.add_argument("--out", type=Path, help="where report.html goes (default target/scenarios/compare/<UTC time>)")
    cmp_.add_argument("--tolerance", default="10%", help="changes within this share of A's figure are noise "
                      "(default 10%%; ratios also within 0.1 percentage point, latencies within 0.5 ms); "
                      "exit 1 when one is worse beyond it")
    cmp_.set_defaults(func=cmd_compare)
    return p


def _load(file, target):
    try:
        return spec.load(file, target), None
    except SpecError as e:
        return None, e.line(file)


def _gateway_settings(scenario, gateway_bin):
    """{variant: (settings, effective settings)} checked with `gateway --print-config`;
    raises SpecError naming the variant's settings when the gateway refuses them."""
    out = {}
    for i, variant in enumerate(scenario.runs()):
        settings, problem = print_config(gateway_bin, variant.gateway)
        if problem:
            where = f"variants[{i}].gateway" if scenario.variants else "gateway"
            raise SpecError(where, f"the gateway refuses these settings: {problem}")
        out[variant.name] = (variant.gateway, settings)
    return out


def cmd_check(args):
    code = OK
    for file in args.files:
        scenario, problem = _load(file, args.target)
        if scenario and args.target == "local" and args.gateway_bin.exists():
            try:
                _gateway_settings(scenario, args.gateway_bin)
            except SpecError as e:
                scenario, problem = None, e.line(file)
        if problem:
            print(problem, file=sys.stderr)
            code = INVALID
        else:
            print(f"{file}: ok ({spec.summary_line(scenario)})")
    return code


def _usage(message):
    print(f"python3 -m scenario: {message}", file=sys.stderr)
    return INVALID


def cmd_run(args):
    _on_signals()  # before anything is started, so no Ctrl-C ends in a traceback
    scenario, problem = _load(args.file, args.target)
    if problem:
        print(problem, file=sys.stderr)
        return INVALID
    runs = scenario.runs()
    if args.variant:
        runs = [v for v in runs if v.name == args.variant]
        if not runs:
            names = ", ".join(v.name for v in scenario.runs())
            return _usage(f"--variant {args.variant}: not a variant of {scenario.name} ({names})")
    relative = [g for v in runs for g in scenario.gates_for(v.name) if g.relative]
    if relative and not args.baseline:
        return _usage(f"{args.file}: the gate {relative[0].text} compares with a baseline: give --baseline RUN_DIR")
    baselines = None
    if args.baseline:
        try:
            baselines = baseline.gate_figures(baseline.read_summary(args.baseline), scenario,
                                              [v.name for v in runs])
        except baseline.BaselineError as e:
            return _usage(f"--baseline: {e}")
    try:
        target, settings = _target(args, scenario, runs)
    except Interrupted:
        return 128 + _SIGNALS[0]  # nothing started yet, nothing to record
    if isinstance(target, int):
        return target
    target.baselines = baselines
    started = summary.utc_now()
    run_dir = args.out or Path("target") / "scenarios" / scenario.name / started.strftime("%Y%m%dT%H%M%SZ")
    if (run_dir / "summary.json").exists():
        return _usage(f"--out {run_dir}: holds an earlier run (summary.json); give a new directory")
    problem = _make_dir(run_dir)
    if problem:
        return _usage(f"--out {problem}") if args.out else _not_done(problem)
    record = summary.new(scenario, args.target, started)
    code = None
    for variant in runs:
        given, effective = settings.get(variant.name, ({}, None))
        entry = summary.run_entry(variant.name, effective, scenario)
        record["runs"].append(entry)
        log_dir = run_dir / variant.name if scenario.variants else run_dir
        try:
            run_variant(scenario, variant.name, given, target, log_dir, entry)
        except Interrupted:
            code = 128 + (_SIGNALS[0] if _SIGNALS else signal.SIGINT)
        except Exception as e:  # noqa: BLE001 - a bug must still leave a summary and stop everything
            traceback.print_exc()
            entry["verdict"], entry["error"] = "error", f"internal error: {type(e).__name__}: {e}"
        summary.write(summary.finish(record), run_dir)
        if code is not None:
            break
    path = summary.write(summary.finish(record), run_dir)
    _print_outcome(record, path)
    _render(run_dir)
    return code if code is not None else summary.EXIT_CODES[record["verdict"]]


def _make_dir(path):
    """Creates the directory `path`; None, or one line saying why it cannot be."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"{path}: cannot be made a directory: {e.strerror or e}"
    return None


def _not_done(problem):
    print(f"error: {problem}", file=sys.stderr)
    return NOT_DONE


def _target(args, scenario, runs):
    """(Target, {variant: (env, settings)}) or an exit code."""
    if args.target == "kubernetes":
        if not (args.gateway_url and args.backend_urls):
            return _usage("--target kubernetes needs --gateway-url and --backend-urls"), None
        urls = [u.strip() for u in args.backend_urls.split(",") if u.strip()]
        for option, url in [("--gateway-url", args.gateway_url)] + [("--backend-urls", u) for u in urls]:
            if not _http_url(url):
                return _usage(f"{option}: {url!r} is not an http(s)://host[:port] URL"), None
        if len(urls) < len(scenario.backends):
            return _usage(f"--backend-urls: {len(urls)} URLs for {len(scenario.backends)} backends "
                          f"({', '.join(scenario.backends)})"), None
        urls = urls[:len(scenario.backends)]  # the scenario's backends are the first ones
        if scenario.variants and not args.variant:
            return _usage("--target kubernetes runs one variant, the one the chart's gateway was set up for: "
                          "give --variant"), None
        token = None
        if args.token_file:
            try:
                token = args.token_file.read_text().strip()
            except OSError as e:
                return _usage(f"--token-file {args.token_file}: {e.strerror or e}"), None
        return Target("kubernetes", gateway_url=args.gateway_url, backend_urls=urls, token=token,
                      locust_bin=_locust(args)), {}
    for option in ("gateway_url", "backend_urls", "token_file"):
        if getattr(args, option):
            return _usage(f"--{option.replace('_', '-')} is for --target kubernetes"), None
    for binary in (args.gateway_bin, args.backend_bin):
        if not binary.is_file():
            print(f"error: {binary} is missing (cargo build --release, or give --gateway-bin/--backend-bin)",
                  file=sys.stderr)
            return NOT_DONE, None
    try:
        checked = _gateway_settings(scenario, args.gateway_bin)
    except SpecError as e:
        print(e.line(args.file), file=sys.stderr)
        return INVALID, None
    locust = _locust(args)
    if isinstance(locust, int):
        return locust, None
    return Target("local", gateway_bin=args.gateway_bin, backend_bin=args.backend_bin, locust_bin=locust), {
        v.name: checked[v.name] for v in runs}


def _locust(args):
    from .load import find_locust
    from .stack import StartFailed

    try:
        return find_locust(args.locust_bin)
    except StartFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return NOT_DONE


def _on_signals():
    """Ctrl-C and SIGTERM end the run the same way: the first raises
    Interrupted in the main thread; later ones wait for the cleanup."""
    def handler(signum, _frame):
        if _SIGNALS:
            print("\nstopping: waiting for the processes to end...", file=sys.stderr)
            return
        _SIGNALS.append(signum)
        raise Interrupted()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _print_outcome(record, path):
    from .judge import result_line

    for run in record["runs"]:
        label = f"[{run['variant']}] " if len(record["runs"]) > 1 or run["variant"] != "default" else ""
        for gate in run["gates"]:
            print(f"{label}{result_line(gate)}")
        if run["verdict"] == "error":
            print(f"{label}ERROR {run['error']}", file=sys.stderr)
        elif run["verdict"] == "interrupted":
            print(f"{label}interrupted at {run['duration_s']:.0f}s", file=sys.stderr)
        elif run["verdict"] == "aborted":
            print(f"{label}aborted: {run['error']}", file=sys.stderr)
        for check, ok in run["checks"].items():
            if ok is False:
                print(f"{label}warning: {check} is false (see summary.json)", file=sys.stderr)
        if run["verdict"] != "error" and not run["gates"]:
            print(f"{label}{run['verdict']}: no gates, so nothing was judged (the figures are in the summary)")
        elif run["verdict"] != "error":
            passed = sum(g["pass"] for g in run["gates"])
            print(f"{label}{run['verdict']}: {passed}/{len(run['gates'])} gates passed")
    print(f"summary: {path}")


def _report_module():
    try:
        from . import report
    except ImportError:
        return None
    return report


def _render(run_dir):
    report = _report_module()
    if report is None:
        return None
    try:
        path = report.render_run(Path(run_dir))
    except Exception as e:  # noqa: BLE001 - the run's verdict stands without its report
        print(f"warning: report.html not written: {type(e).__name__}: {e}", file=sys.stderr)
        return None
    print(f"report: {path}")
    return path


def cmd_report(args):
    if not (args.dir / "summary.json").is_file():
        return _usage(f"{args.dir}: no summary.json there")
    if _report_module() is None:
        print("error: scenario.report is not installed here; the figures are in "
              f"{args.dir / 'summary.json'}", file=sys.stderr)
        return NOT_DONE
    return OK if _render(args.dir) else NOT_DONE


def cmd_compare(args):
    for d in (args.dir_a, args.dir_b):
        if not (d / "summary.json").is_file():
            return _usage(f"{d}: no summary.json there")
    tolerance = _percent(args.tolerance)
    if tolerance is None:
        return _usage(f"--tolerance {args.tolerance}: write a percentage such as 10%")
    try:
        rows = baseline.compare(baseline.read_summary(args.dir_a), baseline.read_summary(args.dir_b), tolerance)
    except baseline.BaselineError as e:
        return _usage(str(e))
    for row in rows:
        print(baseline.row_line(row))
    if not rows:
        print("the two runs have no variant in common: nothing to compare figure by figure")
    worse = sum(r["verdict"] == "worse" for r in rows)
    print(f"B against A, tolerance {args.tolerance}: {worse} worse, "
          f"{sum(r['verdict'] == 'better' for r in rows)} better, {sum(r['verdict'] == 'same' for r in rows)} same")
    report = _report_module()
    if report is None:
        print("error: scenario.report is not installed here", file=sys.stderr)
        return NOT_DONE
    out = args.out or Path("target") / "scenarios" / "compare" / summary.utc_now().strftime("%Y%m%dT%H%M%SZ")
    problem = _make_dir(out)
    if problem:
        return _usage(f"--out {problem}") if args.out else _not_done(problem)
    try:
        path = report.render_compare(args.dir_a, args.dir_b, out, {"tolerance": tolerance, "rows": rows})
    except Exception as e:  # noqa: BLE001
        print(f"error: comparison not written: {type(e).__name__}: {e}", file=sys.stderr)
        return NOT_DONE
    print(f"report: {path}")
    return 1 if worse else OK


def _http_url(text):
    try:
        u = urllib.parse.urlsplit(text)
        u.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    return u.scheme in ("http", "https") and bool(u.hostname)


def _percent(text):
    text = str(text).strip()
    number = text[:-1] if text.endswith("%") else None
    try:
        value = float(number) / 100.0 if number else None
    except ValueError:
        return None
    return value if value is not None and 0 <= value <= 10 else None
