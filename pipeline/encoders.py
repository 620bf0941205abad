"""Sentence encoders: one sentence-transformers model run by torch or by ONNX Runtime.

On CPU the encoder is the whole cost of a default run, and torch's eager fp32 `encode` is not
the fastest way to run a small BERT: ONNX Runtime fuses the attention and layer-norm kernels,
and with int8 dynamic quantization of the weights the matrix products use integer kernels.
So a model whose pipeline is the common one -- Transformer, then mean (or CLS) pooling, then
(optionally) normalization -- is exported once to ONNX at first use (into the embedding cache
directory; nothing is downloaded) and run by ONNX Runtime. Texts are tokenized by the model's
own fast tokenizer (`tokenizers`, the library behind transformers' fast tokenizers, with the
truncation sentence-transformers uses), sorted by token count and batched, so padding is at
most a few tokens a text.

Backends (`[embed] backend`):

* `torch`: sentence-transformers' own `encode`, fp32 (the reference);
* `onnx`: ONNX Runtime, fp32 weights (the same numbers up to float rounding);
* `onnx-int8`: ONNX Runtime with int8 dynamic quantization of the weights;
* `auto` (the default): on a GPU, torch in fp16 with large batches; on CPU, the fastest backend
  that benchmarks/embed.py accepted (decisions agree with fp32 torch on real text, see the
  README's Performance section): `AUTO_CPU_BACKEND` = `onnx`, falling back to torch when the
  model's pipeline is not one the ONNX path reproduces or ONNX Runtime is not installed.

Vectors of different backends differ in their last digits (int8: more), so the embedding
cache keys on the backend as well as the model (`backend_key`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import ConfigError

BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
# The CPU backend `auto` picks, measured by benchmarks/embed.py (records/s and agreement with
# fp32 torch on real sentences; README "Performance").
# int8 dynamic quantization runs ~2x faster again but was rejected: its top-5 real neighbours
# agreed with fp32 on 0.74 (per-tensor) / 0.88 (per-channel) of them, against the 0.95 asked.
AUTO_CPU_BACKEND = "onnx"
# On a GPU, `auto` encodes in fp16 with batches of at least this many texts.
GPU_MIN_BATCH = 256
ONNX_OPSET = 17
# Bumped when the export or quantization changes, so cached files and vectors are remade.
ONNX_FORMAT = 2


class BackendError(ConfigError):
    """A backend that cannot run this model here; the message says why and what to do (a
    usage error: exit 2, before any output is written)."""


@dataclass(frozen=True)
class PoolingSpec:
    """What the ONNX path must reproduce of a sentence-transformers model directory."""

    mode: str            # "mean" or "cls"
    normalize: bool
    max_seq_length: int
    strip: bool = True   # sentence-transformers strips each text before tokenizing


def pooling_spec(model_dir: str | Path) -> PoolingSpec | None:
    """The model's pipeline when it is Transformer -> mean/CLS Pooling [-> Normalize] with a
    fast tokenizer file, which the ONNX path reproduces exactly; None for anything else."""
    model_dir = Path(model_dir)
    try:
        modules = json.loads((model_dir / "modules.json").read_text())
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
            return None
        if modules[0].get("path", "") != "" or not (model_dir / "tokenizer.json").exists():
            return None
        pooling = json.loads((model_dir / modules[1]["path"] / "config.json").read_text())
        modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
        mode = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}.get(
            modes[0]) if len(modes) == 1 else None
        if mode is None:
            return None
        config = json.loads((model_dir / "sentence_bert_config.json").read_text())
        if config.get("do_lower_case"):
            return None  # lower-casing outside the tokenizer: not reproduced here
        return PoolingSpec(mode=mode, normalize=kinds[-1] == "Normalize",
                           max_seq_length=int(config.get("max_seq_length") or 512))
    except (OSError, ValueError, KeyError, IndexError):
        return None


def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: str, device: str, model_dir: str | Path | None) -> str:
    """The backend a run uses: `auto` becomes torch on a GPU and AUTO_CPU_BACKEND on CPU
    where the ONNX path can run this model; an explicit choice is checked."""
    if backend not in BACKENDS:
        raise BackendError(f"embed.backend: unknown backend {backend!r}; one of {', '.join(BACKENDS)}")
    onnx_ok = model_dir is not None and pooling_spec(model_dir) is not None
    if backend == "auto":
        if device != "cpu" or not onnx_ok or not onnx_available():
            return "torch"
        return AUTO_CPU_BACKEND
    if backend.startswith("onnx"):
        if device != "cpu":
            raise BackendError(f"embed.backend: {backend!r} runs on CPU only; use backend "
                               "\"torch\" (or \"auto\") on a GPU")
        if not onnx_ok:
            raise BackendError(f"embed.backend: {backend!r} needs a local sentence-transformers "
                               "model directory whose pipeline is Transformer -> mean or CLS "
                               "pooling [-> Normalize] with a tokenizer.json; use backend "
                               "\"torch\" for this model")
        if not onnx_available():
            raise BackendError(f"embed.backend: {backend!r} needs onnxruntime: pip install "
                               "onnxruntime onnx")
    return backend


def backend_key(backend: str, device: str, fp16: bool) -> str:
    """What the cache key adds for a backend: nothing for fp32 torch (the reference, whose
    cached vectors predate backends), else the backend and its precision."""
    if backend == "torch":
        return "#torch-fp16" if fp16 else ""
    return f"#{backend}-v{ONNX_FORMAT}"


# ----------------------------------------------------------------------------- ONNX export

def _atomic_write(path: Path, write) -> None:
    """Writes a file through a temporary name in the same directory, so two runs exporting
    at once never read a half-written model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_onnx(model_dir: str | Path, path: Path) -> None:
    """The model's transformer (token ids -> last hidden state) as an ONNX graph with dynamic
    batch and sequence axes, exported from the local weights by torch (offline)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import warnings

    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()

    model = AutoModel.from_pretrained(str(model_dir)).eval()

    class Hidden(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    ids = torch.ones((2, 8), dtype=torch.int64)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "tokens"} for n in names + ["hidden"]}

    def write(tmp: Path) -> None:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")   # the TorchScript exporter's deprecation notice
            torch.onnx.export(Hidden(model), (ids, ids, torch.zeros_like(ids)), str(tmp),
                              input_names=names, output_names=["hidden"],
                              dynamic_axes=axes, opset_version=ONNX_OPSET, dynamo=False)
    _atomic_write(path, write)


def quantize_onnx(fp32_path: Path, path: Path) -> None:
    """int8 dynamic quantization of the weights (activations quantized per batch at run
    time): ONNX Runtime's quantize_dynamic, signed int8 weights, one scale per output
    channel (per-tensor scales agreed with fp32 on 0.74 of the top-5 neighbours, per-channel
    on 0.88, at the same speed)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))

    def write(tmp: Path) -> None:
        quantize_dynamic(str(fp32_path), str(tmp), weight_type=QuantType.QInt8,
                         per_channel=True)
    _atomic_write(path, write)


# ----------------------------------------------------------------------------- encoder

class OnnxSentenceEncoder:
    """A sentence-transformers model (Transformer -> pooling [-> Normalize]) run by ONNX
    Runtime on CPU: texts -> float32 rows, L2-normalized when the model normalizes."""

    def __init__(self, model_dir: str | Path, cache_dir: str | Path, model_key: str,
                 quantized: bool, batch_size: int = 64, threads: int | None = None):
        self.model_dir = Path(model_dir)
        self.spec = pooling_spec(self.model_dir)
        if self.spec is None:
            raise BackendError(f"{model_dir}: not a Transformer -> pooling model the ONNX "
                               "backend reproduces")
        self.quantized = quantized
        self.batch_size = batch_size
        name = hashlib.blake2b(f"{model_key}|opset{ONNX_OPSET}|v{ONNX_FORMAT}".encode(),
                               digest_size=8).hexdigest()
        self.folder = Path(cache_dir).expanduser() / "onnx" / name
        self.path = self.folder / ("model-int8.onnx" if quantized else "model.onnx")
        self._session = self._tokenizer = None
        self.threads = threads

    def prepare(self, note=None) -> Path:
        """Exports (and quantizes) the model into the cache at first use; returns its path."""
        fp32 = self.folder / "model.onnx"
        if not fp32.exists():
            if note:
                note("synthgate: exporting the embedding model to ONNX (once; cached in "
                     f"{self.folder})")
            export_onnx(self.model_dir, fp32)
        if self.quantized and not self.path.exists():
            quantize_onnx(fp32, self.path)
        return self.path

    def load(self, note=None) -> None:
        if self._session is not None:
            return
        import onnxruntime as ort
        from tokenizers import Tokenizer
        path = self.prepare(note)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if self.threads:
            options.intra_op_num_threads = self.threads
        self._session = ort.InferenceSession(str(path), options,
                                             providers=["CPUExecutionProvider"])
        tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=self.spec.max_seq_length)
        self._tokenizer = tokenizer

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, with the special tokens, truncated as
        sentence-transformers truncates (its max_seq_length)."""
        self.load()
        if self.spec.strip:
            texts = [t.strip() for t in texts]
        return [e.ids for e in self._tokenizer.encode_batch(texts)]

    def encode(self, texts: list[str]) -> np.ndarray:
        self.load()
        ids = self.tokenize(list(texts))
        lengths = np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(ids))
        order = np.argsort(-lengths, kind="stable")   # longest first: similar lengths batch
        dim = None
        out = None
        for start in range(0, len(order), self.batch_size):
            part = order[start:start + self.batch_size]
            width = int(lengths[part].max())
            input_ids = np.zeros((len(part), width), dtype=np.int64)
            mask = np.zeros((len(part), width), dtype=np.int64)
            for row, i in enumerate(part):
                input_ids[row, :lengths[i]] = ids[i]
                mask[row, :lengths[i]] = 1
            hidden = self._session.run(None, {"input_ids": input_ids, "attention_mask": mask,
                                              "token_type_ids": np.zeros_like(input_ids)})[0]
            if self.spec.mode == "cls":
                pooled = hidden[:, 0]
            else:
                weights = mask[:, :, None].astype(np.float32)
                pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            if out is None:
                dim = pooled.shape[1]
                out = np.zeros((len(texts), dim), dtype=np.float32)
            out[part] = pooled
        if out is None:
            return np.zeros((0, 0), dtype=np.float32)
        if self.spec.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
        return out


def note_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
