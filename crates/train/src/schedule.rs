//! The learning-rate schedule of the reference (REFERENCE.md §1.6): linear warm-up from 0 for
//! `warmup` epochs, then cosine to `final_factor × base` at `total` epochs, evaluated at the
//! fractional epoch `epoch + i / iters` and updated at iteration 0 and whenever
//! `(i + 1) % every == 0`.

#[derive(Clone, Debug, PartialEq)]
pub struct WarmupCosine {
    pub total_epochs: f64,
    pub warmup_epochs: f64,
    pub final_factor: f64,
}

impl WarmupCosine {
    /// The factor (× base lr) at fractional epoch `e`.
    pub fn factor(&self, e: f64) -> f64 {
        if e < self.warmup_epochs {
            return e / self.warmup_epochs;
        }
        let span = (self.total_epochs - self.warmup_epochs).max(f64::MIN_POSITIVE);
        let p = ((e - self.warmup_epochs) / span).min(1.0);
        self.final_factor
            + (1.0 - self.final_factor) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
    }
}

/// Steps a schedule the way the reference's training loop does.
#[derive(Clone, Debug)]
pub struct Stepper {
    pub schedule: WarmupCosine,
    pub iters_per_epoch: usize,
    pub every: usize,
    factor: f64,
}

impl Stepper {
    pub fn new(schedule: WarmupCosine, iters_per_epoch: usize, every: usize) -> Self {
        Self {
            schedule,
            iters_per_epoch: iters_per_epoch.max(1),
            every: every.max(1),
            factor: 0.0,
        }
    }

    /// The factor in force for iteration `i` of `epoch` (updating it when the reference would).
    pub fn at(&mut self, epoch: usize, i: usize) -> f64 {
        if i == 0 || (i + 1).is_multiple_of(self.every) {
            self.factor = self
                .schedule
                .factor(epoch as f64 + i as f64 / self.iters_per_epoch as f64);
        }
        self.factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> WarmupCosine {
        WarmupCosine {
            total_epochs: 30.0,
            warmup_epochs: 5.0,
            final_factor: 0.0,
        }
    }

    #[test]
    fn matches_the_released_logs() {
        // K400 (940 iterations/epoch), lr 5e-5: the log prints 9.57e-08 at [0][10/940].
        let mut k400 = Stepper::new(reference(), 940, 10);
        let lr: Vec<f64> = (0..=10).map(|i| 5e-5 * k400.at(0, i)).collect();
        assert_eq!(lr[0], 0.0);
        assert_eq!(format!("{:.2e}", lr[10]), "9.57e-8");
        // 5.00e-05 at the start of epoch 5.
        assert_eq!(format!("{:.2e}", 5e-5 * k400.at(5, 0)), "5.00e-5");
        // HMDB (28 iterations/epoch): 4.99e-05 at [5][20/28].
        let mut hmdb = Stepper::new(reference(), 28, 10);
        let at20 = (0..=20).map(|i| hmdb.at(5, i)).last().unwrap();
        assert_eq!(format!("{:.2e}", 5e-5 * at20), "4.99e-5");
        // ~0 at the end.
        assert!(reference().factor(30.0) < 1e-12);
        // Between updates the factor holds.
        let mut s = Stepper::new(reference(), 940, 10);
        assert_eq!(s.at(0, 9), s.at(0, 10));
    }
}
