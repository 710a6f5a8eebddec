//! Evaluation metrics over `[N, C]` score rows: top-k accuracy, mean class accuracy, per-class
//! accuracy (a CSV artefact) and ActivityNet's mAP.

use std::path::Path;

/// Is `label` among the top `k` of `scores`? Ties resolve in favour of the true class (the
/// reference's `topk` leaves their order to the implementation).
/// Is `label` among the top `k` of `scores`? Ties rank by class index (the first wins, as
/// `argmax` and `topk` pick), so a classifier that scores every class alike is right only for
/// class 0; a NaN score is never a hit.
fn hit(scores: &[f32], label: usize, k: usize) -> bool {
    let s = scores[label];
    if s.is_nan() {
        return false;
    }
    let above = scores
        .iter()
        .enumerate()
        .filter(|&(j, &x)| x > s || (x == s && j < label))
        .count();
    above < k
}

/// Accuracy figures in %, over score rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Accuracy {
    pub top1: f64,
    pub top5: f64,
    /// Mean over classes that have videos of the per-class top-1.
    pub mean_class: f64,
    /// Per class: (videos, top-1 hits).
    pub per_class: Vec<(usize, usize)>,
}

pub fn accuracy(scores: &[f32], classes: usize, labels: &[usize]) -> Accuracy {
    let n = labels.len().max(1) as f64;
    let mut per_class = vec![(0usize, 0usize); classes];
    let (mut t1, mut t5) = (0usize, 0usize);
    for (i, &l) in labels.iter().enumerate() {
        let row = &scores[i * classes..(i + 1) * classes];
        let h1 = hit(row, l, 1);
        t1 += h1 as usize;
        t5 += hit(row, l, 5.min(classes)) as usize;
        per_class[l].0 += 1;
        per_class[l].1 += h1 as usize;
    }
    let seen: Vec<f64> = per_class
        .iter()
        .filter(|c| c.0 > 0)
        .map(|c| c.1 as f64 / c.0 as f64)
        .collect();
    Accuracy {
        top1: 100.0 * t1 as f64 / n,
        top5: 100.0 * t5 as f64 / n,
        mean_class: 100.0 * seen.iter().sum::<f64>() / seen.len().max(1) as f64,
        per_class,
    }
}

/// Row-wise softmax.
pub fn softmax_rows(scores: &[f32], classes: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(scores.len());
    for row in scores.chunks_exact(classes) {
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f64> = row.iter().map(|&x| ((x - m) as f64).exp()).collect();
        let s: f64 = e.iter().sum();
        out.extend(e.iter().map(|x| (x / s) as f32));
    }
    out
}

/// Mean over classes with at least one positive of the average precision (non-interpolated:
/// the mean over positives of the precision at their rank), as torchnet's `mAPMeter` computes
/// it and scikit-learn's `average_precision_score` when scores do not tie. The reference applies
/// it to softmax scores (REFERENCE.md §2).
pub fn mean_ap(scores: &[f32], classes: usize, labels: &[usize]) -> f64 {
    let n = labels.len();
    let mut aps = Vec::new();
    let mut order: Vec<usize> = (0..n).collect();
    for c in 0..classes {
        let positives = labels.iter().filter(|&&l| l == c).count();
        if positives == 0 {
            continue;
        }
        order.sort_by(|&a, &b| scores[b * classes + c].total_cmp(&scores[a * classes + c]));
        let (mut hits, mut sum) = (0usize, 0.0f64);
        for (rank, &i) in order.iter().enumerate() {
            if labels[i] == c {
                hits += 1;
                sum += hits as f64 / (rank + 1) as f64;
            }
        }
        aps.push(sum / positives as f64);
    }
    100.0 * aps.iter().sum::<f64>() / aps.len().max(1) as f64
}

/// Writes per-class accuracy as CSV (`class,name,videos,correct,top1`).
pub fn write_per_class(
    path: &Path,
    names: &[String],
    acc: &Accuracy,
) -> Result<(), std::io::Error> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(["class", "name", "videos", "correct", "top1"])?;
    for (c, (name, (videos, correct))) in names.iter().zip(&acc.per_class).enumerate() {
        let top1 = if *videos > 0 {
            format!("{:.4}", 100.0 * *correct as f64 / *videos as f64)
        } else {
            String::new()
        };
        w.write_record([
            &c.to_string(),
            name,
            &videos.to_string(),
            &correct.to_string(),
            &top1,
        ])?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_and_nans_are_not_free_hits() {
        // Three classes scored alike: only class 0 counts as predicted.
        let a = accuracy(&[0.5; 9], 3, &[0, 1, 2]);
        assert!((a.top1 - 100.0 / 3.0).abs() < 1e-9, "{a:?}");
        let a = accuracy(&[f32::NAN; 6], 3, &[0, 1]);
        assert_eq!((a.top1, a.top5), (0.0, 0.0));
    }

    #[test]
    fn top_k_and_mean_class_accuracy() {
        // 3 classes; rows: correct, second-best, worst, correct.
        let scores = [
            0.9, 0.1, 0.0, //
            0.5, 0.4, 0.1, //
            0.1, 0.2, 0.0, //
            0.0, 0.0, 1.0,
        ];
        let a = accuracy(&scores, 3, &[0, 1, 2, 2]);
        assert_eq!(a.top1, 50.0);
        assert_eq!(a.top5, 100.0);
        // class 0: 1/1, class 1: 0/1, class 2: 1/2 → mean 50 %.
        assert!((a.mean_class - 50.0).abs() < 1e-12);
        assert_eq!(a.per_class, vec![(1, 1), (1, 0), (2, 1)]);
        let a = accuracy(&[0.2, 0.2, 0.2], 3, &[1]);
        assert_eq!(a.top1, 0.0, "ties go to the first class, as argmax picks");
        assert_eq!(a.top5, 100.0);
    }

    #[test]
    fn mean_average_precision() {
        // Class 0 positives at ranks 1 and 3 of its column: AP = (1/1 + 2/3) / 2.
        // Class 1 positive at rank 2 of its column: AP = 1/2. Class 2 has no positive.
        let scores = [
            0.9, 0.1, 0.0, //
            0.8, 0.5, 0.0, //
            0.7, 0.9, 0.0, //
            0.1, 0.2, 0.7,
        ];
        let labels = [0, 1, 0, 2];
        // Class 2: positive (row 3) ranked 1st → AP 1.
        let want = 100.0 * ((1.0 + 2.0 / 3.0) / 2.0 + 0.5 + 1.0) / 3.0;
        assert!((mean_ap(&scores, 3, &labels) - want).abs() < 1e-9);
        let p = softmax_rows(&[0.0, 0.0, 2.0f32.ln()], 3);
        assert!((p[2] - 0.5).abs() < 1e-6 && (p[0] - 0.25).abs() < 1e-6);
    }

    #[test]
    fn per_class_csv() {
        let d = std::env::temp_dir().join(format!("t4v-pc-{}", std::process::id()));
        let p = d.join("per_class.csv");
        let a = accuracy(&[1.0, 0.0, 0.0, 1.0], 2, &[0, 0]);
        write_per_class(&p, &["a, b".into(), "c".into()], &a).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "class,name,videos,correct,top1\n0,\"a, b\",2,1,50.0000\n1,c,0,0,\n"
        );
        std::fs::remove_dir_all(d).unwrap();
    }
}
