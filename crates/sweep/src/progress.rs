//! The sweep's display: a progress bar with counts and an ETA on a terminal, plain log lines
//! otherwise (CI logs, files, pipes).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
    done: usize,
    failed: usize,
    running: usize,
    jobs: usize,
    durations: Vec<Duration>,
    start: Instant,
    /// Work done inside each running run that reports it: (done, total, when last printed).
    within: BTreeMap<String, (u64, u64, Instant)>,
}

/// Plain mode prints a run's own progress at most this often.
const WITHIN_EVERY: Duration = Duration::from_secs(10);

impl Progress {
    pub fn new(total: usize, jobs: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            b.enable_steady_tick(Duration::from_millis(250));
            b
        });
        let p = Progress {
            bar,
            total,
            done: 0,
            failed: 0,
            running: 0,
            jobs: jobs.max(1),
            durations: Vec::new(),
            start: Instant::now(),
            within: BTreeMap::new(),
        };
        p.refresh();
        p
    }

    /// Estimated time left: runs left × median run time ÷ parallel jobs.
    pub fn eta(&self) -> Option<Duration> {
        if self.durations.is_empty() {
            return None;
        }
        let mut d = self.durations.clone();
        d.sort();
        let median = d[d.len() / 2];
        let left = self.total - self.done - self.failed;
        let waves = left.div_ceil(self.jobs);
        Some(median * waves as u32)
    }

    fn counts(&self) -> String {
        let pending = self.total - self.done - self.failed - self.running;
        let eta = self
            .eta()
            .filter(|_| self.done + self.failed < self.total)
            .map(|d| format!(" · ETA {}", fmt_duration(d)))
            .unwrap_or_default();
        let within: String = self
            .within
            .iter()
            .map(|(id, (d, t, _))| {
                format!(" · {} {}%", &id[..id.len().min(8)], 100 * d / t.max(&1))
            })
            .collect();
        format!(
            "done {} · running {} · failed {} · pending {}{eta}{within}",
            self.done, self.running, self.failed, pending
        )
    }

    fn refresh(&self) {
        if let Some(b) = &self.bar {
            b.set_position((self.done + self.failed) as u64);
            b.set_message(self.counts());
        }
    }

    /// A line above the bar, or on stderr.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    pub fn started(&mut self, id: &str, label: &str) {
        self.running += 1;
        if self.bar.is_none() {
            eprintln!(
                "[{}/{}] start  {id}  {label}",
                self.done + self.failed + 1,
                self.total
            );
        }
        self.refresh();
    }

    /// A running run's own progress (its epochs or steps): in the bar's message on a terminal,
    /// otherwise a plain line at most every [`WITHIN_EVERY`] per run, so a long run is not
    /// silent.
    pub fn run_progress(&mut self, id: &str, done: u64, total: u64) {
        // The first line comes after WITHIN_EVERY too: short runs print none.
        let entry = self
            .within
            .entry(id.to_string())
            .or_insert((0, 0, Instant::now()));
        entry.0 = done;
        entry.1 = total;
        if self.bar.is_some() {
            self.refresh();
            return;
        }
        if entry.2.elapsed() >= WITHIN_EVERY && done < total {
            entry.2 = Instant::now();
            eprintln!(
                "        {id} at {done}/{total} ({}%)",
                100 * done / total.max(1)
            );
        }
    }

    pub fn finished(&mut self, id: &str, ok: bool, took: Duration, reason: Option<&str>) {
        self.within.remove(id);
        self.running -= 1;
        if ok {
            self.done += 1;
            self.durations.push(took);
        } else {
            self.failed += 1;
        }
        let line = match reason {
            Some(r) => format!("failed {id} after {}: {r}", fmt_duration(took)),
            None => format!("done   {id} in {}", fmt_duration(took)),
        };
        let counts = self.counts();
        match &self.bar {
            Some(_) if ok => {}
            Some(b) => b.println(line),
            None => eprintln!(
                "[{}/{}] {line} ({counts})",
                self.done + self.failed,
                self.total
            ),
        }
        self.refresh();
    }

    /// A run that will not finish in this sweep (interrupted by --fail-fast).
    pub fn stopped(&mut self, id: &str) {
        self.running -= 1;
        self.within.remove(id);
        self.total -= 1;
        self.refresh();
    }

    /// A run that will not start (a dependency failed).
    pub fn blocked(&mut self) {
        self.total -= 1;
        self.refresh();
    }

    pub fn finish(self) -> Duration {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        self.start.elapsed()
    }
}

pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{}h{:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}
