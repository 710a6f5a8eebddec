//! LDA against scikit-learn (`tests/data/make_lda_fixture.py`).

use nalgebra::DMatrix;
use serde_json::Value;
use t4v_inits::lda::fit;

#[test]
fn coefficients_match_scikit_learn() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/lda_reference.json"
    ))
    .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let mut checked = 0;
    for case in v["cases"].as_array().unwrap() {
        let rows: Vec<Vec<f64>> = case["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect()
            })
            .collect();
        let x =
            DMatrix::from_row_iterator(rows.len(), rows[0].len(), rows.iter().flatten().copied());
        let y: Vec<usize> = case["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_u64().unwrap() as usize)
            .collect();
        let classes = case["classes"].as_u64().unwrap() as usize;
        for f in case["fits"].as_array().unwrap() {
            let shrink = f["shrinkage"].as_f64();
            let got = fit(&x, &y, classes, shrink).unwrap();
            let want: Vec<Vec<f64>> = f["coef"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    r.as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_f64().unwrap())
                        .collect()
                })
                .collect();
            let scale = want.iter().flatten().fold(0.0f64, |m, x| m.max(x.abs()));
            for (c, row) in want.iter().enumerate() {
                for (j, w) in row.iter().enumerate() {
                    let d = (got.coef[(c, j)] - w).abs();
                    assert!(
                        d <= 1e-9 * scale.max(1.0),
                        "{} α={shrink:?} coef[{c},{j}]: {} vs {w}",
                        case["name"],
                        got.coef[(c, j)]
                    );
                }
                let wi = f["intercept"][c].as_f64().unwrap();
                assert!(
                    (got.intercept[c] - wi).abs() <= 1e-8 * wi.abs().max(1.0),
                    "intercept {c}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 5);
}

#[test]
fn bad_shrinkage_is_an_error() {
    let x = DMatrix::from_row_slice(4, 2, &[0.0, 1.0, 1.0, 0.0, 5.0, 5.0, 6.0, 4.0]);
    assert_eq!(
        fit(&x, &[0, 0, 1, 1], 2, Some(1.5))
            .err()
            .unwrap()
            .to_string(),
        "LDA shrinkage 1.5 is not in [0, 1]"
    );
}

#[test]
fn one_sample_per_class_is_an_error_not_nan() {
    let x = DMatrix::from_row_slice(3, 2, &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    let e = fit(&x, &[0, 1, 2], 3, Some(0.1)).err().unwrap().to_string();
    assert!(e.contains("no within-class covariance"), "{e}");
}
