#!/usr/bin/env python3
"""Reference LDA coefficients from scikit-learn for `tests/lda.rs`.

Two seeded feature sets (numpy `default_rng`): 5 classes × 30 samples in 12 dimensions, and
3 classes × 10 samples in 40 dimensions (fewer samples than dimensions: the shrinkage keeps the
pooled covariance invertible). `LinearDiscriminantAnalysis(solver="lsqr", shrinkage=α)` for
α in {None, 0.1, 0.5} (None only where the covariance has full rank).

    /opt/t4v-ref/bin/python plugins/inits/tests/data/make_lda_fixture.py   # scikit-learn >= 1.3
"""

import json
import os

import numpy as np
import sklearn
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

out = []
for name, (classes, per, dim, shrinks) in {
    "full": (5, 30, 12, [None, 0.1, 0.5]),
    "wide": (3, 10, 40, [0.1, 0.5]),
}.items():
    rng = np.random.default_rng(len(name))
    centres = rng.normal(0, 2, size=(classes, dim))
    x = np.concatenate([centres[c] + rng.normal(0, 1, size=(per, dim)) * (1 + 0.3 * c) for c in range(classes)])
    y = np.repeat(np.arange(classes), per)
    fits = []
    for s in shrinks:
        lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=s).fit(x, y)
        fits.append({"shrinkage": s, "coef": lda.coef_.tolist(), "intercept": lda.intercept_.tolist()})
    out.append({"name": name, "classes": classes, "features": x.tolist(), "labels": y.tolist(), "fits": fits})

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lda_reference.json")
with open(path, "w") as f:
    json.dump({"sklearn": sklearn.__version__, "cases": out}, f)
