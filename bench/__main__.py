"""``python -m bench run --mode quick|full`` and ``python -m bench profile``; see bench/README.md."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path
from typing import Any

from bench import harness, report

logger = logging.getLogger("bench")

OUT = Path(__file__).resolve().parent / "out"


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run it."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="measure every installed server")
    run.add_argument("--mode", choices=sorted(harness.PLANS), default="quick")
    run.add_argument("--servers", help="comma-separated subset, e.g. raw,ours")
    run.add_argument("--repetitions", type=int, help="override the mode's repetitions")
    run.add_argument("--fanout-sizes", help="override the mode's fan-out sizes, e.g. 1000,10000")
    run.add_argument(
        "--pythonpath", help="put this first on the servers' path (a scratch copy of the package)"
    )
    run.add_argument("--no-redis", action="store_true", help="skip the cross-process scenario")
    run.add_argument(
        "--uvloop", action="store_true", help="also measure ours on the uvloop event loop (ours-uvloop)"
    )
    run.add_argument("--output", type=Path, help="write the Markdown report there (default: print it)")
    run.add_argument("--json", type=Path, help="where to save the raw results (default: bench/out/)")
    rerender = commands.add_parser("render", help="turn a saved results file into Markdown")
    rerender.add_argument("results", type=Path)
    rerender.add_argument("--output", type=Path)
    versus = commands.add_parser("compare", help="medians of runs before and after a change")
    versus.add_argument("--before", type=Path, nargs="+", required=True)
    versus.add_argument("--after", type=Path, nargs="+", required=True)
    profile = commands.add_parser("profile", help="run one server under py-spy while it takes load")
    profile.add_argument("--server", default="ours")
    profile.add_argument("--scenario", choices=("echo", "fanout"), default="echo")
    profile.add_argument("--pythonpath")
    profile.add_argument("--output", type=Path, default=OUT / "profile.txt")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    if args.command == "profile":
        from bench.profiling import profile as run_profile

        run_profile(args.server, args.scenario, args.output, args.pythonpath)
        return 0
    if args.command == "compare":
        before = [report.load(path) for path in args.before]
        after = [report.load(path) for path in args.after]
        sys.stdout.write(report.compare(before, after))
        return 0
    if args.command == "render":
        results = report.load(args.results)
    else:
        plan = harness.PLANS[args.mode]
        overrides: dict[str, Any] = {}
        if args.servers:
            overrides["servers"] = tuple(args.servers.split(","))
        if args.repetitions:
            overrides["repetitions"] = args.repetitions
        if args.fanout_sizes:
            overrides["fanout_sizes"] = tuple(int(size) for size in args.fanout_sizes.split(","))
        if args.uvloop:
            overrides["servers"] = harness.with_uvloop(overrides.get("servers", plan.servers))
        plan = dataclasses.replace(plan, **overrides)
        results = harness.run_plan(plan, args.pythonpath, redis=not args.no_redis)
        path = args.json or OUT / f"{plan.name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
        harness.save(results, path)
        logger.info("Raw results in %s", path)
    text = report.render(results)
    if args.output:
        args.output.write_text(text)
        logger.info("Report in %s", args.output)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
