"""Registrations survive a restart through the state
file, and a corrupt state file stops start-up without being touched.

- Register three servers through the API (one with a weight), replace one
  with PUT and delete another: the file holds exactly the result, written
  atomically (no temporary file left beside it).
- SIGTERM (exit 0), start again with the same state_file: the same servers,
  urls and weights are back, as API registrations, and proxying works.
- Replace the file with each of several corrupt contents: the gateway exits
  non-zero within seconds, with a one-line error on stderr that names the
  file, and the file is byte-for-byte what it was (same mtime too).
"""

import json
import os
import signal
import time
import unittest
from pathlib import Path

import harness as h

TOKEN = "state-file-token"


def spec_view(port):
    return [(s["name"], s["url"], s["weight"], s["source"]) for s in h.servers(port)]


class StateFile(h.ProcessTest):
    def gateway_with_state(self, name, state_file, wait=True):
        return self.gateway(
            name=name,
            settings={"state_file": state_file, "admin.token": TOKEN},
            wait=wait,
        )

    def test_5_registrations_survive_restart_and_corruption_stops_startup(self):
        b1 = self.backend("b1")
        b2 = self.backend("b2")
        state_dir = Path(self.log_dir) / "state"
        state_dir.mkdir()
        path = state_dir / "registry.json"
        auth = {"Authorization": f"Bearer {TOKEN}"}

        gw = self.gateway_with_state("gateway-1", str(path))
        self.assertFalse(path.exists(), "the file must not be written before any change")
        h.register(gw.port, "server1", f"http://{h.HOST}:{b1.port}", token=TOKEN, weight=3)
        h.register(gw.port, "server2", f"http://{h.HOST}:{b2.port}", token=TOKEN)
        h.register(gw.port, "gone", "http://localhost:1", token=TOKEN)
        status, _, body = h.request(
            gw.port, "PUT", "/api/servers/server2", body={"url": f"http://localhost:{b2.port}", "weight": 2}, headers=auth
        )
        self.assertEqual(status, 200, body)
        status, _, body = h.request(gw.port, "DELETE", "/api/servers/gone", headers=auth)
        self.assertEqual(status, 204, body)
        expected = [
            ("server1", f"http://{h.HOST}:{b1.port}", 3, "api"),
            ("server2", f"http://localhost:{b2.port}", 2, "api"),
        ]
        self.assertEqual(spec_view(gw.port), expected)
        saved = json.loads(path.read_text())
        self.assertEqual(
            [(s["name"], s["url"], s.get("weight")) for s in saved["servers"]], [e[:3] for e in expected]
        )
        self.assertEqual(sorted(os.listdir(state_dir)), ["registry.json"], "temporary files left behind")

        t = time.monotonic()
        gw.signal(signal.SIGTERM)
        self.assertEqual(gw.wait(10), 0)
        stop_s = time.monotonic() - t
        saved_bytes = path.read_bytes()

        t = time.monotonic()
        gw2 = self.gateway_with_state("gateway-2", str(path))
        restart_s = time.monotonic() - t
        restored = spec_view(gw2.port)
        served = {h.request(gw2.port, "GET", "/api/data")[1].get("x-served-by") for _ in range(6)}
        self.assertEqual(path.read_bytes(), saved_bytes, "loading must not rewrite the file")
        gw2.signal(signal.SIGTERM)
        self.assertEqual(gw2.wait(10), 0)

        # Corrupt files: start-up fails, the file is left exactly as it was.
        corruptions = {
            "truncated": saved_bytes[: len(saved_bytes) // 2],
            "not JSON": b"this is not json\n",
            "empty": b"",
            "wrong version": json.dumps({"version": 99, "servers": []}).encode(),
            "invalid server name": json.dumps(
                {"version": 1, "servers": [{"name": "bad name", "url": "http://localhost:1"}]}
            ).encode(),
            "unknown field": json.dumps({"version": 1, "servers": [], "extra": True}).encode(),
        }
        failures = []
        timings = []
        for label, content in corruptions.items():
            path.write_bytes(content)
            os.utime(path, (1_000_000_000, 1_000_000_000))
            t = time.monotonic()
            gw3 = self.gateway_with_state(f"gateway-corrupt-{label.replace(' ', '-')}", str(path), wait=False)
            try:
                code = gw3.wait(10)
            except Exception:
                code = None
            timings.append(time.monotonic() - t)
            err_lines = [line for line in gw3.stderr_text().splitlines() if line.strip()]
            naming = [line for line in err_lines if str(path) in line]
            problems = []
            if code in (0, None):
                problems.append(f"exit status {code}")
            if len(naming) != 1:
                problems.append(f"expected one stderr line naming the file, got {err_lines}")
            if path.read_bytes() != content:
                problems.append("the file was modified")
            if os.stat(path).st_mtime != 1_000_000_000:
                problems.append("the file was rewritten")
            if sorted(os.listdir(state_dir)) != ["registry.json"]:
                problems.append(f"other files appeared: {os.listdir(state_dir)}")
            if problems:
                failures.append(f"{label}: {'; '.join(problems)}")
            elif label == "truncated":
                example = naming[0]

        h.summary(
            "5 state file",
            f"2 servers restored after restart: {restored == expected} (stop {h.ms(stop_s)}, "
            f"ready again {h.ms(restart_s)}; traffic to {sorted(x for x in served if x)}); "
            f"{len(corruptions)} corrupt files: start-up refused with a one-line error in "
            f"{h.ms(min(timings))}-{h.ms(max(timings))}, file untouched: {not failures}; "
            f"e.g. {example if not failures else '-'}",
        )
        self.assertEqual(restored, expected)
        self.assertEqual(served, {"b1", "b2"})
        self.assertEqual(failures, [], "\n".join(failures))


if __name__ == "__main__":
    unittest.main()
