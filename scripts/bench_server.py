"""Benchmark the backend's transport on loopback (results go in docs/benchmarks/server.md).

1. Load: 50 small jobs (60-123 frames) from 5 clients at once against a real backend
   process running the tiny test runner (tests/server/tiny_runner.py); every result is checked
   against the runner's own computation. Reports throughput and the backend's RSS.
2. Wire overhead: a 3,600-frame clip submitted and its result received, minus the
   runner's own time (measured inside the runner), with and without partial windows.
   The baseline, the same computation called in-process, is timed in the same run.

    .venv/bin/python scripts/bench_server.py [--repeats 20]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "server"))

from server_helpers import make_clip, spawn_backend  # noqa: E402
from tiny_runner import expected_for  # noqa: E402

from dreamor.server.client import Client  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load(conn: Path, pid: int, clients: int = 5, jobs_per_client: int = 10) -> dict:
    with Client.from_connection_file(conn) as c:
        c.hello()
        c.submit(**make_clip(60)).wait(timeout=30)  # warm-up
    before = rss_mib(pid)
    ok: list[bool] = []
    errors: list[BaseException] = []

    def work(ci: int) -> None:
        try:
            with Client.from_connection_file(conn, timeout=30) as client:
                clips = [make_clip(60 + 7 * j, seed=100 * ci + j) for j in range(jobs_per_client)]
                jobs = [client.submit(**clip) for clip in clips]
                for job, clip in zip(jobs, clips):
                    result = job.wait(timeout=120)
                    ok.append(all(np.array_equal(result.arrays[k], v) for k, v in expected_for(**clip).arrays().items()))
        except BaseException as exc:
            errors.append(exc)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return {
        "jobs": clients * jobs_per_client,
        "returned": len(ok),
        "correct": sum(ok),
        "seconds": elapsed,
        "jobs_per_s": len(ok) / elapsed,
        "rss_before_mib": before,
        "rss_after_mib": rss_mib(pid),
    }


def overhead(conn: Path, repeats: int, frames: int = 3600) -> dict:
    clip = make_clip(frames, seed=7)
    walls, runners = [], []
    with Client.from_connection_file(conn, timeout=30) as client:
        client.submit(**clip).wait(timeout=60)  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            result = client.submit(**clip).wait(timeout=60)
            walls.append(time.perf_counter() - t0)
            runners.append(result.metrics["runner_s"])
    over = sorted((w - r) * 1000 for w, r in zip(walls, runners))
    return {
        "runner_ms": statistics.median(runners) * 1000,
        "wall_ms": statistics.median(walls) * 1000,
        "overhead_median_ms": statistics.median(over),
        "overhead_p90_ms": over[int(0.9 * (len(over) - 1))],
        "overhead_max_ms": over[-1],
        "submit_mb": sum(np.asarray(v).nbytes for k, v in clip.items() if k != "fps") / 1e6,
        "result_mb": sum(v.nbytes for v in result.arrays.values()) / 1e6,
    }


def baseline_ms(frames: int = 3600, repeats: int = 20) -> float:
    clip = make_clip(frames, seed=7)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        expected_for(**clip)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        procs = {}
        try:
            for name, extra in {"load": ["--window", "40"], "whole": ["--window", "100000"], "windows": ["--window", "600"]}.items():
                procs[name] = spawn_backend(Path(tmp) / f"{name}.json", *extra)
            res = load(Path(tmp) / "load.json", procs["load"].pid)
            print(f"load: {res['returned']}/{res['jobs']} results, {res['correct']} correct, {res['seconds']:.2f} s, "
                  f"{res['jobs_per_s']:.1f} jobs/s; backend RSS {res['rss_before_mib']:.1f} -> {res['rss_after_mib']:.1f} MiB")
            for again in range(1, 4):
                res = load(Path(tmp) / "load.json", procs["load"].pid)
                print(f"load (round {again + 1}): {res['correct']}/{res['jobs']} correct, {res['jobs_per_s']:.1f} jobs/s; "
                      f"backend RSS {res['rss_before_mib']:.1f} -> {res['rss_after_mib']:.1f} MiB")
            base = baseline_ms()
            print(f"baseline: the tiny runner's computation in-process on 3600 frames: {base:.2f} ms (median)")
            for name in ("whole", "windows"):
                o = overhead(Path(tmp) / f"{name}.json", args.repeats)
                label = "result only" if name == "whole" else "6 partial windows + result"
                print(f"overhead 3600 frames ({label}; submit {o['submit_mb']:.2f} MB, result {o['result_mb']:.2f} MB): "
                      f"wall {o['wall_ms']:.1f} ms, runner {o['runner_ms']:.1f} ms; wall - runner: median {o['overhead_median_ms']:.1f} ms, "
                      f"p90 {o['overhead_p90_ms']:.1f} ms, max {o['overhead_max_ms']:.1f} ms; wall - in-process baseline: "
                      f"{o['wall_ms'] - base:.1f} ms (median, {args.repeats} runs)")
        finally:
            for proc in procs.values():
                proc.terminate()
                proc.wait(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
