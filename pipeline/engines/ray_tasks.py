"""Independent pieces of a stage's work as Ray tasks (`stage.SerialTasks` on Ray).

Some stages still run on the driver with every record (see `ray._on_driver`), but much of
their cost is pieces that need nothing but their own input and some fitted state: the folds
of the off-distribution scorer's cross-fit, the text signals of runs of records. A stage
hands those to `ctx.tasks.map(fn, items, shared)`; on `--engine ray` each item is a Ray task
of one CPU, scheduled by Ray over the cluster, with `shared` (the texts, a fitted model) put
in the object store once and read by every task. The functions are the stage's own and do
no matrix products (whose last bits follow a task's one thread; see `stage.SerialTasks`), so
the results are what the local engine's serial loop gives, in the same order.
"""

from __future__ import annotations

from typing import Any, Callable

from . import return_freed_memory
from ..stage import SerialTasks


def _piece(fn: Callable[[Any, Any], Any], item: Any, shared: Any) -> Any:
    try:
        return fn(item, shared)
    finally:
        # a fold's fit builds arrays of its characters: give the worker's heap back
        return_freed_memory()


class RayTasks(SerialTasks):
    """`map` runs every item as a task of one CPU; the results come back in item order."""

    def __init__(self, ray):
        self.ray = ray
        self.workers = max(int(ray.cluster_resources().get("CPU", 1)), 1)
        self._remote = ray.remote(num_cpus=1)(_piece)

    def map(self, fn: Callable[[Any, Any], Any], items: list, shared: Any = None) -> list:
        if not items:
            return []
        ref = self.ray.put(shared)
        return self.ray.get([self._remote.remote(fn, item, ref) for item in items])
