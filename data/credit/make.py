"""Lab 14's data: loan applications with a sensitive attribute and a biased history (run from the repo root).

    python data/credit/make.py

Synthetic and deterministic: 2,400 applications, all columns numeric (Clarify's flip test
and the built-in XGBoost want numbers). Written to ``credit.csv`` with a header:

- ``approved``: the label, 1 when the application was approved in the past;
- ``sex``: the sensitive attribute, 1 for women (36% of applicants), 0 for men;
- ``age``, ``income_k`` (yearly, thousands of USD), ``debt_ratio`` (0-1),
  ``credit_years``, ``late_payments`` (last two years), ``loan_k``, ``part_time`` (0/1);
- ``purpose``: 0 car, 1 home, 2 education, 3 business (the group variable for CDD).

How it is made, so that what the lab measures is known in advance: repayment ability
depends on income, debt ratio, late payments, credit history and purpose only. The past
decisions (``approved``) add a penalty of 1.6 on the log-odds for women: historical bias
in the labels, which pre-training metrics (DPL, CDDL) see. Women work part time more
often (45% against 12%) and apply for education loans more often, so ``part_time`` is a
proxy for ``sex``: a model trained without the ``sex`` column still learns part of the
penalty, which post-training metrics (DPPL, DI) see.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
N, SEED, PENALTY, STRENGTH = 2400, 14, 1.6, 2.5


def applications(n: int = N, seed: int = SEED) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = (rng.random(n) < 0.36).astype(int)
    age = rng.integers(21, 70, n)
    part_time = (rng.random(n) < np.where(sex == 1, 0.45, 0.12)).astype(int)
    income = np.round(np.exp(rng.normal(4.05, 0.35, n)) * np.where(part_time == 1, 0.6, 1.0), 1)
    debt_ratio = np.round(rng.beta(2.2, 4.0, n), 3)
    credit_years = np.minimum(age - 18, rng.poisson(np.maximum(1, (age - 18) * 0.6)))
    late = rng.poisson(0.6, n)
    purpose = np.where(sex == 1, rng.choice(4, n, p=[0.25, 0.25, 0.35, 0.15]),
                       rng.choice(4, n, p=[0.35, 0.30, 0.15, 0.20]))
    loan = np.round(np.select([purpose == 1, purpose == 3], [rng.normal(180, 40, n), rng.normal(60, 20, n)],
                              rng.normal(18, 6, n)).clip(2, 400), 1)
    ability = (-0.4 + 1.9 * np.log(income / 57) - 3.2 * (debt_ratio - 0.35) - 0.75 * late
               + 0.04 * credit_years - 0.004 * (loan - 40) + np.select([purpose == 2, purpose == 3], [-0.3, -0.5], 0))
    logit = STRENGTH * ability + 0.5 - PENALTY * sex
    approved = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({
        "approved": approved, "sex": sex, "age": age, "income_k": income, "debt_ratio": debt_ratio,
        "credit_years": credit_years, "late_payments": late, "loan_k": loan, "part_time": part_time,
        "purpose": purpose,
    })


if __name__ == "__main__":
    frame = applications()
    frame.to_csv(HERE / "credit.csv", index=False)
    print(f"credit.csv: {len(frame)} rows, approval rate {frame.approved.mean():.2f} "
          f"(men {frame.approved[frame.sex == 0].mean():.2f}, women {frame.approved[frame.sex == 1].mean():.2f})")
