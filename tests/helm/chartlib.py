"""Shared helpers of the chart tests: where things are, rendering with the
real helm binary, and walking the rendered manifests."""

import base64
import os
import re
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "gatewaylab"
CI_DIR = CHART / "ci"
RELEASE = "gatewaylab"
NAMESPACE = "loadtest"

# The Kubernetes versions the chart supports (Chart.yaml kubeVersion), checked
# against every schema version kubernetes-validate bundles in this range.
OLDEST_K8S = (1, 25)
NEWEST_K8S = (1, 37)

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job", "DaemonSet", "Pod"}


def tool(name):
    """A tool from the project's .cache/bin or .venv/bin, else from PATH."""
    for d in (ROOT / ".cache" / "bin", ROOT / ".venv" / "bin"):
        if (d / name).exists():
            return str(d / name)
    found = shutil.which(name)
    if not found:
        raise AssertionError(f"{name} not found: run `make deps`")
    return found


def ci_cases():
    """(name, values file or None, extra helm args) for the defaults and each ci/ file."""
    cases = [("defaults", None, [])]
    for path in sorted(CI_DIR.glob("*.yaml")):
        args = []
        for line in path.read_text().splitlines():
            m = re.match(r"#\s*helm-args:\s*(.*)", line)
            if m:
                args += m.group(1).split()
        cases.append((path.stem, path, args))
    return cases


def helm(*args, check=True):
    proc = subprocess.run([tool("helm"), *args], capture_output=True, text=True, cwd=ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
    return proc


def template_args(values=None, extra=(), sets=()):
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    if values:
        args += ["-f", str(values)]
    for s in sets:
        args += ["--set", s]
    return args + list(extra)


def render(values=None, extra=(), sets=()):
    """Renders the chart; returns the list of manifests (dicts)."""
    out = helm(*template_args(values, extra, sets)).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def find(docs, kind, name=None, component=None):
    """Manifests of `kind`, optionally by name or app.kubernetes.io/component label."""
    found = []
    for d in docs:
        if d["kind"] != kind:
            continue
        if name is not None and d["metadata"]["name"] != name:
            continue
        labels = d["metadata"].get("labels") or {}
        if component is not None and labels.get("app.kubernetes.io/component") != component:
            continue
        found.append(d)
    return found


def one(docs, kind, **kw):
    found = find(docs, kind, **kw)
    if len(found) != 1:
        raise AssertionError(f"expected one {kind} {kw}, found {len(found)}")
    return found[0]


def pod_template(doc):
    """(metadata, spec) of the pod a workload runs, or None."""
    kind = doc["kind"]
    if kind == "Pod":
        return doc["metadata"], doc["spec"]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        t = doc["spec"]["template"]
        return t.get("metadata") or {}, t["spec"]
    return None


def all_containers(spec):
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def secret_value(docs, name, key):
    s = one(docs, "Secret", name=name)
    if key in (s.get("stringData") or {}):
        return s["stringData"][key]
    return base64.b64decode(s["data"][key]).decode()


def expand(value, defined):
    """The kubelet's expansion of an env `value`: $(NAME) becomes the value of
    a variable defined earlier in the list (else stays as it is), $$ becomes $."""
    out, i = [], 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
        elif value.startswith("$(", i) and ")" in value[i + 2:]:
            end = value.index(")", i + 2)
            name = value[i + 2:end]
            out.append(defined.get(name, f"$({name})"))
            i = end + 1
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def resolve_env(docs, container, pod_name, namespace=NAMESPACE):
    """A container's environment as Kubernetes would give it: values (with
    $(VAR) references expanded), the downward API (pod name, namespace),
    Secret and ConfigMap keys. Duplicate names fail: server-side apply
    refuses them."""
    env = {}
    names = [e["name"] for e in container.get("env") or []]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise AssertionError(f"container {container['name']}: env names given twice: {duplicates}")
    for e in container.get("env") or []:
        if "value" in e:
            env[e["name"]] = expand(str(e["value"]), env)
            continue
        src = e["valueFrom"]
        if "fieldRef" in src:
            field = src["fieldRef"]["fieldPath"]
            env[e["name"]] = {"metadata.name": pod_name, "metadata.namespace": namespace}[field]
        elif "secretKeyRef" in src:
            ref = src["secretKeyRef"]
            env[e["name"]] = secret_value(docs, ref["name"], ref["key"])
        elif "configMapKeyRef" in src:
            ref = src["configMapKeyRef"]
            env[e["name"]] = one(docs, "ConfigMap", name=ref["name"])["data"][ref["key"]]
        else:
            raise AssertionError(f"unsupported env source {src}")
    if container.get("envFrom"):
        raise AssertionError("envFrom is not used by this chart; extend resolve_env if it is")
    return env


def materialize_mounts(docs, spec, container, into):
    """Writes the ConfigMap and Secret volumes a container mounts below
    `into`; returns {mountPath: local path} (files for subPath mounts)."""
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    mounts = {}
    for m in container.get("volumeMounts") or []:
        vol = volumes[m["name"]]
        local = Path(into) / m["mountPath"].strip("/").replace("/", "__")
        if "configMap" in vol:
            data = one(docs, "ConfigMap", name=vol["configMap"]["name"])["data"]
            items = vol["configMap"].get("items")
        elif "secret" in vol:
            secret = one(docs, "Secret", name=vol["secret"]["secretName"])
            data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
            data.update(secret.get("stringData") or {})
            items = vol["secret"].get("items")
        elif "emptyDir" in vol:
            local.mkdir(parents=True, exist_ok=True)
            mounts[m["mountPath"]] = str(local)
            continue
        else:
            raise AssertionError(f"unsupported volume {vol}")
        files = {i["path"]: data[i["key"]] for i in items} if items else dict(data)
        if "subPath" in m:
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_text(files[m["subPath"]])
        else:
            for rel, text in files.items():
                (local / rel).parent.mkdir(parents=True, exist_ok=True)
                (local / rel).write_text(text)
        mounts[m["mountPath"]] = str(local)
    return mounts


def remap_paths(text, mounts):
    """Replaces mount paths (as whole path prefixes) by their local copies,
    in one pass so that a replacement is never replaced again."""
    if not mounts:
        return text
    alternatives = "|".join(re.escape(m) for m in sorted(mounts, key=len, reverse=True))
    pattern = r"(?<![\w./-])(" + alternatives + r")(?=/|$|\s|\"|')"
    return re.sub(pattern, lambda m: mounts[m.group(1)], text)
