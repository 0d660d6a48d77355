"""Kernel SHAP (Lundberg and Lee, 2017) for many rows at once, as Clarify's explainer computes it.

For a row x, a baseline (background rows b_k) and a coalition z of features, the value
v(z) is the model's mean output over the baseline rows with the features in z taken from
x. The SHAP values phi solve the weighted least squares problem
``min sum_z pi(z) (v(z) - phi_0 - sum_j phi_j z_j)^2`` with the Shapley kernel
``pi(z) = (M - 1) / (C(M, |z|) |z| (M - |z|))``, subject to ``phi_0 = v(empty)`` (the
expected value) and ``sum_j phi_j = f(x) - phi_0`` (local accuracy).

When ``2^M - 2 <= num_samples`` every coalition is used with its exact weight (the result
is the exact Shapley value of this game); otherwise coalitions are drawn by size in
proportion to the kernel, with each draw's complement beside it (paired sampling), and
weighted equally. One coalition matrix serves every row, so the model is asked once for
all rows (in as few requests as the payload limit allows) rather than row by row as the
``shap`` package's ``KernelExplainer`` does; ``tests/test_clarify.py`` checks both agree.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations
from math import comb

import numpy as np

Model = Callable[[np.ndarray], np.ndarray]


def coalitions(m: int, num_samples: int | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Coalition matrix (S x M of 0/1) and the weight of each row."""
    if m < 2:
        return np.zeros((0, m)), np.zeros(0)
    budget = num_samples if num_samples is not None else 2 * m + 2048
    if 2 ** m - 2 <= budget:
        rows, weights = [], []
        for size in range(1, m):
            w = (m - 1) / (comb(m, size) * size * (m - size))
            for members in combinations(range(m), size):
                z = np.zeros(m)
                z[list(members)] = 1
                rows.append(z)
                weights.append(w)
        return np.array(rows), np.array(weights)
    sizes = np.arange(1, m)
    size_p = (m - 1) / (sizes * (m - sizes))
    size_p /= size_p.sum()
    rows = []
    for _ in range(max(1, budget // 2)):
        size = rng.choice(sizes, p=size_p)
        z = np.zeros(m)
        z[rng.choice(m, size, replace=False)] = 1
        rows += [z, 1 - z]
    return np.array(rows), np.full(len(rows), 1.0 / len(rows))


def explain(model: Model, rows: np.ndarray, baseline: np.ndarray, *, num_samples: int | None = None,
            seed: int | None = None, link: str = "identity",
            baseline_weights: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """SHAP values (one row per input row, one column per feature) and the expected value.

    ``baseline_weights`` weigh the background rows (k-means centres by cluster size); equal
    weights by default."""
    rows, baseline = np.atleast_2d(np.asarray(rows, float)), np.atleast_2d(np.asarray(baseline, float))
    n, m = rows.shape
    bw = np.full(len(baseline), 1.0 / len(baseline)) if baseline_weights is None else (
        np.asarray(baseline_weights, float) / np.sum(baseline_weights))
    if link not in ("identity", "logit"):
        raise ValueError(f"link {link!r}: identity or logit")

    def g(p: np.ndarray) -> np.ndarray:  # the link, applied to mean outputs as shap does
        if link == "identity":
            return p
        p = np.clip(p, 1e-12, 1 - 1e-12)
        return np.log(p / (1 - p))

    expected = float(g(np.asarray(model(baseline), float) @ bw))
    fx = g(np.asarray(model(rows), float))
    z, w = coalitions(m, num_samples, np.random.default_rng(seed))
    if len(z) == 0:
        return (fx - expected).reshape(n, m), expected
    k = len(baseline)
    # synthetic rows: (n, S, k, m) -> one model call for all of them
    synth = np.where(z[None, :, None, :] == 1, rows[:, None, None, :], baseline[None, None, :, :])
    out = np.asarray(model(synth.reshape(-1, m)), float).reshape(n, len(z), k)
    v = g(out @ bw)
    # eliminate the last feature with the local-accuracy constraint, solve for the others
    y = v - expected - z[None, :, -1] * (fx - expected)[:, None]          # (n, S)
    x = z[:, :-1] - z[:, -1:]                                               # (S, m-1)
    a = x.T @ (w[:, None] * x)
    phi_rest = np.linalg.solve(a, x.T @ (w[:, None] * y.T)).T               # (n, m-1)
    phi_last = (fx - expected) - phi_rest.sum(axis=1)
    return np.column_stack([phi_rest, phi_last]), expected
