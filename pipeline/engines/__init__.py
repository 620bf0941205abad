"""Executors that run the same stage list (DESIGN.md section 8).

- `local`: one process, the records as one pandas table, the stages run one after the other
  by `run_stages` (a straight loop). The default; it never imports Ray.
- `ray`: Ray Data (`pip install "synthgate[ray]"`), on a local Ray instance or a cluster.
  Each stage's work is split the way datatrove and NeMo Curator split theirs: per-record
  batch functions that need only broadcast fitted state, and whole-dataset steps on compact
  columns. Both engines call the same functions (dedup.record_features, dedup.decide_exact,
  minhash.equal_key_runs, dedup.JaccardCheck + dedup.decide_near,
  rewording.nearest_jaccard): the local engine over the whole table, the Ray engine per
  block or per partition of complete groups, so the decisions are the same. The embedding
  model runs in a Ray actor pool (`ray_embed`), fed the local engine's chunks, and the
  pieces the later stages hand to `RunContext.tasks` run as Ray tasks (`ray_tasks`); the
  local engine runs those pieces one after another (`stage.SerialTasks`).
"""


def return_freed_memory() -> None:
    """Hands memory the process has freed back to the system: Arrow's pool's unused pages,
    and glibc's free heap (`malloc_trim`; a no-op where the C library is not glibc)."""
    import ctypes
    import sys

    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    try:
        ctypes.CDLL(None).malloc_trim(0)    # the process's own symbols: the C library's
    except (OSError, AttributeError):
        pass
