"""`dreamor clean PATH... --out DIR`: refine every take of a library, on a local process pool or a Ray cluster.

One progress bar over the library (takes done, frames per second, time left); a take that fails is reported
with its reason and does not stop the others; the exit status is 0 only if every take succeeded. Takes whose
outputs are up to date (same input, same settings, same models) are skipped, so an interrupted run resumes.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from tqdm import tqdm

from ..errors import DreamorError, OutputFileError
from ..files import check_writable
from ..threads import default_threads
from .library import (
    CleanSettings,
    Take,
    clean_take,
    find_takes,
    fingerprint,
    finished_row,
    init_worker,
    settings_key,
    worker_clean,
)
from .report import write_report

RAY_MISSING = "--ray needs Ray, an optional extra: pip install 'dreamor[ray]' (or pip install ray)"


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    from ..evaluate.run import resolve_device

    resolve_device(name)
    return name


class Progress:
    """The one bar over the library: takes done (skipped ones count), frames/s of the takes cleaned now."""

    def __init__(self, total: int, done: int, quiet: bool):
        self.bar = tqdm(total=total, initial=done, desc="clean", unit="take", disable=quiet, file=sys.stderr)
        self.t0, self.frames = time.perf_counter(), 0

    def took(self, row: dict) -> None:
        self.frames += int(row.get("frames", 0)) if row["status"] == "ok" else 0
        rate = self.frames / max(time.perf_counter() - self.t0, 1e-9)
        failed = "" if row["status"] == "ok" else f"; failed: {row['take']}"
        self.bar.set_postfix_str(f"{rate:.0f} frames/s{failed}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def run_local(todo: list[tuple[Take, str]], out_dir: Path, settings: CleanSettings, workers: int,
              progress: Progress, rows: list[dict]) -> None:
    """The takes on this machine: in this process (1 worker) or a pool with one model copy per worker,
    the CPU threads split between them (one worker: ``threads.default_threads``). Each take's row is appended to ``rows`` as it finishes."""
    threads = default_threads() if workers == 1 else max(1, (os.cpu_count() or 1) // workers)
    if workers == 1:
        import torch

        from ..refine.api import load_models

        torch.set_num_threads(threads)
        models = load_models(device=settings.device)
        for take, print_ in todo:
            rows.append(clean_take(take, out_dir, settings, models, print_))
            progress.took(rows[-1])
        return
    import concurrent.futures as cf
    import multiprocessing as mp

    from ..refine.api import MODELS_DIR_ENV

    ctx = mp.get_context("spawn")  # torch and fork do not mix
    with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=init_worker,
                                initargs=(settings.device, threads, os.environ.get(MODELS_DIR_ENV))) as pool:
        futures = [pool.submit(worker_clean, take, out_dir, settings, print_) for take, print_ in todo]
        try:
            for fut in cf.as_completed(futures):
                rows.append(fut.result())
                progress.took(rows[-1])
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def run_ray(todo: list[tuple[Take, str]], out_dir: Path, settings: CleanSettings, address: str,
            progress: Progress, rows: list[dict]) -> None:
    """The takes spread over a Ray cluster's workers (``address``: a cluster, 'auto', or 'local' to start one
    here). Every worker loads the models once and writes its outputs to ``out_dir``, which must be a folder
    all the cluster's machines see."""
    try:
        import ray
    except ImportError:
        raise DreamorError(RAY_MISSING) from None
    from ..refine.api import MODELS_DIR_ENV, models_dir

    env = {"env_vars": {MODELS_DIR_ENV: str(models_dir())}}
    ray.init(address=None if address == "local" else address, runtime_env=env, ignore_reinit_error=True,
             include_dashboard=False, log_to_driver=False)
    try:
        gpus = ray.cluster_resources().get("GPU", 0) > 0 and settings.device in ("auto", "cuda")
        if settings.device == "cuda" and not gpus:
            raise DreamorError("--device cuda but the Ray cluster has no GPU; use --device auto or cpu")
        on_worker = replace(settings, device="cuda" if gpus else "cpu")

        @ray.remote(num_cpus=1, num_gpus=1 if gpus else 0)
        class Worker:
            def __init__(self):
                init_worker(on_worker.device, 1, None)

            def clean(self, take, print_):
                return worker_clean(take, out_dir, on_worker, print_)

        n = max(1, min(len(todo), int(ray.cluster_resources().get("GPU" if gpus else "CPU", 1))))
        actors = [Worker.remote() for _ in range(n)]
        pending = {actors[i % n].clean.remote(take, p): i for i, (take, p) in enumerate(todo)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            pending.pop(done[0])
            rows.append(ray.get(done[0]))
            progress.took(rows[-1])
    finally:
        ray.shutdown()


def run_clean(args) -> int:
    paths = [Path(p) for p in args.paths]
    out_dir = Path(args.out)
    check_writable(out_dir, folder=True)
    if args.workers is None:  # one per core: on the 2-core CPU, 2 workers x 1 thread cleaned 2.4-2.7x as fast as
        args.workers = min(os.cpu_count() or 1, 8)  # 1 worker x 2 threads (docs/benchmarks/clean.md)
    if args.workers < 1:
        raise DreamorError("--workers must be at least 1")
    # On Ray the workers pick their device (a GPU where the cluster has them); here it must exist now.
    settings = CleanSettings(occlude=args.occlude, preset=args.preset, settings=tuple(args.set or ()),
                             device=args.device if args.ray else _device(args.device))
    settings.check()
    from ..refine.api import models_dir

    takes = find_takes(paths, out_dir)
    if not takes:
        raise DreamorError(f"no motion files (.bvh, .bvh.gz, .npz) under {', '.join(map(str, paths))}")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputFileError(f"{out_dir}: cannot make the output folder ({exc.strerror or exc})") from None
    key = settings_key(settings, models_dir())
    rows, todo = [], []
    for take in takes:
        print_ = fingerprint(take, key)
        row = finished_row(take, out_dir, print_)
        if row is not None:
            rows.append({**row, "skipped": True})
        else:
            todo.append((take, print_))
    workers = max(1, min(args.workers, len(todo)))
    if not args.quiet:
        print(f"{len(takes)} take(s) under {', '.join(map(str, paths))}: {len(rows)} already up to date, "
              f"{len(todo)} to clean ({settings.preset} preset, {settings.device}, "
              f"{'Ray ' + args.ray if args.ray else f'{workers} worker(s)'})", file=sys.stderr)
    t0 = time.perf_counter()
    progress = Progress(len(takes), len(rows), args.quiet)
    interrupted = False
    try:
        if todo and args.ray:
            run_ray(todo, out_dir, settings, args.ray, progress, rows)
        elif todo:
            run_local(todo, out_dir, settings, workers, progress, rows)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.close()
    order = {t.name: i for i, t in enumerate(takes)}
    rows.sort(key=lambda r: order.get(r["take"], 0))
    settings_out = {**asdict(settings), "paths": [str(p) for p in paths], "models": key["models"],
                    "workers": workers, "ray": args.ray}
    report = write_report(out_dir, rows, settings_out, time.perf_counter() - t0, workers)
    t = report["totals"]
    if interrupted:
        print(f"interrupted: {t['ok']} of {t['takes']} takes are done; run the same command again to go on",
              file=sys.stderr)
        return 130
    for r in rows:
        if r["status"] == "failed":
            reason = r["reason"].splitlines()[0]
            print(f"failed: {reason if r['source'] in reason else r['source'] + ': ' + reason}", file=sys.stderr)
    if not args.quiet:
        written = ", ".join(n for n in ("report.md", "report.json", "faults.png") if (out_dir / n).exists())
        print(f"{t['ok']} of {t['takes']} takes cleaned ({t['skipped_up_to_date']} were up to date), {t['failed']} "
              f"failed; wrote {out_dir}/ ({written})")
    return 0 if t["failed"] == 0 else 1

