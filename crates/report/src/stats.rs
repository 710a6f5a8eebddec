//! Statistics over seeds: mean ± sample standard deviation, and paired comparisons of two
//! settings run on the same seeds (paired t-test, Wilcoxon signed-rank), computed as
//! numpy / scipy do (checked against them in `tests/stats.rs`).

use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// Mean and sample standard deviation (ddof = 1, numpy's `std(ddof=1)`; 0 for one value).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, var.sqrt())
}

/// A paired comparison of `a` against `b` (same seeds, same order).
#[derive(Clone, Debug, PartialEq)]
pub struct Paired {
    pub n: usize,
    /// Mean of `a − b`.
    pub mean_diff: f64,
    /// Two-sided p-value of the paired t-test (`scipy.stats.ttest_rel`); NaN when every
    /// difference is 0 or n < 2.
    pub t_p: f64,
    pub t: f64,
    /// Two-sided p-value of the Wilcoxon signed-rank test (`scipy.stats.wilcoxon`, zeros
    /// dropped); NaN when no difference is non-zero.
    pub wilcoxon_p: f64,
    /// The sum of the ranks of the positive differences.
    pub w_plus: f64,
}

pub fn paired(a: &[f64], b: &[f64]) -> Paired {
    assert_eq!(a.len(), b.len(), "paired samples have equal length");
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let n = d.len();
    let (mean, sd) = mean_std(&d);
    let (t, t_p) = if n < 2 {
        (f64::NAN, f64::NAN)
    } else if sd == 0.0 {
        if mean == 0.0 {
            (f64::NAN, f64::NAN)
        } else {
            (mean.signum() * f64::INFINITY, 0.0)
        }
    } else {
        let t = mean / (sd / (n as f64).sqrt());
        let dist = StudentsT::new(0.0, 1.0, (n - 1) as f64).expect("valid degrees of freedom");
        (t, (2.0 * dist.sf(t.abs())).min(1.0))
    };
    let (w_plus, wilcoxon_p) = wilcoxon(&d);
    Paired {
        n,
        mean_diff: mean,
        t_p,
        t,
        wilcoxon_p,
        w_plus,
    }
}

/// Average ranks (1-based) of `x`, ties sharing the mean of their positions.
fn ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&i, &j| x[i].total_cmp(&x[j]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in &idx[i..=j] {
            r[*k] = avg;
        }
        i = j + 1;
    }
    r
}

/// Largest sample for which every sign pattern is enumerated.
const ENUMERATE: usize = 20;

/// (W+, two-sided p). Exact for n ≤ 20 (every sign pattern, which is also what scipy's
/// permutation method does with ties), exact by counting rank sums for larger samples without
/// ties (n ≤ 50, scipy's exact method), normal approximation with the tie correction otherwise
/// (scipy's asymptotic method; scipy would draw random permutations for 20 < n ≤ 50 with ties).
fn wilcoxon(d: &[f64]) -> (f64, f64) {
    let nz: Vec<f64> = d.iter().copied().filter(|x| *x != 0.0).collect();
    let n = nz.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let abs: Vec<f64> = nz.iter().map(|x| x.abs()).collect();
    let r = ranks(&abs);
    let w_plus: f64 = nz
        .iter()
        .zip(&r)
        .filter(|(x, _)| **x > 0.0)
        .map(|(_, r)| r)
        .sum();
    let ties = {
        let mut s = abs.clone();
        s.sort_by(f64::total_cmp);
        s.windows(2).any(|w| w[0] == w[1])
    };
    // Ranks are multiples of ½: compare them doubled, as integers.
    let twice: Vec<u64> = r.iter().map(|x| (2.0 * x).round() as u64).collect();
    let obs = (2.0 * w_plus).round() as u64;
    let two_sided = |less: f64, greater: f64| (2.0 * less.min(greater)).min(1.0);
    if n <= ENUMERATE {
        let (mut le, mut ge) = (0u64, 0u64);
        for mask in 0u64..(1 << n) {
            let s: u64 = (0..n)
                .filter(|i| mask >> i & 1 == 1)
                .map(|i| twice[i])
                .sum();
            le += (s <= obs) as u64;
            ge += (s >= obs) as u64;
        }
        let total = (1u64 << n) as f64;
        return (w_plus, two_sided(le as f64 / total, ge as f64 / total));
    }
    if !ties && n <= 50 {
        // counts[s] = sign patterns whose positive ranks sum to s (ranks 1..n).
        let max = n * (n + 1) / 2;
        let mut counts = vec![0f64; max + 1];
        counts[0] = 1.0;
        for k in 1..=n {
            for s in (k..=max).rev() {
                counts[s] += counts[s - k];
            }
        }
        let total: f64 = counts.iter().sum();
        let w = w_plus.round() as usize;
        let le: f64 = counts[..=w].iter().sum();
        let ge: f64 = counts[w..].iter().sum();
        return (w_plus, two_sided(le / total, ge / total));
    }
    let nf = n as f64;
    let mean = nf * (nf + 1.0) / 4.0;
    let mut var = nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0;
    let mut sorted = abs;
    sorted.sort_by(f64::total_cmp);
    let mut i = 0;
    while i < sorted.len() {
        let j = sorted[i..].iter().take_while(|x| **x == sorted[i]).count();
        let t = j as f64;
        var -= t * (t * t - 1.0) / 48.0;
        i += j;
    }
    let z = (w_plus - mean) / var.sqrt();
    let normal = Normal::new(0.0, 1.0).expect("standard normal");
    (w_plus, (2.0 * normal.sf(z.abs())).min(1.0))
}

/// Control of multiple comparisons over the rows of one comparison table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub enum Correction {
    /// Holm–Bonferroni (family-wise error rate; statsmodels' `holm`).
    #[default]
    #[serde(rename = "holm")]
    Holm,
    /// Benjamini–Hochberg (false discovery rate; statsmodels' `fdr_bh`).
    #[serde(rename = "bh")]
    BenjaminiHochberg,
    /// Raw p-values.
    #[serde(rename = "none")]
    None,
}

impl Correction {
    /// How a table names it.
    pub fn name(self) -> &'static str {
        match self {
            Correction::Holm => "Holm–Bonferroni",
            Correction::BenjaminiHochberg => "Benjamini–Hochberg",
            Correction::None => "none",
        }
    }

    /// Adjusted p-values, in the order given, as statsmodels' `multipletests` computes them.
    /// A NaN p-value (a test that could not be made) stays NaN and is not counted among the
    /// tests.
    pub fn adjust(self, p: &[f64]) -> Vec<f64> {
        let mut order: Vec<usize> = (0..p.len()).filter(|&i| !p[i].is_nan()).collect();
        order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
        let m = order.len() as f64;
        let mut out = vec![f64::NAN; p.len()];
        match self {
            Correction::None => return p.to_vec(),
            Correction::Holm => {
                // p_(k) · (m − k), k 0-based ascending, made monotone from the smallest up.
                let mut running = 0.0f64;
                for (k, &i) in order.iter().enumerate() {
                    running = running.max(((m - k as f64) * p[i]).min(1.0));
                    out[i] = running;
                }
            }
            Correction::BenjaminiHochberg => {
                // p_(k) · m / (k + 1), made monotone from the largest down.
                let mut running = 1.0f64;
                for (k, &i) in order.iter().enumerate().rev() {
                    running = running.min((p[i] * m / (k as f64 + 1.0)).min(1.0));
                    out[i] = running;
                }
            }
        }
        out
    }
}

/// A percentile-bootstrap confidence interval of the mean of `d` at `level` (0.95): `resamples`
/// resamples with replacement drawn from `seed` (SplitMix64), so a report is reproducible.
/// (lo, hi); NaN for an empty sample.
pub fn bootstrap_mean_ci(d: &[f64], level: f64, resamples: usize, seed: u64) -> (f64, f64) {
    let n = d.len();
    if n == 0 || resamples == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut state = seed;
    let mut next = move || {
        // SplitMix64.
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| {
            (0..n)
                .map(|_| d[(((next() >> 11) as u128 * n as u128) >> 53) as usize])
                .sum::<f64>()
                / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    // numpy's default ("linear") percentile of the sorted means.
    let q = |f: f64| {
        let x = f * (resamples - 1) as f64;
        let (i, t) = (x.floor() as usize, x - x.floor());
        let j = (i + 1).min(resamples - 1);
        means[i] + t * (means[j] - means[i])
    };
    let tail = (1.0 - level) / 2.0;
    (q(tail), q(1.0 - tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_average_ties() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn small_cases() {
        assert_eq!(mean_std(&[1.0, 2.0, 3.0]), (2.0, 1.0));
        assert_eq!(mean_std(&[4.0]), (4.0, 0.0));
        let p = paired(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]);
        assert!(p.t_p.is_nan() && p.wilcoxon_p.is_nan());
        // Three positive differences: exact Wilcoxon p = 2 · 1/8.
        let p = paired(&[2.0, 3.0, 5.0], &[1.0, 1.0, 1.0]);
        assert!((p.wilcoxon_p - 0.25).abs() < 1e-12);
        assert_eq!(p.w_plus, 6.0);
    }

    #[test]
    fn bootstrap_intervals_are_seeded_and_hold_the_mean() {
        let d = [0.4, -0.1, 0.9, 0.3, 0.5, 0.2, 0.7];
        let a = bootstrap_mean_ci(&d, 0.95, 10_000, 0);
        assert_eq!(
            a,
            bootstrap_mean_ci(&d, 0.95, 10_000, 0),
            "same seed, same interval"
        );
        assert_ne!(a, bootstrap_mean_ci(&d, 0.95, 10_000, 1));
        let mean = d.iter().sum::<f64>() / d.len() as f64;
        assert!(a.0 < mean && mean < a.1, "{a:?}");
        // Within the sample's range, and wider at 99 %.
        assert!(a.0 >= -0.1 && a.1 <= 0.9);
        let b = bootstrap_mean_ci(&d, 0.99, 10_000, 0);
        assert!(b.0 <= a.0 && b.1 >= a.1);
        // One value: a point.
        assert_eq!(bootstrap_mean_ci(&[2.0], 0.95, 100, 3), (2.0, 2.0));
    }
}
