"""breaker's benchmarks: `python -m bench [--quick] [--only NAME ...]` (also `make bench`).

Each benchmark is a module with `TITLE`, `GOAL_TEXT` and `run(result, workdir)`
(which fills in the `Result` that `python -m bench` made from them), measures its
figure as a ratio against a baseline taken in the same run, and writes
bench/results/<name>.json; docs/benchmarks.md is generated from those files.
Loopback only; every load is bounded in count and time.
"""

BENCHMARKS = (
    "hot_path",
    "redis_load",
    "api",
    "probe_scale",
    "detection",
    "fleet",
    "failover",
    "slow_clients",
    "pool",
    "false_alarms",
)
