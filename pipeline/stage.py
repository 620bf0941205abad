"""What every stage is and what stages share.

A stage is an object with a name, the columns of the records table it reads and writes, the
reason codes it can give, a `setup(ctx)` step for heavy things (a model), and
`run(table, ctx) -> StageOutcome`: it adds its columns to `table` in place, rejects records
through `records.reject`, and returns what the report needs. The runner loops over a list of
stages in order (`pipeline.build_stages`), times each step and counts the rejections; a stage
never counts its own.

What one stage hands a later one is a typed value on the context, set by the stage that makes
it and read by the ones after: `RunContext.embeddings` (the `Embeddings` of the embed stage,
read by the share cap and the kept-set measurement). Nothing is passed through string keys.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Protocol

import numpy as np
import pandas as pd

from .checks import Check
from .config import Config
from .records import Reason

if TYPE_CHECKING:  # pragma: no cover - types only; fidelity imports numpy-heavy code
    from .fidelity import RealClusters, SetMeter

# texts -> (n, d) float32 array of L2-normalized embeddings
Embedder = Callable[[list[str]], np.ndarray]


@dataclass
class StageOutcome:
    details: dict[str, Any] = field(default_factory=dict)   # report.json "details.<stage>"
    metrics: dict[str, Any] = field(default_factory=dict)   # merged into report "metrics"
    checks: list[Check] = field(default_factory=list)       # gate checks


@dataclass
class Embeddings:
    """What the embed stage learned of the records in embedding space, for the stages after
    it: the vectors, which records have one, the real reference / hold-out split, the real
    clusters, and a meter that measures any set of rows against the real data."""

    vectors: np.ndarray          # (records, d) float32 unit rows; zero rows where not embedded
    embedded: np.ndarray         # bool per record
    clusters: "RealClusters"     # k-means of the reference, with its rare clusters
    reference_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    holdout_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # Fidelity / rare coverage / Vendi of a set beside the hold-out (None: not measured).
    meter: "SetMeter | None" = None


class Progress:
    """Progress bars on stderr, only for a person at a terminal (not in logs, not --quiet)."""

    def __init__(self, enabled: bool | None = None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled

    @contextmanager
    def bar(self, total: int, desc: str, initial: int = 0) -> Iterator[Callable[[int], None]]:
        """A bar of `total` records showing records/s and the time left. `initial` records
        are done before it starts (served from a cache): they count towards the total but
        not towards the rate, so the ETA measures the work still to do."""
        if not self.enabled or total <= 0 or initial >= total:
            yield lambda n=1: None
            return
        from tqdm.auto import tqdm
        with tqdm(total=total, initial=initial, desc=desc, unit="rec", file=sys.stderr,
                  leave=False, dynamic_ncols=True, smoothing=0.1,
                  bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} "
                             "[{elapsed}<{remaining}, {rate_fmt}]") as bar:
            yield bar.update

    def note(self, message: str) -> None:
        if self.enabled:
            print(message, file=sys.stderr, flush=True)


class SerialTasks:
    """How a stage runs independent pieces of its work (the folds of a cross-fit, runs of
    records to score): `map(fn, items, shared)` is `[fn(item, shared) for item in items]`,
    in order. This one, the local engine's, runs them one after another in this process;
    the Ray engine's (`engines.ray_tasks.RayTasks`) runs each piece as a Ray task, `shared`
    sent once. So `fn` must be a module-level function and every piece must depend on
    nothing but its item and `shared`, and give the same bits on one thread as on many (no
    matrix products, whose last bits follow the thread count): then both give the same
    results. `workers` is how many pieces can run at once."""

    workers = 1

    def map(self, fn: Callable[[Any, Any], Any], items: list, shared: Any = None) -> list:
        return [fn(item, shared) for item in items]


@dataclass
class RunContext:
    """What a stage may use besides the table: the config, progress, the embedder, the
    engine's way to run independent pieces of work, and the typed values earlier stages
    produced."""

    config: Config
    progress: Progress = field(default_factory=lambda: Progress(False))
    embedder: Embedder | None = None
    embeddings: Embeddings | None = None
    tasks: SerialTasks = field(default_factory=SerialTasks)


class Stage(Protocol):
    """One step of the pipeline. `reads` / `writes` name columns of the records table;
    `reasons` the codes the stage can give. `setup` loads what is heavy (a model) and is
    timed apart from `run`."""

    name: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    reasons: tuple[Reason, ...]

    def setup(self, ctx: RunContext) -> None: ...

    def run(self, table: pd.DataFrame, ctx: RunContext) -> StageOutcome: ...


class BaseStage:
    """Defaults for a stage: nothing to set up. Subclasses set the class attributes."""

    name: ClassVar[str] = ""
    reads: ClassVar[tuple[str, ...]] = ()
    writes: ClassVar[tuple[str, ...]] = ()
    reasons: ClassVar[tuple[Reason, ...]] = ()

    def setup(self, ctx: RunContext) -> None:
        return None

    def run(self, table: pd.DataFrame, ctx: RunContext) -> StageOutcome:  # pragma: no cover
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What `synthgate stages` prints for this stage."""
        doc = (type(self).__doc__ or "").strip().split("\n\n")[0]
        return {"name": self.name, "what": " ".join(doc.split()),
                "reads": list(self.reads), "writes": list(self.writes),
                "reasons": [r.value for r in self.reasons]}
