"""Scenario runs: a load shape, timed backend faults and SLO gates, run
against the gateway and judged. `python3 -m scenario check|run|report|compare`
(scenario.cli). Importing the package loads nothing else, so the locustfile
can use scenario.histogram inside Locust.
"""
