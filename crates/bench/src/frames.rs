//! `prepare` against what the reference's users run to extract frames: the ffmpeg command line
//! once per video (`ffmpeg -i V -vf scale=-2:256 -q:v 2 img_%05d.jpg`), as many at once as
//! there are cores; same videos, same shorter side, every frame.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::{Stats, cores, rounds};

/// One kind of video in the benchmark: how many, and the ffmpeg source that makes each.
struct Set {
    name: &'static str,
    dataset: &'static str,
    count: usize,
    /// Size, rate, seconds, codec arguments, extension.
    size: &'static str,
    rate: u32,
    secs: u32,
    codec: &'static [&'static str],
    ext: &'static str,
}

const SETS: &[Set] = &[
    // UCF-101's clips: 320×240 MPEG-4 Part 2 in AVI at 25 fps, about 7 s.
    Set {
        name: "UCF-101-like (320×240 MPEG-4 AVI, 25 fps, 7 s)",
        dataset: "ucf101",
        count: 24,
        size: "320x240",
        rate: 25,
        secs: 7,
        codec: &["-c:v", "mpeg4", "-q:v", "4"],
        ext: "avi",
    },
    // Kinetics' clips as downloaded: H.264 MP4, 10 s, often 640×360 at 30 fps.
    Set {
        name: "Kinetics-like (640×360 H.264 MP4, 30 fps, 10 s)",
        dataset: "k400",
        count: 8,
        size: "640x360",
        rate: 30,
        secs: 10,
        codec: &[
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        ],
        ext: "mp4",
    },
];

fn ffmpeg(args: &[&str]) -> Result<()> {
    let o = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .context("running the ffmpeg command line")?;
    if !o.status.success() {
        bail!("ffmpeg {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
    Ok(())
}

/// The set's videos in the dataset's layout under `root`; their paths.
fn make(set: &Set, root: &Path) -> Result<Vec<PathBuf>> {
    let mut videos = Vec::new();
    let mut lines = String::new();
    for i in 0..set.count {
        let (rel, line) = match set.dataset {
            "ucf101" => {
                let rel = format!("UCF-101/Archery/v_Archery_g{i:02}_c01.{}", set.ext);
                let line = format!("Archery/v_Archery_g{i:02}_c01.{} 1\n", set.ext);
                (rel, line)
            }
            _ => {
                let id = format!("vid{i:08}");
                (
                    format!("train/archery/{id}_000000_000010.{}", set.ext),
                    format!("archery,{id},0,10,train\n"),
                )
            }
        };
        let path = root.join(&rel);
        std::fs::create_dir_all(path.parent().expect("in a folder"))?;
        // Camera-like frames: a moving pattern with fresh noise in each, so that neither the
        // decoder nor the JPEG encoder gets an easy ride.
        let src = format!(
            "testsrc2=duration={}:size={}:rate={},noise=alls=12:allf=t+u,hue=H=t",
            set.secs, set.size, set.rate
        );
        let mut args = vec!["-f", "lavfi", "-i", &src];
        args.extend_from_slice(set.codec);
        let p = path.to_string_lossy().into_owned();
        args.push(&p);
        ffmpeg(&args)?;
        videos.push(path);
        lines.push_str(&line);
    }
    match set.dataset {
        "ucf101" => {
            let l = root.join("ucfTrainTestlist");
            std::fs::create_dir_all(&l)?;
            std::fs::write(l.join("classInd.txt"), "1 Archery\n")?;
            std::fs::write(l.join("trainlist01.txt"), lines)?;
            std::fs::write(l.join("testlist01.txt"), "")?;
        }
        _ => {
            let a = root.join("annotations");
            std::fs::create_dir_all(&a)?;
            std::fs::write(
                a.join("train.csv"),
                format!("label,youtube_id,time_start,time_end,split\n{lines}"),
            )?;
        }
    }
    Ok(videos)
}

/// The size of the first JPEG under a folder.
fn size(dir: &Path) -> Option<(u32, u32)> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    entries.into_iter().find_map(|p| {
        if p.is_dir() {
            size(&p)
        } else {
            image::image_dimensions(&p).ok()
        }
    })
}

/// Frames and bytes under a folder.
fn count(dir: &Path) -> (usize, u64) {
    let (mut n, mut bytes) = (0, 0);
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            let (a, b) = count(&p);
            n += a;
            bytes += b;
        } else if p.extension().is_some_and(|x| x == "jpg") {
            n += 1;
            bytes += e.metadata().map_or(0, |m| m.len());
        }
    }
    (n, bytes)
}

/// `prepare` with the peer's settings (shorter side 256, every frame) into a fresh folder.
fn ours(set: &Set, root: &Path, out: &Path, jobs: usize) -> Result<f64> {
    let _ = std::fs::remove_dir_all(out);
    let t = Instant::now();
    let o = Command::new(crate::cli())
        .args(["prepare", set.dataset, "--root"])
        .arg(root)
        .arg("--out")
        .arg(out)
        .args(["--short-side", "256", "--fps", "native", "--jobs"])
        .arg(jobs.to_string())
        .output()?;
    let secs = t.elapsed().as_secs_f64();
    if !o.status.success() || !String::from_utf8_lossy(&o.stdout).contains(" 0 failed") {
        bail!(
            "prepare {}: {}{}",
            set.dataset,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(secs)
}

/// The ffmpeg command line once per video, `jobs` at a time.
fn peer(videos: &[PathBuf], out: &Path, jobs: usize) -> Result<f64> {
    let _ = std::fs::remove_dir_all(out);
    let t = Instant::now();
    let mut running: Vec<std::process::Child> = Vec::new();
    for (i, v) in videos.iter().enumerate() {
        if running.len() == jobs {
            let mut c = running.remove(0);
            if !c.wait()?.success() {
                bail!("ffmpeg failed");
            }
        }
        let dir = out.join(i.to_string());
        std::fs::create_dir_all(&dir)?;
        running.push(
            Command::new("ffmpeg")
                .args(["-hide_banner", "-loglevel", "error", "-i"])
                .arg(v)
                .args(["-vf", "scale=-2:256", "-q:v", "2"])
                .arg(dir.join("img_%05d.jpg"))
                .spawn()
                .context("running the ffmpeg command line")?,
        );
    }
    for mut c in running {
        if !c.wait()?.success() {
            bail!("ffmpeg failed");
        }
    }
    Ok(t.elapsed().as_secs_f64())
}

pub fn prepare() -> Result<()> {
    if !cfg!(feature = "video") {
        println!("prepare: needs a build with `--features video`; skipped");
        return Ok(());
    }
    let jobs = cores();
    let n = rounds();
    println!(
        "prepare: frames/s of `prepare` (--short-side 256 --fps native, quality 90, {jobs} at once) against `ffmpeg -i V -vf scale=-2:256 -q:v 2 img_%05d.jpg` per video, {jobs} at once; {n} rounds"
    );
    for set in SETS {
        let tmp = tempfile::tempdir()?;
        let root = tmp.path().join("src");
        let videos = make(set, &root)?;
        let (a, b) = (tmp.path().join("ours"), tmp.path().join("peer"));
        let (mut mine, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..n {
            mine.push(ours(set, &root, &a, jobs)?);
            theirs.push(peer(&videos, &b, jobs)?);
        }
        let ((fa, ba), (fb, bb)) = (count(&a.join("frames")), count(&b));
        if fa != fb {
            bail!("prepare wrote {fa} frames, the ffmpeg command line {fb}");
        }
        let rate =
            |secs: &[f64]| Stats::of(&secs.iter().map(|s| fa as f64 / s).collect::<Vec<_>>());
        let (ra, rb) = (rate(&mine), rate(&theirs));
        println!(
            "  {}: {} videos, {fa} frames\n    prepare          {} frames/s, {:.1} KB/frame, {:?}\n    ffmpeg CLI       {} frames/s, {:.1} KB/frame, {:?}\n    ratio (median)   {:.2}×",
            set.name,
            videos.len(),
            ra.show(0),
            ba as f64 / fa as f64 / 1e3,
            size(&a.join("frames")).unwrap_or_default(),
            rb.show(0),
            bb as f64 / fb as f64 / 1e3,
            size(&b).unwrap_or_default(),
            ra.median / rb.median
        );
    }
    Ok(())
}
