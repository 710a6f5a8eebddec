"""Reference statistics for crates/report/tests/stats.rs: numpy's mean and std (ddof=1),
scipy's paired t-test and Wilcoxon signed-rank test (two-sided, zeros dropped) on seeded
samples: small samples, ties, zeros, an exact case beyond enumeration (n = 30, no ties) and an
asymptotic one (n = 60 with ties); and statsmodels' multiple-comparison adjustments (`holm`,
`fdr_bh`) of p-value vectors: typical tables, ties, values that saturate at 1, one test.

    /opt/t4v-ref/bin/python crates/report/tests/data/make_stats_fixture.py
    # (pip install numpy scipy statsmodels)
"""
import json
import os

import numpy as np
import scipy
import statsmodels
from scipy import stats
from statsmodels.stats.multitest import multipletests

rng = np.random.default_rng(5)
cases = {
    "three": (rng.normal(70, 1, 3), rng.normal(69, 1, 3)),
    "five": (rng.normal(70, 1, 5), rng.normal(70, 1, 5)),
    "eight_ties": (np.array([1, 2, 3, 4, 5, 6, 7, 8.0]), np.array([0, 1, 4, 3, 3, 5, 9, 6.0])),
    "zeros": (np.array([1.0, 2, 3, 4, 5, 6]), np.array([1.0, 1, 3, 2, 7, 6])),
    "fifteen": (rng.normal(0.5, 1, 15), np.zeros(15)),
    "thirty": (rng.normal(0.3, 1, 30), np.zeros(30)),
    "sixty_ties": (np.round(rng.normal(0.2, 1, 60), 1), np.zeros(60)),
}
out = []
for name, (a, b) in cases.items():
    d = a - b
    t = stats.ttest_rel(a, b)
    w = stats.wilcoxon(a, b)
    r_plus = float(stats.rankdata(np.abs(d[d != 0]))[d[d != 0] > 0].sum())
    out.append({
        "name": name, "a": a.tolist(), "b": b.tolist(),
        "mean_a": float(np.mean(a)), "std_a": float(np.std(a, ddof=1)),
        "t": float(t.statistic), "t_p": float(t.pvalue),
        "w_plus": r_plus, "wilcoxon_p": float(w.pvalue),
    })
pvals = {
    "table_of_eight": [0.01, 0.04, 0.03, 0.005, 0.2, 0.049, 0.6, 0.0001],
    "ties": [0.02, 0.02, 0.02, 0.5, 0.01],
    "saturating": [0.3, 0.5, 0.9, 0.45, 0.7],
    "one": [0.03],
    "random_twenty": rng.uniform(0, 0.2, 20).tolist(),
}
corrections = []
for name, p in pvals.items():
    corrections.append({
        "name": name, "p": p,
        "holm": multipletests(p, method="holm")[1].tolist(),
        "bh": multipletests(p, method="fdr_bh")[1].tolist(),
    })
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stats_reference.json")
with open(path, "w") as f:
    json.dump({"numpy": np.__version__, "scipy": scipy.__version__,
               "statsmodels": statsmodels.__version__, "cases": out,
               "corrections": corrections}, f, indent=1)
