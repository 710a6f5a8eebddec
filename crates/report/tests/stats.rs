//! mean ± std and the paired tests against numpy / scipy, adjusted p-values against
//! statsmodels' `multipletests` (fixture made by `tests/data/make_stats_fixture.py`).

use serde_json::Value;
use t4v_report::stats::{Correction, mean_std, paired};

fn fixture() -> Value {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/stats_reference.json"),
    )
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn statistics_match_numpy_and_scipy() {
    let fixture = fixture();
    let close = |a: f64, b: f64, tol: f64| (a - b).abs() <= tol * b.abs().max(1.0);
    for c in fixture["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let (a, b) = (floats(&c["a"]), floats(&c["b"]));
        let (mean, std) = mean_std(&a);
        assert!(
            close(mean, c["mean_a"].as_f64().unwrap(), 1e-12),
            "{name}: mean"
        );
        assert!(
            close(std, c["std_a"].as_f64().unwrap(), 1e-12),
            "{name}: std"
        );
        let p = paired(&a, &b);
        assert!(
            close(p.t, c["t"].as_f64().unwrap(), 1e-10),
            "{name}: t {}",
            p.t
        );
        assert!(
            close(p.t_p, c["t_p"].as_f64().unwrap(), 1e-9),
            "{name}: t-test p {} vs {}",
            p.t_p,
            c["t_p"]
        );
        assert_eq!(p.w_plus, c["w_plus"].as_f64().unwrap(), "{name}: W+");
        assert!(
            close(p.wilcoxon_p, c["wilcoxon_p"].as_f64().unwrap(), 1e-9),
            "{name}: Wilcoxon p {} vs {}",
            p.wilcoxon_p,
            c["wilcoxon_p"]
        );
    }
}

#[test]
fn adjusted_p_values_match_statsmodels() {
    let fixture = fixture();
    let cases = fixture["corrections"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let p = floats(&c["p"]);
        for (method, key) in [
            (Correction::Holm, "holm"),
            (Correction::BenjaminiHochberg, "bh"),
        ] {
            let got = method.adjust(&p);
            let want = floats(&c[key]);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-12, "{name} {key}: {got:?} vs {want:?}");
            }
        }
        assert_eq!(Correction::None.adjust(&p), p);
    }
    // A test that could not be made (NaN) is left out of the count and stays NaN.
    let p = Correction::Holm.adjust(&[0.01, f64::NAN, 0.02]);
    assert!(p[1].is_nan());
    assert_eq!((p[0], p[2]), (0.02, 0.02));
}
