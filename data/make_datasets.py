"""Regenerate the course's small synthetic data sets (deterministic; run from the repo root).

    python data/make_datasets.py

churn/data.csv: 3,000 telecom customers in the shape seed 004's preprocessing expects
(numeric and text columns, some values missing, a 0/1 ``target``). The label depends
on the features through a known logistic model, so a good model reaches about 0.85
accuracy and a constant guess about 0.7: labs can grade "really trained".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def churn(n: int = 3000, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, n)
    monthly = np.round(rng.normal(70, 25, n).clip(15, 150), 2)
    support_calls = rng.poisson(1.5, n)
    contract = rng.choice(["month-to-month", "one-year", "two-year"], n, p=[0.55, 0.25, 0.20])
    payment = rng.choice(["card", "bank-transfer", "electronic-check", "mailed-check"], n)
    region = rng.choice(["north", "south", "east", "west"], n)
    data_gb = np.round(rng.gamma(2.0, 6.0, n), 1)
    logit = (-1.2 - 0.045 * tenure + 0.022 * (monthly - 70) + 0.55 * support_calls
             + np.select([contract == "month-to-month", contract == "one-year"], [1.3, 0.0], -1.1)
             + 0.5 * (payment == "electronic-check"))
    target = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    df = pd.DataFrame({
        "customer_id": [f"C{i:05d}" for i in range(n)],
        "tenure_months": tenure.astype(float),
        "monthly_charges": monthly,
        "support_calls": support_calls.astype(float),
        "data_usage_gb": data_gb,
        "contract": contract,
        "payment_method": payment,
        "region": region,
        "target": target,
    })
    for col, frac in (("monthly_charges", 0.03), ("data_usage_gb", 0.05), ("payment_method", 0.02)):
        df.loc[rng.random(n) < frac, col] = np.nan
    return df


if __name__ == "__main__":
    out = HERE / "churn" / "data.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    churn().to_csv(out, index=False)
    print(f"wrote {out}")
