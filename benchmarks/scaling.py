"""Wall time of one search on 1 and 2 local workers and on a local Ray instance with 2 CPUs.

The same search (built-in designer, CartPole, same seed) three ways, one after the other in this
process: ``--executor local --workers 1``, ``--executor local --workers 2``, ``--executor ray`` with a
local Ray instance of 2 CPUs (started by the executor, loopback only). Prints each wall time and the
ratios: speed-up of 2 workers over 1 (target ≥ 1.7× on 2 free cores) and Ray's overhead over the
2-worker pool (target ≤ 10 %). Ray's start-up (a few seconds) is part of its wall time, as a user sees it.
With ``--cluster``, a fourth arm runs the search on an already running Ray cluster (the tests' loopback cluster:
a head and a second node of one CPU each, started before the clock starts), as a user with a cluster runs
``--ray-address HOST:PORT``: the executor's own overhead, without starting Ray.

    python benchmarks/scaling.py                                        # 4 iterations × 4 samples
    python benchmarks/scaling.py --iterations 1 --samples 2 --timesteps 2048   # a quick look
    python benchmarks/scaling.py --cluster                              # and on a running 2-node cluster
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from rewardsmith.designer import BuiltinDesigner
from rewardsmith.loop import SearchConfig, run_search
from rewardsmith.runs import RunDir
from rewardsmith.task import TaskRef


def timed_search(root: Path, executor: str, workers: int, args: argparse.Namespace,
                 ray_address: str | None = None) -> float:
    config = SearchConfig(iterations=args.iterations, samples=args.samples, timesteps=args.timesteps, seed=args.seed,
                          workers=workers, media=False, executor=executor, ray_address=ray_address)
    run = RunDir.create(root / f"{executor}-{workers}-{'cluster' if ray_address else 'own'}", "cartpole",
                        "keep the pole upright")
    started = time.perf_counter()
    state = run_search(run, TaskRef("cartpole", "keep the pole upright"), BuiltinDesigner(), config)
    seconds = time.perf_counter() - started
    if state.status != "finished":
        raise SystemExit(f"{executor} × {workers}: the search ended {state.status}: {state.stop_reason}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--timesteps", type=int, default=None, help="PPO steps per candidate (default: the spec's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cluster", action="store_true", help="also run on a running 2-node loopback Ray cluster")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{args.iterations} iterations × {args.samples} samples, timesteps {args.timesteps or 'spec default'}, "
          f"{cores} core(s) available")
    with tempfile.TemporaryDirectory(prefix="rewardsmith-scaling-") as tmp:
        one = timed_search(Path(tmp), "local", 1, args)
        print(f"local pool, 1 worker : {one:7.1f} s")
        two = timed_search(Path(tmp), "local", 2, args)
        print(f"local pool, 2 workers: {two:7.1f} s")
        ray = timed_search(Path(tmp), "ray", 2, args)
        print(f"Ray, 2 CPUs          : {ray:7.1f} s")
        on_cluster = _on_cluster(Path(tmp), args) if args.cluster else None
    print(f"speed-up 2 workers / 1 worker: {one / two:.2f}×   (target ≥ 1.7× on 2 free cores)")
    print(f"Ray / local pool (2 each)    : {ray / two:.2f}×   (overhead {100 * (ray / two - 1):+.0f} %, target ≤ +10 %)")
    if on_cluster is not None:
        print(f"running cluster / local pool : {on_cluster / two:.2f}×   (overhead {100 * (on_cluster / two - 1):+.0f} %, "
              "Ray already started)")


def _on_cluster(root: Path, args: argparse.Namespace) -> float:
    """The search on the tests' loopback cluster (two nodes of one CPU), started before the clock starts."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.ray_cluster import RAY_ENV, Cluster

    os.environ.update(RAY_ENV)
    cluster = Cluster(root)
    try:
        seconds = timed_search(root, "ray", 2, args, ray_address=cluster.address)
    finally:
        cluster.stop()
    print(f"Ray cluster running, 2×1 CPU: {seconds:7.1f} s")
    return seconds


if __name__ == "__main__":
    main()
