//! The worker → coordinator protocol: one JSON object per line on the worker's stdout. Only the
//! coordinator opens the store; workers report everything through these events.

use std::io::Write;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One event of a worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The worker is up and has read its job, on this machine (a cluster node under Slurm).
    Started {
        pid: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<String>,
    },
    /// Work done so far, for the coordinator's display.
    Progress { done: u64, total: u64 },
    /// One point of a metric series (`split` is `train`, `val`, `test`, ...).
    Metric {
        split: String,
        name: String,
        step: u64,
        #[serde(with = "finite_or_tag")]
        value: f64,
    },
    /// A summary value of the run (e.g. the final test top-1).
    Summary {
        name: String,
        #[serde(with = "finite_or_tag")]
        value: f64,
    },
    /// A file the run produced, relative to the run folder or absolute.
    Artefact { name: String, path: String },
    /// A free-form line for the run's log.
    Log { message: String },
    /// The run failed for this reason (the worker then exits non-zero).
    Failed { reason: String },
    /// The run completed; without this event a zero exit is still a failure.
    Finished,
    /// The fingerprint of the dataset the run reads (kept with its attempt).
    Data { fingerprint: String },
}

impl Event {
    /// Is this a loss value that is not finite (the coordinator stops such a run)?
    pub fn non_finite_loss(&self) -> bool {
        matches!(self, Event::Metric { name, value, .. } if name.contains("loss") && !value.is_finite())
    }
}

/// JSON has no NaN or infinity: they travel as the strings `"NaN"`, `"inf"`, `"-inf"`.
mod finite_or_tag {
    use super::*;

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_nan() {
            s.serialize_str("NaN")
        } else if v.is_infinite() {
            s.serialize_str(if *v > 0.0 { "inf" } else { "-inf" })
        } else {
            s.serialize_f64(*v)
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Num(f64),
        Tag(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Num(v) => Ok(v),
            Raw::Tag(t) => match t.as_str() {
                "NaN" | "nan" => Ok(f64::NAN),
                "inf" | "+inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                other => Err(serde::de::Error::custom(format!(
                    "`{other}` is not a number"
                ))),
            },
        }
    }
}

/// Writes events as JSON lines, flushing each so the coordinator sees them at once.
/// Collects what is written and hands it to the file in one append, then syncs, on `flush`.
struct SyncedLines {
    file: std::fs::File,
    line: Vec<u8>,
}

impl Write for SyncedLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.write_all(&self.line)?;
        self.line.clear();
        self.file.sync_data()
    }
}

pub struct Reporter {
    out: Box<dyn Write + Send>,
}

impl Reporter {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self { out }
    }

    /// A reporter on the process's stdout (the worker's channel to the coordinator).
    pub fn stdout() -> Self {
        Self::new(Box::new(std::io::stdout()))
    }

    /// A reporter appending to an event file (a worker under a batch system, whose
    /// coordinator reads the file): each event is one whole line, on disk before `emit`
    /// returns, so a reader never sees half an event and a crash loses none already emitted.
    pub fn file(path: &std::path::Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self::new(Box::new(SyncedLines {
            file,
            line: Vec::new(),
        })))
    }

    pub fn emit(&mut self, event: &Event) {
        let line = serde_json::to_string(event).expect("events serialise");
        // A closed pipe means the coordinator is gone; the worker will be stopped anyway.
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
    }

    pub fn metric(&mut self, split: &str, name: &str, step: u64, value: f64) {
        self.emit(&Event::Metric {
            split: split.into(),
            name: name.into(),
            step,
            value,
        });
    }

    pub fn summary(&mut self, name: &str, value: f64) {
        self.emit(&Event::Summary {
            name: name.into(),
            value,
        });
    }

    pub fn progress(&mut self, done: u64, total: u64) {
        self.emit(&Event::Progress { done, total });
    }

    pub fn artefact(&mut self, name: &str, path: &str) {
        self.emit(&Event::Artefact {
            name: name.into(),
            path: path.into(),
        });
    }

    pub fn log(&mut self, message: impl Into<String>) {
        self.emit(&Event::Log {
            message: message.into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_round_trip() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.25] {
            let e = Event::Metric {
                split: "train".into(),
                name: "loss".into(),
                step: 3,
                value: v,
            };
            let line = serde_json::to_string(&e).unwrap();
            let back: Event = serde_json::from_str(&line).unwrap();
            match back {
                Event::Metric { value, .. } => {
                    assert!(value.to_bits() == v.to_bits() || (value.is_nan() && v.is_nan()))
                }
                other => panic!("unexpected {other:?}"),
            }
            assert_eq!(e.non_finite_loss(), !v.is_finite());
        }
        assert!(serde_json::from_str::<Event>(r#"{"event":"finished"}"#).is_ok());
    }
}
