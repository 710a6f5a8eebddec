"""Peer of `cargo xtask bench lda`: scikit-learn's LinearDiscriminantAnalysis(solver="lsqr",
shrinkage=ALPHA) fitted on the same data (raw little-endian f64 features [N, D] and i64 labels,
written by the benchmark). Prints one JSON line: fit seconds (best of REPEATS) and where the
coefficients went.

    python lda_sklearn.py FEATURES LABELS N D ALPHA REPEATS COEF_OUT
"""
import json
import sys
import time

import numpy as np
import sklearn
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

feats, labels, n, d, alpha, repeats, out = sys.argv[1:8]
n, d, repeats = int(n), int(d), int(repeats)
x = np.fromfile(feats, dtype="<f8").reshape(n, d)
y = np.fromfile(labels, dtype="<i8")
best = float("inf")
for _ in range(repeats):
    t = time.perf_counter()
    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=float(alpha)).fit(x, y)
    best = min(best, time.perf_counter() - t)
lda.coef_.astype("<f8").tofile(out)
print(json.dumps({"seconds": best, "sklearn": sklearn.__version__, "numpy": np.__version__}))
