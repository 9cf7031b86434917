"""Linear models on the hand-crafted features, cross-validated over image sets.

One fold per image set: fold k holds out set k of every class (the fields of one "day"), so each
nucleus is scored once by a model that saw none of its set. Prints JSON: per pair, model and
feature family (all, shape only, without shape) the mean and SD of the fold accuracies.
Usage:  python docs/results/scenmed/linear_cv.py FEATURES.parquet > linear_cv.json
"""

import json
import sys

import numpy as np
import pandas as pd

from ainu_engine.scenmed import feature_names
from ainu_engine.training.scenmed import make_linear

table = pd.read_parquet(sys.argv[1])
names = [c for c in feature_names("paper") if c in table.columns]
shape = [c for c in names if c.startswith("shape_")]
families = {"all": names, "shape": shape, "without_shape": [c for c in names if c not in shape]}
sets = table["group"].str.rsplit("_s", n=1).str[1]
out = []
for a, b in [("NIH3T3", "BJ"), ("BJ", "MCF10A")]:
    keep = table["label"].isin([a, b]).to_numpy()
    y = (table["label"][keep] == b).to_numpy().astype(int)
    fold = sets[keep].to_numpy()
    for model in ("logreg", "svm", "rf"):
        for family, cols in families.items():
            X = np.nan_to_num(table.loc[keep, cols].to_numpy(np.float64))
            acc = []
            for k in np.unique(fold):
                val = fold == k
                fit = make_linear(model).fit(X[~val], y[~val])
                acc.append(float(np.mean(fit.predict(X[val]) == y[val])))
            out.append({"pair": f"{a}-vs-{b}", "model": model, "features": family,
                        "n": int(keep.sum()), "folds": len(acc),
                        "cv_mean": float(np.mean(acc)), "cv_sd": float(np.std(acc))})
print(json.dumps(out, indent=1))
