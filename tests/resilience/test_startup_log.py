"""What the release gateway says about its balancing when it starts.

- The `gateway listening` line names the strategy as the settings spell it
  (`peak_ewma`, not the program's own name for it).
- Settings that only one strategy reads, set under another, are not an
  error (a config file may carry them for a later switch) but get a
  warning, so a typo in `balancer.strategy` does not go unnoticed.
"""

import time
import unittest

import harness as h

HASH_UNUSED = "balancer.hash.key is set but only the hash strategy reads it"
EWMA_UNUSED = "balancer.peak_ewma is set but only the peak_ewma strategy reads it"


class StartupLog(h.ProcessTest):
    def started(self, name, settings):
        gw = self.gateway(name, settings=settings)
        # The start-up lines are written before /readyz answers; give the
        # log writer a moment to flush them to the file.
        deadline = time.monotonic() + 5
        while "gateway listening" not in gw.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        return gw.output()

    def test_settings_of_another_strategy_are_warned_about(self):
        out = self.started(
            "round-robin-with-others",
            {"balancer.hash.key": "header:X-User", "balancer.peak_ewma.decay": "5s"},
        )
        self.assertIn("strategy=round_robin", out)
        self.assertIn(HASH_UNUSED, out)
        self.assertIn(EWMA_UNUSED, out)

    def test_settings_of_the_strategy_in_use_are_not(self):
        out = self.started("peak-ewma", {"balancer.strategy": "peak_ewma", "balancer.peak_ewma.decay": "5s"})
        self.assertIn("strategy=peak_ewma", out)
        self.assertNotIn(EWMA_UNUSED, out)
        self.assertNotIn(HASH_UNUSED, out)
        out = self.started("hash", {"balancer.strategy": "hash", "balancer.hash.key": "path"})
        self.assertIn("strategy=hash", out)
        self.assertNotIn(HASH_UNUSED, out)


if __name__ == "__main__":
    unittest.main()
