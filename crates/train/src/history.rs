//! The metric points a checkpointed run has reported, saved with each checkpoint: a re-attempt
//! reports them again before it continues. The coordinator stores points as they arrive through
//! the worker's pipe, so an attempt killed just after a checkpoint can leave its last points
//! unstored while the checkpoint, on disk, is already past them; reporting them again (a store
//! series keeps one point per step) closes that gap.

use serde::{Deserialize, Serialize};
use t4v_core::Reporter;

/// A checkpoint's file of points.
pub const FILE: &str = "metrics.json";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    series: Vec<Series>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Series {
    split: String,
    name: String,
    points: Vec<(u64, f64)>,
}

impl History {
    /// Reports a point and keeps it (a non-finite one, which stops a run, is only reported).
    pub fn metric(&mut self, reporter: &mut Reporter, split: &str, name: &str, step: u64, v: f64) {
        reporter.metric(split, name, step, v);
        if !v.is_finite() {
            return;
        }
        let s = match self
            .series
            .iter_mut()
            .position(|s| s.split == split && s.name == name)
        {
            Some(i) => &mut self.series[i],
            None => {
                self.series.push(Series {
                    split: split.into(),
                    name: name.into(),
                    points: Vec::new(),
                });
                self.series.last_mut().expect("just pushed")
            }
        };
        match s.points.binary_search_by_key(&step, |p| p.0) {
            Ok(i) => s.points[i].1 = v,
            Err(i) => s.points.insert(i, (step, v)),
        }
    }

    /// Reports every point kept, again.
    pub fn replay(&self, reporter: &mut Reporter) {
        for s in &self.series {
            for &(step, v) in &s.points {
                reporter.metric(&s.split, &s.name, step, v);
            }
        }
    }

    /// As JSON, for [`FILE`] (values round-trip exactly).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("points serialise")
    }

    pub fn len(&self) -> usize {
        self.series.iter().map(|s| s.points.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_round_trip_and_replace_by_step() {
        let mut h = History::default();
        let mut r = Reporter::new(Box::new(std::io::sink()));
        h.metric(&mut r, "train", "loss", 2, 0.1 + 0.2);
        h.metric(&mut r, "train", "loss", 1, 1.0 / 3.0);
        h.metric(&mut r, "train", "loss", 2, 0.5);
        h.metric(&mut r, "val", "top1", 1, 12.5);
        h.metric(&mut r, "train", "loss", 3, f64::NAN);
        assert_eq!(h.len(), 3);
        let back: History = serde_json::from_value(h.to_json()).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.series[0].points, [(1, 1.0 / 3.0), (2, 0.5)]);
    }
}
