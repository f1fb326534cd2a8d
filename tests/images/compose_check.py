#!/usr/bin/env python3
"""Offline validation of deploy/compose.yaml (`make compose-check`).

No image can be pulled here, so the stack is not started. Instead:
  1. a compose tool's own `config` (docker compose, else docker-compose) checks
     the file against the Compose schema and resolves anchors and variables;
  2. the resolved model is checked for what the schema cannot know: pinned
     images, the hardening the images are made for, bind-mount sources that
     exist, build targets that exist in the Dockerfile, ports on 127.0.0.1;
  3. the gateway's and each backend's environment is fed to the real release
     binary (`--print-config`, which rejects unknown keys), and the effective
     port is compared with the published port, the health check, the
     gateway's static servers, Locust's BACKENDS and Prometheus' targets;
  4. `promtool check config` runs on Prometheus' config laid out as the
     container sees it (/etc/prometheus from the compose volumes), and the
     Grafana provisioning is checked against the mounted dashboards folder.

Prints one line per check and `compose-check: N passed, N failed`.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose.yaml"
BIN = ROOT / "target" / "release"
EXPECTED = {"gateway", "server1", "server2", "server3", "locust", "prometheus", "grafana"}
BACKENDS = ["server1", "server2", "server3"]

passed = 0
failed = 0


def check(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"  ok   {what}")
    else:
        failed += 1
        print(f"  FAIL {what}" + (f": {detail}" if detail else ""))
    return ok


def compose_tool():
    if shutil.which("docker"):
        r = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if r.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("podman-compose"):
        return ["podman-compose"]
    return None


def workspace_version():
    m = re.search(r'^version = "([^"]+)"', (ROOT / "Cargo.toml").read_text(), re.M)
    return m.group(1) if m else None


def dockerfile_stages():
    text = (ROOT / "Dockerfile").read_text()
    return set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, re.M | re.I))


def env_of(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def published(svc):
    """[(host_ip, host_port, container_port)] from short or long port syntax."""
    out = []
    for p in svc.get("ports") or []:
        if isinstance(p, dict):
            out.append((p.get("host_ip", ""), str(p.get("published", "")), int(p["target"])))
        else:
            spec = str(p).split("/")[0]
            parts = spec.split(":")
            if len(parts) == 3:
                out.append((parts[0], parts[1], int(parts[2])))
            elif len(parts) == 2:
                out.append(("", parts[0], int(parts[1])))
            else:
                out.append(("", "", int(parts[0])))
    return out


def binds(svc):
    """[(source, target)] of bind mounts, sources resolved like compose does."""
    out = []
    for v in svc.get("volumes") or []:
        if isinstance(v, dict):
            if v.get("type") == "bind":
                out.append((v["source"], v["target"]))
        else:
            parts = str(v).split(":")
            if len(parts) >= 2 and (parts[0].startswith((".", "/", "~"))):
                out.append((parts[0], parts[1]))
    return [(str((COMPOSE.parent / s).resolve()) if not os.path.isabs(s) else s, t) for s, t in out]


def print_config(binary, env):
    """Runs the release binary's --print-config with exactly env (plus PATH)."""
    r = subprocess.run([str(BIN / binary), "--print-config"], capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin", **env}, timeout=20)
    if r.returncode != 0:
        return None, (r.stderr or r.stdout).strip()
    return json.loads(r.stdout), ""


def hc_url(svc):
    test = (svc.get("healthcheck") or {}).get("test") or []
    return test[-1] if test and test[0] == "CMD" else None


def main():
    raw = yaml.safe_load(COMPOSE.read_text())
    tool = compose_tool()
    if not check(tool is not None, "a compose tool is installed (docker compose, docker-compose or podman-compose)",
                 "run `make deps`"):
        return
    env = {k: v for k, v in os.environ.items() if k not in ("IMAGE_REPO", "IMAGE_TAG")}
    r = subprocess.run([*tool, "-f", str(COMPOSE), "config"], capture_output=True, text=True, env=env)
    if not check(r.returncode == 0, f"`{' '.join(tool)} config` accepts deploy/compose.yaml",
                 (r.stderr or r.stdout).strip()[-2000:]):
        return
    model = yaml.safe_load(r.stdout)
    services = model.get("services", {})
    check(set(services) == EXPECTED, "services: gateway, server1..3, locust, prometheus, grafana",
          f"got {sorted(services)}")
    if set(services) != EXPECTED:
        return

    version = workspace_version()
    stages = dockerfile_stages()
    host_ports = []
    for name, svc in sorted(services.items()):
        image = svc.get("image", "")
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        check(tag and tag != "latest", f"{name}: image {image!r} is pinned")
        for source, target in binds(svc):
            check(os.path.exists(source), f"{name}: bind mount {os.path.relpath(source, ROOT)} -> {target} exists")
        for ip, hport, _ in published(svc):
            check(ip == "127.0.0.1", f"{name}: port {hport} published on 127.0.0.1 only", f"host_ip {ip!r}")
            host_ports.append(hport)
        for dep in (svc.get("depends_on") or {}):
            check(dep in services, f"{name}: depends_on {dep} is a service")
        if "build" in svc:
            check(svc["build"].get("target") in stages,
                  f"{name}: build target {svc['build'].get('target')!r} is a Dockerfile stage", f"stages {sorted(stages)}")
    check(len(host_ports) == len(set(host_ports)), "published host ports are distinct", f"{host_ports}")

    # ---- gateway and backends: the project's images, as they are meant to run
    raw_services = raw["services"]
    for name in ["gateway", *BACKENDS]:
        svc = services[name]
        kind = "gateway" if name == "gateway" else "backend"
        raw_image = raw_services[name]["image"]
        check(raw_image == f"${{IMAGE_REPO:-gatewaylab}}/{kind}:${{IMAGE_TAG:-{version}}}",
              f"{name}: image defaults to gatewaylab/{kind}:{version} (the workspace version)", raw_image)
        check(svc.get("user") == "65532:65532", f"{name}: runs as 65532:65532")
        check(svc.get("read_only") is True, f"{name}: read-only root filesystem")
        check("ALL" in (svc.get("cap_drop") or []), f"{name}: drops all capabilities")
    check(any("build" in services[n] for n in BACKENDS), "a backend service builds the backend image")
    check("build" in services["gateway"], "the gateway service builds the gateway image")

    ports = {}
    gateway_servers = {}
    for name in ["gateway", *BACKENDS]:
        svc = services[name]
        kind = "gateway" if name == "gateway" else "backend"
        cfg, err = print_config(kind, env_of(svc))
        if not check(cfg is not None, f"{name}: `{kind} --print-config` accepts its environment", err):
            # go on with the published container port so the later checks still run
            ports[name] = next((c for _, _, c in published(svc)), 0)
            continue
        port = cfg["listen"]["port"]
        ports[name] = port
        check(cfg["listen"]["host"] == "0.0.0.0", f"{name}: listens on all interfaces (reachable from other services)")
        check(any(c == port for _, _, c in published(svc)), f"{name}: publishes its listen port {port}",
              f"{published(svc)}")
        url = hc_url(svc)
        check(url == f"http://127.0.0.1:{port}/readyz" and svc["healthcheck"]["test"][1:3] == [f"/usr/local/bin/{kind}", "probe"],
              f"{name}: health check probes its own /readyz on {port}", f"{svc.get('healthcheck')}")
        if kind == "backend":
            check(cfg.get("name") == name, f"{name}: backend name is {name}", f"got {cfg.get('name')!r}")
        else:
            servers = {s["name"]: s["url"] for s in cfg.get("servers", [])}
            gateway_servers = servers
    want = {n: f"http://{n}:{ports[n]}" for n in BACKENDS}
    check(gateway_servers == want, "gateway: static servers are server1..3 at their service names and ports",
          f"got {gateway_servers}, want {want}")

    # ---- Locust
    loc = services["locust"]
    cmd = loc.get("command") or []
    pairs = dict(p.split("=", 1) for p in env_of(loc).get("BACKENDS", "").split(",") if "=" in p)
    check(pairs == want, "locust: BACKENDS names server1..3 at their service names and ports", f"got {pairs}")
    host = cmd[cmd.index("--host") + 1] if "--host" in cmd else cmd[cmd.index("-H") + 1] if "-H" in cmd else ""
    check(host == f"http://gateway:{ports['gateway']}", "locust: --host is the gateway service", host)
    lf = cmd[cmd.index("-f") + 1] if "-f" in cmd else ""
    mounted = {t: s for s, t in binds(loc)}
    check(lf in mounted and mounted[lf].endswith("deploy/locust/locustfile.py"),
          "locust: -f names the mounted deploy/locust/locustfile.py", f"-f {lf!r}, mounts {mounted}")

    # ---- Prometheus: its config as the container sees it
    prom = services["prometheus"]
    pmounts = {t: s for s, t in binds(prom)}
    cfg_path = next((a.split("=", 1)[1] for a in prom.get("command") or [] if a.startswith("--config.file=")),
                    "/etc/prometheus/prometheus.yml")
    if check(cfg_path in pmounts, f"prometheus: {cfg_path} is mounted"):
        with tempfile.TemporaryDirectory() as tmp:
            for target, source in pmounts.items():
                if os.path.isfile(source):
                    dest = Path(tmp) / target.lstrip("/")
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(source, dest)
            promtool = shutil.which("promtool")
            if check(promtool is not None, "promtool is installed", "run `make deps`"):
                r = subprocess.run([promtool, "check", "config", str(Path(tmp) / cfg_path.lstrip("/"))],
                                   capture_output=True, text=True)
                check(r.returncode == 0, "prometheus: promtool check config passes (rules included)",
                      (r.stdout + r.stderr).strip()[-1500:])
        pcfg = yaml.safe_load(Path(pmounts[cfg_path]).read_text())
        jobs = {j["job_name"]: sorted(t for sc in j.get("static_configs", []) for t in sc.get("targets", []))
                for j in pcfg.get("scrape_configs", [])}
        check(jobs.get("gateway") == [f"gateway:{ports['gateway']}"], "prometheus: job gateway scrapes the gateway",
              f"{jobs.get('gateway')}")
        check(jobs.get("backend") == sorted(f"{n}:{ports[n]}" for n in BACKENDS),
              "prometheus: job backend scrapes server1..3", f"{jobs.get('backend')}")
    prom_port = next((c for _, _, c in published(prom)), 9090)

    # ---- Grafana: provisioned data source and the project's dashboards
    gra = services["grafana"]
    gmounts = {t: s for s, t in binds(gra)}
    ds_files = [s for t, s in gmounts.items() if t.startswith("/etc/grafana/provisioning/datasources/")]
    db_files = [s for t, s in gmounts.items() if t.startswith("/etc/grafana/provisioning/dashboards/")]
    if check(len(ds_files) == 1, "grafana: one provisioned data source file"):
        ds = yaml.safe_load(Path(ds_files[0]).read_text())["datasources"]
        check(any(d.get("type") == "prometheus" and d.get("url") == f"http://prometheus:{prom_port}"
                  and d.get("isDefault") for d in ds),
              "grafana: default data source is the compose Prometheus", f"{ds}")
    if check(len(db_files) == 1, "grafana: one dashboard provider file"):
        providers = yaml.safe_load(Path(db_files[0]).read_text())["providers"]
        paths = [p.get("options", {}).get("path") for p in providers]
        dash_dir = gmounts.get(paths[0]) if paths else None
        check(dash_dir is not None and dash_dir == str(ROOT / "deploy" / "grafana"),
              "grafana: the provider reads the mounted deploy/grafana folder", f"paths {paths}, mounts {gmounts}")
        if dash_dir:
            dashboards = sorted(Path(dash_dir).glob("*.json"))
            check(len(dashboards) > 0, f"grafana: deploy/grafana has dashboards ({len(dashboards)})")
            for d in dashboards:
                try:
                    ok = isinstance(json.loads(d.read_text()).get("panels"), list)
                except ValueError:
                    ok = False
                check(ok, f"grafana: {d.name} is a dashboard (JSON with panels)")
            home = env_of(gra).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
            if home:
                rel = os.path.relpath(home, paths[0])
                check(not rel.startswith("..") and (Path(dash_dir) / rel).is_file(),
                      f"grafana: home dashboard {home} is one of the mounted files")


if __name__ == "__main__":
    main()
    print(f"compose-check: {passed} passed, {failed} failed")
    sys.exit(1 if failed or not passed else 0)
