"""Embedding on Ray: the model in an actor pool, the rest of the embed stage unchanged.

The embedding model is the whole cost of a CPU run (all-MiniLM-L6-v2: 25-50 fine-tuning-sized
records/s on 2 threads), and it is the only per-record work of the embed stage and of the
decontamination's meaning test that does not need the other records. So on `--engine ray`
the stages keep their one definition (`distance.KnnDistanceStage`, `decontaminate`) and get a
`RayEmbedder` as the run's embedder: `embed.embed_texts` hands it every text at once
(`embed_all`), and it runs them through `Dataset.map_batches` over a pool of actors, each
holding one copy of the model (loaded once per actor, not per batch): one actor per GPU when
the cluster has GPUs, else one per `engine.embed_actor_cpus` CPUs.

Same vectors as the local engine: the texts are cut into the same chunks the local engine
embeds one call at a time (longest first, `embed.EMBED_CHUNK` texts), and an actor embeds
each chunk in one call of the same embedder (`ModelEmbedder`, cache included, or the one
given to `run()`), so with nothing cached every batch the model sees holds the same texts,
with the same padding, as on the local engine. (With part of the texts cached, both engines
serve those from the cache and batch the rest; the local engine regroups the rest across
chunks, so a batch may differ there: float noise, about 1e-7 on a cosine.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..config import Config
from ..embed import EMBED_CHUNK, ModelEmbedder, checked_vectors, length_order
from ..stage import Progress

# Chunks per block handed to an actor: enough work per task (about 2,000 texts) that Ray's
# per-task cost is noise beside the model's, few enough that the actors share the load.
CHUNKS_PER_BLOCK = 8


class _EmbedActor:
    """One model per actor; each call embeds the chunks of a block, one embedder call each."""

    def __init__(self, embedder: Callable | None, config: Config, threads: int):
        if embedder is None:
            embedder = ModelEmbedder.from_config(config.embed)
            embedder.threads = threads
        self.embedder = embedder

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        counted = isinstance(self.embedder, ModelEmbedder)
        before = (self.embedder.encoded, self.embedder.cached) if counted else (0, 0)
        rows, vectors = [], []
        chunk = batch["chunk"].to_numpy()
        for c in np.unique(chunk).tolist():
            at = chunk == c
            vecs = checked_vectors(self.embedder(batch["text"][at].tolist()), int(at.sum()))
            rows.append(batch["i"].to_numpy()[at])
            vectors.append(vecs)
        encoded = np.zeros(len(batch), np.int64)
        cached = np.zeros(len(batch), np.int64)
        if counted and len(batch):
            encoded[0] = self.embedder.encoded - before[0]
            cached[0] = self.embedder.cached - before[1]
        vecs = np.concatenate(vectors) if vectors else np.zeros((0, 0), np.float32)
        # how the model ran, as the actor's node resolved it (a GPU node: torch on cuda)
        backend = self.embedder.describe() if counted else ""
        return pd.DataFrame({"i": np.concatenate(rows) if rows else np.zeros(0, np.int64),
                             "vec": [v.tobytes() for v in vecs], "dim": vecs.shape[1],
                             "encoded": encoded, "cached": cached, "backend": backend})


def _ship_user_code() -> None:
    """An embedder defined in the user's own code (a script, a test module: not an installed
    package, not the standard library) is sent to the actors with that code: the workers,
    possibly on other machines, could not import those modules by name. Every such module
    loaded goes by value, since the embedder may hold objects of several."""
    import sys
    import sysconfig

    from ray import cloudpickle

    installed = tuple(str(Path(p).resolve()) for p in {
        sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"],
        sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not path or name == "__main__" or name.split(".")[0] == "synthgate":
            continue
        path = str(Path(path).resolve())
        if path.endswith(".py") and not path.startswith(installed) \
                and "site-packages" not in path:
            cloudpickle.register_pickle_by_value(module)   # Python source only


class RayEmbedder:
    """The run's embedder on Ray: `embed_all(texts, progress)` embeds them in the actor pool
    (module docstring); calling it embeds a few texts the same way."""

    def __init__(self, config: Config, ray, embedder: Callable | None = None):
        self.config = config
        self.ray = ray
        self.given = embedder           # the Python API's embedder, shipped to the actors
        if embedder is not None:
            _ship_user_code()
        self.model = None if embedder is not None else ModelEmbedder.from_config(config.embed)
        self.encoded = 0
        self.cached = 0
        self.actors = 0
        self.backends: set[str] = set()

    def pool(self) -> dict[str, Any]:
        """The actor pool's size and each actor's resources: one actor per GPU when the
        cluster has GPUs (and the model may use one), else one per `embed_actor_cpus` CPUs."""
        resources = self.ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        cpus = int(resources.get("CPU", 1))
        if gpus and self.given is None and self.config.embed.device in ("auto", "cuda"):
            return {"concurrency": gpus, "num_gpus": 1, "num_cpus": 1, "threads": 1}
        threads = max(1, min(self.config.engine.embed_actor_cpus, cpus))
        return {"concurrency": max(1, cpus // threads), "num_gpus": 0, "num_cpus": threads,
                "threads": threads}

    def embed_all(self, texts: list[str], progress: Progress) -> np.ndarray:
        n = len(texts)
        if not n:
            return np.zeros((0, 0), dtype=np.float32)
        pool = self.pool()
        self.actors = pool["concurrency"]
        order = length_order(texts)
        chunk = np.empty(n, dtype=np.int64)
        chunk[order] = np.arange(n) // EMBED_CHUNK
        # Blocks of whole chunks, at most CHUNKS_PER_BLOCK and enough for every actor,
        # dealt round robin: chunk c goes to block c % blocks, so each block holds long and
        # short texts alike (cut in order, the first actor got all the longest ones).
        chunks = -(-n // EMBED_CHUNK)
        count = min(chunks, max(self.actors, -(-chunks // CHUNKS_PER_BLOCK)))
        ranked = chunk[order]   # the chunk of each text, longest first
        blocks = []
        for b in range(count):
            rows = order[ranked % count == b]
            blocks.append(pd.DataFrame({"i": rows, "chunk": chunk[rows],
                                        "text": [texts[i] for i in rows]}))
        import ray.data

        vectors = (ray.data.from_pandas(blocks)
                   .map_batches(_EmbedActor, batch_size=None, batch_format="pandas",
                                fn_constructor_kwargs={"embedder": self.given,
                                                       "config": self.config,
                                                       "threads": pool["threads"]},
                                # one block at a time per actor: queued on a busy
                                # actor, a block waits while another actor idles
                                compute=ray.data.ActorPoolStrategy(
                                    size=pool["concurrency"], max_tasks_in_flight_per_actor=1),
                                num_cpus=pool["num_cpus"], num_gpus=pool["num_gpus"] or None))
        out: np.ndarray | None = None
        desc = f"embed on Ray ({self.actors} actors)"
        with progress.bar(n, desc) as update:
            for batch in vectors.iter_batches(batch_size=None, batch_format="pandas"):
                if not len(batch):
                    continue
                dim = int(batch["dim"].iat[0])
                if out is None:
                    out = np.zeros((n, dim), dtype=np.float32)
                out[batch["i"].to_numpy()] = np.frombuffer(
                    b"".join(batch["vec"].tolist()), dtype=np.float32).reshape(len(batch), dim)
                self.encoded += int(batch["encoded"].sum())
                self.cached += int(batch["cached"].sum())
                self.backends.update(b for b in batch["backend"].tolist() if b)
                update(len(batch))
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)

    def __call__(self, texts: list[str]) -> np.ndarray:
        return self.embed_all(list(texts), Progress(False))

    def details(self) -> dict[str, Any]:
        """What the embed stage's report details say of the embedder: what the local
        engine's says (the engines' reports agree), the counts added up over the actors."""
        if self.model is None:
            return {}
        return {"model": self.model.model or "all-MiniLM-L6-v2 (bundled)",
                "backend": ", ".join(sorted(self.backends)) or self.model.describe(),
                "encoded": self.encoded, "from_cache": self.cached}
