#!/usr/bin/env python3
"""`make test-resilience`: the process-level resilience tests
against the release binaries, then one summary line per scenario with the
numbers measured.

    python3 tests/resilience/run.py            # every scenario
    python3 tests/resilience/run.py -k sigkill # those whose name contains "sigkill"

Logs of each run go to target/run/resilience.<test>.*/ and are removed when
everything passed. Exit status 0 only when every scenario passed.
"""

import argparse
import shutil
import sys
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", action="append", default=[], help="only tests whose name contains this")
    args = parser.parse_args()

    harness.require_binaries()
    loader = unittest.TestLoader()
    if args.k:
        loader.testNamePatterns = [f"*{k}*" for k in args.k]
    suite = loader.discover(str(HERE), pattern="test_*.py", top_level_dir=str(HERE))
    started = time.monotonic()
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stderr).run(suite)
    elapsed = time.monotonic() - started
    harness.stop_everything()

    print("\nResilience summary:", file=sys.stderr)
    for line in sorted(harness.SUMMARIES):
        print(f"  {line}", file=sys.stderr)
    status = "passed" if result.wasSuccessful() else "FAILED"
    print(f"  {result.testsRun} scenarios {status} in {elapsed:.1f} s", file=sys.stderr)

    if result.wasSuccessful():
        for d in harness.LOG_DIRS:
            shutil.rmtree(d, ignore_errors=True)
    else:
        for d in harness.LOG_DIRS:
            print(f"  logs kept in {d}", file=sys.stderr)
    return 0 if result.wasSuccessful() and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
