"""`python -m bench`: run the benchmarks, write bench/results/*.json and docs/benchmarks.md."""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench import BENCHMARKS
from bench._common import BENCH_DIR, Result
from bench._report import render
from testbed.procs import require

REPO = BENCH_DIR.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="a few seconds per benchmark (tests, smoke runs)"
    )
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these")
    parser.add_argument(
        "--render", action="store_true", help="only regenerate the Markdown from existing results"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="results directory (default bench/results, or bench/results/quick with --quick)",
    )
    parser.add_argument(
        "--docs",
        type=Path,
        help="Markdown report to write (default docs/benchmarks.md; none with --quick)",
    )
    args = parser.parse_args(argv)
    out: Path = args.out or (BENCH_DIR / "results" / ("quick" if args.quick else ""))
    docs: Path | None = args.docs or (None if args.quick else REPO / "docs" / "benchmarks.md")
    if args.render:
        target = docs or REPO / "docs" / "benchmarks.md"
        target.write_text(render(out))
        print(f"bench: wrote {target}")
        return 0
    names = args.only or list(BENCHMARKS)
    require("kamailio", "kamcmd", "sipp", "redis-server", "redis-benchmark", "wrk")
    failures = 0
    with tempfile.TemporaryDirectory(prefix="breaker-bench-") as tmp:
        for name in names:
            print(f"bench: {name} ...", flush=True)
            module = importlib.import_module(f"bench.{name}")
            result = Result(name, module.TITLE, module.GOAL_TEXT, args.quick)
            started = time.monotonic()
            try:
                module.run(result, Path(tmp) / name)
            except Exception as exc:  # one broken benchmark must not hide the others
                failures += 1
                traceback.print_exc()
                result.met, result.summary = None, f"failed: {exc}"
                result.notes.append("the benchmark raised; see the traceback in its output")
            result.duration_s = time.monotonic() - started
            path = result.write(out)
            verdict = {True: "goal met", False: "GOAL MISSED", None: "no verdict"}[result.met]
            print(
                f"bench: {name}: {verdict}: {result.summary} ({result.duration_s:.0f} s) -> {path}"
            )
    if docs is not None:
        docs.parent.mkdir(parents=True, exist_ok=True)
        docs.write_text(render(out))
        print(f"bench: wrote {docs}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
