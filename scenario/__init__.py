"""Scenario runs: a load shape, timed backend faults and SLO gates, judged and reported."""
