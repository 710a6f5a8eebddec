#!/usr/bin/env python3
"""The half-class zero-shot subsets as numpy's legacy generator draws them:
`np.random.seed(s); np.random.permutation(C)[:C // 2]` for UCF-101 (101), HMDB-51 (51) and
ActivityNet (200), seeds 0-9. Writes half_class_oracle.csv beside this file."""

import os

import numpy as np

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "half_class_oracle.csv")
with open(out, "w") as f:
    f.write("dataset,n_classes,split_seed,selected_class_ids_in_permutation_order\n")
    for name, c in (("ucf101", 101), ("hmdb51", 51), ("anet", 200)):
        for seed in range(10):
            np.random.seed(seed)
            ids = np.random.permutation(c)[: c // 2]
            f.write(f"{name},{c},{seed},{' '.join(map(str, ids))}\n")
