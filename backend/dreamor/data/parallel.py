"""Map a function over items in worker processes, with a progress bar.

Workers are *spawned*, not forked: a forked child of a process that already used torch's
thread pool can deadlock. One worker (or one item) runs in-process.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor

from tqdm import tqdm


def parallel_map(fn: Callable, items: list, workers: int = 0, desc: str = "", quiet: bool = False, unit: str = "file") -> Iterator:
    """Yield fn(item) for each item, in order. ``workers`` 0 means all cores."""
    workers = min(workers or os.cpu_count() or 1, len(items)) or 1
    bar = tqdm(total=len(items), desc=desc, unit=unit, disable=quiet, file=sys.stderr)
    try:
        if workers == 1:
            results: Iterable = map(fn, items)
            for r in results:
                bar.update()
                yield r
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                for r in pool.map(fn, items, chunksize=max(1, min(16, len(items) // (4 * workers)))):
                    bar.update()
                    yield r
    finally:
        bar.close()
