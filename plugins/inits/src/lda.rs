//! Linear discriminant analysis as scikit-learn's `LinearDiscriminantAnalysis(solver="lsqr",
//! shrinkage=α)` computes it: class means, the prior-weighted sum of per-class covariances
//! (each shrunk toward a scaled identity: (1 − α)·S + α·tr(S)/D·I), and
//! coef = lstsq(Σ, meansᵀ)ᵀ. The paper uses the coefficients as the classifier W.

use nalgebra::DMatrix;
use t4v_core::plugin::PluginError;

use crate::{check, class_means};

/// A fitted LDA.
pub struct LdaFit {
    /// `[C, D]`: the classifier.
    pub coef: DMatrix<f64>,
    /// `[C]`.
    pub intercept: Vec<f64>,
    pub means: DMatrix<f64>,
    pub priors: Vec<f64>,
}

/// The (biased, ddof = 0) covariance of the rows of `x`, shrunk with `alpha`.
fn covariance(x: &DMatrix<f64>, alpha: Option<f64>) -> DMatrix<f64> {
    let n = x.nrows() as f64;
    let mean = x.row_mean();
    let mut c = x.clone();
    for mut row in c.row_iter_mut() {
        row -= &mean;
    }
    let mut s = c.transpose() * &c / n;
    if let Some(a) = alpha {
        let d = s.nrows();
        let mu = s.trace() / d as f64;
        s *= 1.0 - a;
        for i in 0..d {
            s[(i, i)] += a * mu;
        }
    }
    s
}

/// Fits LDA on features `[N, D]` with labels in `0..classes`. `shrinkage`: `None` for the
/// empirical covariance, or α in [0, 1].
pub fn fit(
    features: &DMatrix<f64>,
    labels: &[usize],
    classes: usize,
    shrinkage: Option<f64>,
) -> Result<LdaFit, PluginError> {
    check(features, labels, classes)?;
    if let Some(a) = shrinkage
        && !(0.0..=1.0).contains(&a)
    {
        return Err(PluginError::Invalid(format!(
            "LDA shrinkage {a} is not in [0, 1]"
        )));
    }
    let n = labels.len() as f64;
    let d = features.ncols();
    let means = class_means(features, labels, classes)?;
    let mut priors = vec![0.0; classes];
    for &l in labels {
        priors[l] += 1.0 / n;
    }
    let mut sigma = DMatrix::zeros(d, d);
    for (c, prior) in priors.iter().enumerate() {
        let rows: Vec<usize> = labels
            .iter()
            .enumerate()
            .filter(|(_, l)| **l == c)
            .map(|(i, _)| i)
            .collect();
        let xg = features.select_rows(&rows);
        sigma += covariance(&xg, shrinkage) * *prior;
    }
    // Minimum-norm least squares, as LAPACK's gelsd behind scipy's lstsq.
    let svd = sigma.svd(true, true);
    let eps = f64::EPSILON * d as f64 * svd.singular_values.max();
    let coef_t = svd
        .solve(&means.transpose(), eps)
        .map_err(|e| PluginError::Invalid(format!("LDA: {e}")))?;
    let coef = coef_t.transpose();
    let intercept = (0..classes)
        .map(|c| -0.5 * means.row(c).dot(&coef.row(c)) + priors[c].ln())
        .collect();
    Ok(LdaFit {
        coef,
        intercept,
        means,
        priors,
    })
}
