"""How many torch CPU threads a refinement uses (layer 0: no torch import until asked to set it).

The networks are small: on the 2-core CPU one thread refines 1.1-1.8x faster than two in every row of
``dreamor bench`` (docs/benchmarks/threads/), so by default a process takes half the cores (one on a
2-core machine), leaving the rest to Blender or to other workers.
"""
from __future__ import annotations

import os


def default_threads(cores: int | None = None) -> int:
    """Half the CPU cores, at least one."""
    return max(1, (cores or os.cpu_count() or 1) // 2)


def use_threads(requested: int | None = None) -> int:
    """Set torch's CPU threads to ``requested`` (None or 0: :func:`default_threads`); returns the number set."""
    import torch

    n = requested if requested and requested > 0 else default_threads()
    torch.set_num_threads(n)
    return n
