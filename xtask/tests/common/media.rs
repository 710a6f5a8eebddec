//! Media made with the ffmpeg command line for the tests: clips, truncated downloads, datasets
//! as their archives unpack; and what `ffprobe` says of a file.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// `xtask data <args>`: whether it succeeded, its JSON (`Null` without `--json`), its stderr.
pub fn data(args: &[&str]) -> (bool, Value, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("data")
        .args(args)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (
        o.status.success(),
        v,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Kinetics' DeepMind CSVs under `root/annotations/` (CRLF lines): `train.csv` and
/// `validate.csv` of `label,youtube_id,time_start,time_end,split` rows.
pub fn kinetics_csvs(root: &Path, train: &[&str], val: &[&str]) {
    let ann = root.join("annotations");
    std::fs::create_dir_all(&ann).unwrap();
    for (file, rows) in [("train.csv", train), ("validate.csv", val)] {
        let body: String = std::iter::once("label,youtube_id,time_start,time_end,split")
            .chain(rows.iter().copied())
            .map(|l| format!("{l}\r\n"))
            .collect();
        std::fs::write(ann.join(file), body).unwrap();
    }
}

/// A one-second test clip made with the ffmpeg command line (codec from the extension).
pub fn clip(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let o = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
        .args(["-i", "testsrc=duration=1:size=96x72:rate=10"])
        .arg(path)
        .output()
        .expect("ffmpeg CLI");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Cuts a file to its first `n` bytes (a download that stopped).
pub fn truncate(path: &Path, n: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(n)
        .unwrap();
}

/// UCF-101 as its archives unpack: `ucfTrainTestlist/` (classes ApplyEyeMakeup and Archery,
/// CRLF lists) beside `UCF-101/<class>/<video>.avi` clips of the `train` and `test` videos,
/// `broken` cut short.
pub fn ucf_archive(root: &Path, train: &[&str], test: &[&str], broken: &str) {
    let lists = root.join("ucfTrainTestlist");
    std::fs::create_dir_all(&lists).unwrap();
    let classes = ["ApplyEyeMakeup", "Archery"];
    let class_ind: String = classes
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{} {c}\r\n", i + 1))
        .collect();
    std::fs::write(lists.join("classInd.txt"), class_ind).unwrap();
    let label = |v: &str| 1 + classes.iter().position(|c| v.starts_with(c)).unwrap();
    let trainlist: String = train
        .iter()
        .map(|v| format!("{v} {}\r\n", label(v)))
        .collect();
    std::fs::write(lists.join("trainlist01.txt"), trainlist).unwrap();
    let testlist: String = test.iter().map(|v| format!("{v}\r\n")).collect();
    std::fs::write(lists.join("testlist01.txt"), testlist).unwrap();
    for v in train.iter().chain(test) {
        clip(&root.join("UCF-101").join(v));
    }
    truncate(&root.join("UCF-101").join(broken), 1024);
}

/// A clip of `secs` seconds of `size` at `rate` frames per second (codec from the extension), a
/// moving pattern with noise so that frames differ and compress as camera frames do.
pub fn clip_of(path: &Path, secs: f64, size: &str, rate: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let o = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
        .arg("-i")
        .arg(format!(
            "testsrc2=duration={secs}:size={size}:rate={rate},noise=alls=8:allf=t"
        ))
        .args(["-pix_fmt", "yuv420p"])
        .arg(path)
        .output()
        .expect("ffmpeg CLI");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `ffprobe -count_frames`: the frames that decode, and the stream's average frame rate.
pub fn probe(path: &Path) -> (usize, f64) {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames,avg_frame_rate"])
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(path)
        .output()
        .expect("ffprobe CLI");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")[..]))
            .unwrap_or_else(|| panic!("ffprobe gave no {k}: {text}"))
            .to_string()
    };
    let rate = field("avg_frame_rate");
    let (n, d) = rate.split_once('/').unwrap_or((&rate, "1"));
    (
        field("nb_read_frames").parse().unwrap(),
        n.parse::<f64>().unwrap() / d.parse::<f64>().unwrap(),
    )
}
