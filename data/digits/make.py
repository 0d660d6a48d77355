"""Lab 02's data: the handwritten digits bundled with scikit-learn, as CSV shards (run from the repo root).

    python data/digits/make.py

Source: scikit-learn's copy of the UCI "Optical Recognition of Handwritten Digits" test set
(``sklearn.datasets.load_digits``: 1,797 images of 8x8 pixels, values 0-16, ten classes),
read from the installed package, nothing downloaded. Written here:

- ``train/part-0000.csv`` ... ``part-0007.csv``: 1,440 images in eight shards of 180, so
  that ``ShardedByS3Key`` has objects to hand out and every split below is even;
- ``validation/validation.csv``: 356 images.

One image (the last of the shuffled order) is left out so that both splits divide evenly by
2, 4 and 8 ranks: ``DistributedSampler`` then neither pads (repeating samples) nor drops
any, and every rank's share is exact. Columns: ``id`` (the image's index in
``load_digits``), ``label``, ``p0``..``p63`` (row-major pixels). Deterministic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits

HERE = Path(__file__).resolve().parent
SHARDS, TRAIN, VALIDATION = 8, 1440, 356


def frame() -> pd.DataFrame:
    digits = load_digits()
    df = pd.DataFrame(digits.data.astype(int), columns=[f"p{i}" for i in range(64)])
    df.insert(0, "label", digits.target.astype(int))
    df.insert(0, "id", np.arange(len(df)))
    return df


def main() -> None:
    df = frame().sample(frac=1.0, random_state=2)  # shuffled: every shard holds every class
    train, validation = df.iloc[:TRAIN], df.iloc[TRAIN:TRAIN + VALIDATION]
    (HERE / "train").mkdir(exist_ok=True)
    (HERE / "validation").mkdir(exist_ok=True)
    for i in range(SHARDS):
        train.iloc[i::SHARDS].to_csv(HERE / "train" / f"part-{i:04d}.csv", index=False)
    validation.to_csv(HERE / "validation" / "validation.csv", index=False)
    print(f"wrote {SHARDS} train shards ({TRAIN} rows) and validation ({len(validation)} rows) to {HERE}")


if __name__ == "__main__":
    main()
