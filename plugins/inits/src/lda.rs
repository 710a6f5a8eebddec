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
    // Σ = Σ_c p_c·((1 − α)·S_c + α·tr(S_c)/D·I), S_c the biased covariance of class c. With
    // p_c = n_c / N, Σ_c p_c·S_c = X̃ᵀX̃ / N for X̃ = the features centred on their class mean,
    // and p_c·tr(S_c) = ‖X̃_c‖² / N: one large product instead of C small ones.
    let mut centred = features.clone();
    let mut trace = 0.0;
    for (i, mut row) in centred.row_iter_mut().enumerate() {
        row -= means.row(labels[i]);
        trace += row.norm_squared();
    }
    if trace == 0.0 {
        return Err(PluginError::Invalid(
            "LDA is undefined here: no class has two different feature vectors, so there is no \
             within-class covariance (few-shot K = 1?); use K ≥ 2 or another init"
                .into(),
        ));
    }
    let mut sigma = centred.transpose() * &centred / n;
    if let Some(a) = shrinkage {
        sigma *= 1.0 - a;
        let shift = a * trace / (n * d as f64);
        for i in 0..d {
            sigma[(i, i)] += shift;
        }
    }
    // coef = lstsq(Σ, meansᵀ)ᵀ. Σ is symmetric positive definite whenever it has full rank
    // (always with shrinkage > 0): a Cholesky solve, which gives what LAPACK's gelsd behind
    // scipy's lstsq gives. Otherwise the minimum-norm least-squares solution through the SVD.
    let coef_t = match sigma.clone().cholesky() {
        Some(ch) => ch.solve(&means.transpose()),
        None => {
            let svd = sigma.svd(true, true);
            let eps = f64::EPSILON * d as f64 * svd.singular_values.max();
            svd.solve(&means.transpose(), eps)
                .map_err(|e| PluginError::Invalid(format!("LDA: {e}")))?
        }
    };
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
