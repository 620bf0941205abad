"""What every stage shares: the run context it receives and the outcome it returns.

A stage is a plain function `run(table, ctx) -> StageOutcome`: it reads the columns it needs,
adds its own columns to `table` in place, rejects records through `records.reject`, and
returns what the report needs. A stage that needs the final kept set (metrics of the kept
synthetic records, after the share cap) also exposes `finalize(table, ctx) -> StageOutcome`,
which the runner calls once every stage has run. No stage keeps global state.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from checks import Check

from .config import Config

# texts -> (n, d) float32 array of L2-normalized embeddings
Embedder = Callable[[list[str]], np.ndarray]


@dataclass
class StageOutcome:
    details: dict[str, Any] = field(default_factory=dict)   # report.json "details.<stage>"
    metrics: dict[str, Any] = field(default_factory=dict)   # merged into report "metrics"
    checks: list[Check] = field(default_factory=list)       # gate checks


class Progress:
    """Progress bars on stderr, only for a person at a terminal (not in logs, not --quiet)."""

    def __init__(self, enabled: bool | None = None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled

    @contextmanager
    def bar(self, total: int, desc: str) -> Iterator[Callable[[int], None]]:
        if not self.enabled or total <= 0:
            yield lambda n=1: None
            return
        from tqdm.auto import tqdm
        with tqdm(total=total, desc=desc, unit="rec", file=sys.stderr, leave=False,
                  dynamic_ncols=True) as bar:
            yield bar.update

    def note(self, message: str) -> None:
        if self.enabled:
            print(message, file=sys.stderr, flush=True)


@dataclass
class RunContext:
    """What a stage may use besides the table: the config, progress, the embedder, and
    artifacts that one stage leaves for a later one (e.g. embeddings for the share cap)."""

    config: Config
    progress: Progress = field(default_factory=lambda: Progress(False))
    embedder: Embedder | None = None
    artifacts: dict[str, Any] = field(default_factory=dict)
