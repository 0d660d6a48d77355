"""SageMaker Clarify's bias metrics, computed from boolean masks.

Definitions as AWS documents them (SageMaker developer guide, "Pre-training bias metrics"
and "Post-training data and model bias metrics", and the open-source ``smclarify``
library that Clarify's container uses), written here from those formulas. Notation:
``facet`` marks the rows of the sensitive group *d* (women, say); the rest are group *a*.
``label`` marks rows with the positive observed outcome, ``predicted`` rows the model
predicts positive. A ratio whose denominator is 0 is 0 when its numerator is 0 too, else
+/- infinity (reported as ``"Infinity"`` in ``analysis.json``, as Clarify does).

Pre-training (the data only): CI, DPL, KL, JS, LP, TVD, KS, CDDL.
Post-training (the model's predictions too): DPPL, DI, DCA, DCR, RD, SD, DAR, DRR, AD,
TE, FT, CDDPL, GE.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Mask = np.ndarray


def divide(a: float, b: float) -> float:
    if b == 0:
        return 0.0 if a == 0 else (float("inf") if a > 0 else float("-inf"))
    return a / b


def _require_both(facet: Mask) -> None:
    if not facet.any():
        raise ValueError("the facet group is empty: no row has the facet value (check value_or_threshold)")
    if facet.all():
        raise ValueError("every row is in the facet group: there is no other group to compare with")


def _distributions(values: np.ndarray, facet: Mask) -> tuple[np.ndarray, np.ndarray]:
    """P_a and P_d over the label values both groups have (values either group lacks are dropped)."""
    _require_both(facet)
    keys = np.unique(values)
    pa = np.array([np.mean(values[~facet] == k) for k in keys])
    pd_ = np.array([np.mean(values[facet] == k) for k in keys])
    keep = (pa > 0) & (pd_ > 0)
    return pa[keep], pd_[keep]


# --- pre-training ----------------------------------------------------------------------------


def CI(facet: Mask) -> float:
    """Class Imbalance (CI): (n_a - n_d) / n."""
    _require_both(facet)
    return (int((~facet).sum()) - int(facet.sum())) / len(facet)


def DPL(facet: Mask, label: Mask) -> float:
    """Difference in Positive Proportions in Labels (DPL): q_a - q_d."""
    _require_both(facet)
    return float(label[~facet].mean() - label[facet].mean())


def KL(values: np.ndarray, facet: Mask) -> float:
    """Kullback-Leibler Divergence (KL) of the label distributions, P_a against P_d."""
    pa, pd_ = _distributions(values, facet)
    return float(np.sum(pa * np.log(pa / pd_)))


def JS(values: np.ndarray, facet: Mask) -> float:
    """Jensen-Shannon Divergence (JS) of the label distributions."""
    pa, pd_ = _distributions(values, facet)
    p = (pa + pd_) / 2
    return float(0.5 * (np.sum(pa * np.log(pa / p)) + np.sum(pd_ * np.log(pd_ / p))))


def LP(values: np.ndarray, facet: Mask) -> float:
    """L-p Norm (LP), p = 2, of the difference of the label distributions."""
    pa, pd_ = _distributions(values, facet)
    return float(np.linalg.norm(pa - pd_, 2))


def TVD(values: np.ndarray, facet: Mask) -> float:
    """Total Variation Distance (TVD): half the L1 norm of the difference."""
    pa, pd_ = _distributions(values, facet)
    return float(0.5 * np.linalg.norm(pa - pd_, 1))


def KS(values: np.ndarray, facet: Mask) -> float:
    """Kolmogorov-Smirnov Distance (KS): the largest difference in one label value."""
    pa, pd_ = _distributions(values, facet)
    return float(np.max(np.abs(pa - pd_))) if len(pa) else 0.0


def CDD(facet: Mask, outcome: Mask, group: np.ndarray) -> float:
    """Conditional Demographic Disparity: DD per group (share of the rejected that are in the
    facet minus share of the accepted that are), averaged with the groups' sizes as weights."""
    if group is None or len(group) == 0:
        raise ValueError("CDD needs a group variable (BiasConfig group_name)")
    if not outcome.any() or outcome.all():
        raise ValueError("CDD needs both accepted and rejected rows")
    total, weighted = 0, 0.0
    for g in np.unique(group):
        rows = group == g
        accepted, rejected = rows & outcome, rows & ~outcome
        a = divide(float((accepted & facet).sum()), float(accepted.sum())) if accepted.any() else 0.0
        d = divide(float((rejected & facet).sum()), float(rejected.sum())) if rejected.any() else 0.0
        weighted += rows.sum() * (d - a)
        total += rows.sum()
    return divide(weighted, total)


def CDDL(facet: Mask, label: Mask, group: np.ndarray) -> float:
    """Conditional Demographic Disparity in Labels (CDDL)."""
    return CDD(facet, label, group)


# --- post-training ---------------------------------------------------------------------------


def _both(facet: Mask, label: Mask, predicted: Mask) -> tuple[dict[str, int], dict[str, int]]:
    _require_both(facet)
    a = {"TP": int((~facet & label & predicted).sum()), "FP": int((~facet & ~label & predicted).sum()),
         "FN": int((~facet & label & ~predicted).sum()), "TN": int((~facet & ~label & ~predicted).sum())}
    d = {"TP": int((facet & label & predicted).sum()), "FP": int((facet & ~label & predicted).sum()),
         "FN": int((facet & label & ~predicted).sum()), "TN": int((facet & ~label & ~predicted).sum())}
    return a, d


def _difference(x: float, y: float) -> float:
    inf = float("inf")
    return 0.0 if x == y and abs(x) == inf else x - y


def DPPL(facet: Mask, predicted: Mask) -> float:
    """Difference in Positive Proportions in Predicted Labels (DPPL): q^_a - q^_d."""
    return DPL(facet, predicted)


def DI(facet: Mask, predicted: Mask) -> float:
    """Disparate Impact (DI): q^_d / q^_a (the four-fifths rule asks for at least 0.8)."""
    _require_both(facet)
    return divide(float(predicted[facet].mean()), float(predicted[~facet].mean()))


def DCA(facet: Mask, label: Mask, predicted: Mask) -> float:
    """Difference in Conditional Acceptance (DCA): n_a(1)/n^_a(1) - n_d(1)/n^_d(1)."""
    a, d = _both(facet, label, predicted)
    ca = divide(a["TP"] + a["FN"], a["TP"] + a["FP"])
    cd = divide(d["TP"] + d["FN"], d["TP"] + d["FP"])
    return _difference(ca, cd)


def DCR(facet: Mask, label: Mask, predicted: Mask) -> float:
    """Difference in Conditional Rejection (DCR): n_d(0)/n^_d(0) - n_a(0)/n^_a(0)."""
    a, d = _both(facet, label, predicted)
    ra = divide(a["TN"] + a["FP"], a["TN"] + a["FN"])
    rd = divide(d["TN"] + d["FP"], d["TN"] + d["FN"])
    return _difference(rd, ra)


def RD(facet: Mask, label: Mask, predicted: Mask) -> float:
    """Recall Difference (RD): recall_a - recall_d."""
    a, d = _both(facet, label, predicted)
    return _difference(divide(a["TP"], a["TP"] + a["FN"]), divide(d["TP"], d["TP"] + d["FN"]))


def SD(facet: Mask, label: Mask, predicted: Mask) -> float:
    """Specificity Difference (SD): specificity_d - specificity_a."""
    a, d = _both(facet, label, predicted)
    return _difference(divide(d["TN"], d["TN"] + d["FP"]), divide(a["TN"], a["TN"] + a["FP"]))


def DAR(facet: Mask, label: Mask, predicted: Mask) -> float:
    """Difference in Acceptance Rates (DAR): precision_a - precision_d."""
    a, d = _both(facet, label, predicted)
    return _difference(divide(a["TP"], a["TP"] + a["FP"]), divide(d["TP"], d["TP"] + d["FP"]))


def DRR(facet: Mask, label: Mask, predicted: Mask) -> float:
    """Difference in Rejection Rates (DRR): TN_d/n^_d(0) - TN_a/n^_a(0)."""
    a, d = _both(facet, label, predicted)
    return _difference(divide(d["TN"], d["TN"] + d["FN"]), divide(a["TN"], a["TN"] + a["FN"]))


def AD(facet: Mask, label: Mask, predicted: Mask) -> float:
    """Accuracy Difference (AD): accuracy_a - accuracy_d."""
    a, d = _both(facet, label, predicted)
    return _difference(divide(a["TP"] + a["TN"], sum(a.values())), divide(d["TP"] + d["TN"], sum(d.values())))


def TE(facet: Mask, label: Mask, predicted: Mask) -> float:
    """Treatment Equality (TE): FN_d/FP_d - FN_a/FP_a."""
    a, d = _both(facet, label, predicted)
    return _difference(divide(d["FN"], d["FP"]), divide(a["FN"], a["FP"]))


def CDDPL(facet: Mask, predicted: Mask, group: np.ndarray) -> float:
    """Conditional Demographic Disparity in Predicted Labels (CDDPL)."""
    return CDD(facet, predicted, group)


def GE(label: Mask, predicted: Mask, alpha: float = 2.0) -> float:
    """Generalized Entropy (GE) index, alpha = 2, of the benefit b = predicted - label + 1."""
    benefit = predicted.astype(float) - label.astype(float) + 1.0
    mean = benefit.mean()
    if mean == 0:
        raise ValueError("every prediction is a false negative: GE is undefined")
    return float(((benefit / mean) ** alpha - 1).sum() / (len(benefit) * alpha * (alpha - 1)))


def FT(features: np.ndarray, facet: Mask, predicted: Mask) -> float:
    """Flip Test (FT): a k-NN trained on group a's rows and predictions labels group d's rows;
    (flips from negative to positive - flips from positive to negative) / n_d. k is 5 when
    group a has more than 9 rows, else 1."""
    from sklearn.neighbors import KNeighborsClassifier

    _require_both(facet)
    if not np.issubdtype(np.asarray(features).dtype, np.number):
        raise ValueError("the flip test needs numeric features")
    k = 5 if int((~facet).sum()) > 9 else 1
    knn = KNeighborsClassifier(n_neighbors=k).fit(features[~facet], predicted[~facet])
    as_if_a = knn.predict(features[facet]).astype(bool)
    model = predicted[facet]
    up = int((as_if_a & ~model).sum())     # the model said no, group a's neighbours would get yes
    down = int((~as_if_a & model).sum())
    return divide(up - down, int(facet.sum()))


@dataclass(frozen=True)
class Metric:
    name: str
    description: str
    compute: Callable[..., float]
    needs: tuple[str, ...]  # of: facet, label, predicted, values, group, features


def _describe(fn: Callable[..., float]) -> str:
    """The metric's name as Clarify writes it: "Class Imbalance (CI)"."""
    doc = fn.__doc__ or fn.__name__
    return doc[:doc.index(")") + 1] if ")" in doc else doc


PRE_TRAINING = {m.name: m for m in (
    Metric("CI", _describe(CI), CI, ("facet",)),
    Metric("DPL", _describe(DPL), DPL, ("facet", "label")),
    Metric("KL", _describe(KL), KL, ("values", "facet")),
    Metric("JS", _describe(JS), JS, ("values", "facet")),
    Metric("LP", _describe(LP), LP, ("values", "facet")),
    Metric("TVD", _describe(TVD), TVD, ("values", "facet")),
    Metric("KS", _describe(KS), KS, ("values", "facet")),
    Metric("CDDL", _describe(CDDL), CDDL, ("facet", "label", "group")),
)}
POST_TRAINING = {m.name: m for m in (
    Metric("DPPL", _describe(DPPL), DPPL, ("facet", "predicted")),
    Metric("DI", _describe(DI), DI, ("facet", "predicted")),
    Metric("DCA", _describe(DCA), DCA, ("facet", "label", "predicted")),
    Metric("DCR", _describe(DCR), DCR, ("facet", "label", "predicted")),
    Metric("RD", _describe(RD), RD, ("facet", "label", "predicted")),
    Metric("SD", _describe(SD), SD, ("facet", "label", "predicted")),
    Metric("DAR", _describe(DAR), DAR, ("facet", "label", "predicted")),
    Metric("DRR", _describe(DRR), DRR, ("facet", "label", "predicted")),
    Metric("AD", _describe(AD), AD, ("facet", "label", "predicted")),
    Metric("TE", _describe(TE), TE, ("facet", "label", "predicted")),
    Metric("FT", _describe(FT), FT, ("features", "facet", "predicted")),
    Metric("CDDPL", _describe(CDDPL), CDDPL, ("facet", "predicted", "group")),
    Metric("GE", _describe(GE), GE, ("label", "predicted")),
)}


def select(catalogue: dict[str, Metric], methods: str | list[str], group_given: bool) -> list[Metric]:
    """The metrics a ``methods`` entry asks for ("all" or names); CDD needs a group variable."""
    if methods == "all":
        return [m for m in catalogue.values() if group_given or "group" not in m.needs]
    if isinstance(methods, str):
        methods = [methods]
    unknown = [m for m in methods if m not in catalogue]
    if unknown:
        raise ValueError(f"unknown bias metric(s) {unknown}: choose from {sorted(catalogue)} or 'all'")
    return [catalogue[m] for m in methods]


def compute(metric: Metric, **inputs: object) -> dict[str, object]:
    """``{"name", "description", "value"}``, or ``"error"`` instead of a value, as analysis.json has."""
    try:
        value = metric.compute(*(inputs[k] for k in metric.needs))
    except ValueError as err:
        return {"name": metric.name, "description": metric.description, "value": None, "error": str(err)}
    return {"name": metric.name, "description": metric.description, "value": float(value)}
