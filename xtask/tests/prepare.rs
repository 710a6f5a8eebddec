//! `prepare <dataset>`: downloaded videos (made with the ffmpeg command line, in each dataset's
//! own layout) become the reference's frame folders, lists and label CSV, checked against what
//! `ffprobe -count_frames` says of each video; a killed `prepare` resumes with complete folders
//! only; runs on the frames score what runs on the videos score.
#![cfg(feature = "video")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::media::{clip, clip_of, data, kinetics_csvs, probe, ucf_archive};

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .unwrap()
}

fn prepare(dataset: &str, root: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "prepare",
        dataset,
        "--root",
        root.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = xtask(&args);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    text
}

fn data_json(args: &[&str]) -> Value {
    let args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
    let (ok, j, err) = data(&args);
    assert!(ok, "{err}");
    j
}

/// The files of a frame folder, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

/// Frames at `fps` of a video of `n` frames at `r` per second, over the seconds `span`: output
/// `k` at `t = start + k/fps` (before the span's end) is source frame `round(t·r)`, when that
/// exists. Without `fps`, the frames in the span.
fn resampled(n: usize, r: f64, span: Option<[f64; 2]>, fps: Option<f64>) -> usize {
    let [start, end] = span.unwrap_or([0.0, f64::INFINITY]);
    match fps {
        None => {
            let first = (start * r - 1e-9).ceil() as usize;
            let last = ((end * r - 1e-9).ceil() as usize).min(n);
            last.saturating_sub(first)
        }
        Some(f) => (0..)
            .map(|k| start + k as f64 / f)
            .take_while(|t| *t < end && (t * r).round() < n as f64)
            .count(),
    }
}

/// A folder holds exactly `n` frames named by `name(0..n)`, each a JPEG of `size`.
fn check_folder(dir: &Path, n: usize, name: impl Fn(usize) -> String, size: (u32, u32)) {
    let want: Vec<String> = {
        let mut w: Vec<String> = (0..n).map(&name).collect();
        w.sort();
        w
    };
    assert_eq!(names(dir), want, "{}", dir.display());
    let img = image::open(dir.join(name(n - 1))).unwrap();
    assert_eq!((img.width(), img.height()), size, "{}", dir.display());
}

/// The list file's `(folder, frames, label)` lines.
fn list(path: &Path) -> Vec<(String, usize, usize)> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (
                c[0].to_string(),
                c[1].parse().unwrap(),
                c[2].parse().unwrap(),
            )
        })
        .collect()
}

/// UCF-101 (AVI, CRLF lists, a truncated file) and HMDB-51 (class folders, split files) as
/// their archives unpack: folders named as the reference's frames (`image_{:04}.jpg`,
/// `image_{:06}.jpg`), counts equal to ffprobe's, the broken video a named failure absent from
/// the lists, and the output read by `data` as it is and through its lists.
#[test]
fn ucf_and_hmdb_become_the_references_frame_folders() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("ucf");
    let train = [
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
        "Archery/v_Archery_g01_c01.avi",
    ];
    let test = [
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi",
        "Archery/v_Archery_g02_c01.avi",
    ];
    ucf_archive(&src, &train, &test, "Archery/v_Archery_g02_c01.avi");
    let out = d.path().join("ucf-frames");
    let text = prepare("ucf101", &src, &out, &["--short-side", "64"]);
    assert!(
        text.contains("3 videos extracted, 0 already done, 1 failed"),
        "{text}"
    );
    assert!(text.contains("split 2: skipped"), "{text}");
    for v in train.iter().chain(&test[..1]) {
        let (n, _) = probe(&src.join("UCF-101").join(v));
        // 96×72 → shorter side 64, the longer one 85.3 rounded to even.
        check_folder(
            &out.join("frames").join(v.trim_end_matches(".avi")),
            n,
            |i| format!("image_{:04}.jpg", i + 1),
            (86, 64),
        );
    }
    assert!(!out.join("frames/Archery/v_Archery_g02_c01").exists());
    assert!(!out.join(".partial").exists());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let failures = manifest["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{manifest}");
    assert!(
        failures[0]["reason"]
            .as_str()
            .unwrap()
            .contains("v_Archery_g02_c01.avi"),
        "{manifest}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("lists/labels.csv")).unwrap(),
        "id,name\n0,ApplyEyeMakeup\n1,Archery\n"
    );
    let train_list = list(&out.join("lists/train_split1.txt"));
    assert_eq!(
        train_list,
        vec![
            ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01".into(), 10, 0),
            ("Archery/v_Archery_g01_c01".into(), 10, 1)
        ]
    );
    assert_eq!(list(&out.join("lists/test_split1.txt")).len(), 1);

    // `data` reads the output as it is (the annotations were copied beside `frames/`): the
    // broken video is the one missing folder.
    let out_s = out.to_str().unwrap();
    let j = data_json(&["ucf101", "--root", out_s]);
    assert!(j["layout"].as_str().unwrap().starts_with("frames/"), "{j}");
    assert_eq!(
        (j["splits"]["train"].as_u64(), j["splits"]["test"].as_u64()),
        (Some(2), Some(2))
    );
    let problems = j["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("frames/Archery/v_Archery_g02_c01"),
        "{problems:?}"
    );
    // ... and through the written lists, with the same counts and no problem.
    for (name, n) in [("train_split1", 2), ("test_split1", 1)] {
        let l = out.join(format!("lists/{name}.txt"));
        let labels = out.join("lists/labels.csv");
        let j = data_json(&[
            "ucf101",
            "--root",
            out_s,
            "--list",
            l.to_str().unwrap(),
            "--labels",
            labels.to_str().unwrap(),
        ]);
        assert_eq!(j["splits"]["list"].as_u64(), Some(n), "{j}");
        assert_eq!(j["problems"].as_array().unwrap().len(), 0, "{j}");
    }
    // A second run makes nothing; one with other frames is refused.
    let again = prepare("ucf101", &src, &out, &["--short-side", "64"]);
    assert!(
        again.contains("0 videos extracted, 3 already done, 1 failed"),
        "{again}"
    );
    let o = xtask(&[
        "prepare",
        "ucf101",
        "--root",
        src.to_str().unwrap(),
        "--out",
        out_s,
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("manifest.json") && err.contains("short side 64"),
        "{err}"
    );

    // HMDB-51: class folders of AVIs under the root, split files beside them.
    let src = d.path().join("hmdb");
    let splits = src.join("testTrainMulti_7030_splits");
    std::fs::create_dir_all(&splits).unwrap();
    for (class, videos) in [("brush_hair", ["a", "b"]), ("cartwheel", ["c", "d"])] {
        let mut lines = String::new();
        for (k, v) in videos.iter().enumerate() {
            clip(&src.join(class).join(format!("{v}.avi")));
            lines.push_str(&format!("{v}.avi {}\r\n", k + 1));
        }
        std::fs::write(splits.join(format!("{class}_test_split1.txt")), lines).unwrap();
    }
    let out = d.path().join("hmdb-frames");
    let text = prepare("hmdb51", &src, &out, &["--short-side", "0"]);
    assert!(
        text.contains("4 videos extracted, 0 already done, 0 failed"),
        "{text}"
    );
    let (n, _) = probe(&src.join("brush_hair/a.avi"));
    check_folder(
        &out.join("frames/brush_hair/a"),
        n,
        |i| format!("image_{:06}.jpg", i + 1),
        (96, 72),
    );
    assert_eq!(
        std::fs::read_to_string(out.join("lists/labels.csv")).unwrap(),
        "id,name\n0,brush hair\n1,cartwheel\n"
    );
    assert_eq!(
        list(&out.join("lists/test_split1.txt")),
        vec![("brush_hair/b".into(), n, 0), ("cartwheel/d".into(), n, 1)]
    );
    let j = data_json(&["hmdb51", "--root", out.to_str().unwrap()]);
    assert_eq!(j["problems"].as_array().unwrap().len(), 0, "{j}");
    assert_eq!(j["splits"]["train"].as_u64(), Some(2));
}

/// Kinetics (MP4 in class folders, WebM without) at the reference's 30 fps and shorter side 320,
/// from 25 and 30 fps clips; ActivityNet (`v_<id>.*` beside its JSON) at 1 fps, each training
/// segment its own folder. Counts follow the resampling rule from ffprobe's counts and rates.
#[test]
fn kinetics_resamples_and_activitynet_cuts_segments() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("k400");
    kinetics_csvs(
        &src,
        &[
            "abseiling,aaa,10,20,train",
            "\"air drumming\",bbb,0,10,train",
        ],
        &["abseiling,ccc,5,15,val"],
    );
    let videos = [
        (
            "train/abseiling/aaa_000010_000020.mp4",
            25,
            "abseiling/aaa_000010_000020",
        ),
        (
            "train/air drumming/bbb_000000_000010.mp4",
            30,
            "air drumming/bbb_000000_000010",
        ),
        (
            "val/ccc_000005_000015.webm",
            25,
            "abseiling/ccc_000005_000015",
        ),
    ];
    for (v, rate, _) in videos {
        clip_of(&src.join(v), 1.6, "160x120", rate);
    }
    let out = d.path().join("k400-frames");
    let text = prepare("k400", &src, &out, &[]);
    assert!(text.contains("3 videos extracted"), "{text}");
    assert!(
        text.contains("img_{:05}.jpg, shorter side 320, 30 fps"),
        "{text}"
    );
    for (v, _, folder) in videos {
        let (n, r) = probe(&src.join(v));
        let want = resampled(n, r, None, Some(30.0));
        if r == 25.0 {
            assert!(want > n, "25 fps → 30 fps repeats frames: {want} of {n}");
        }
        check_folder(
            &out.join("frames").join(folder),
            want,
            |i| format!("img_{:05}.jpg", i + 1),
            (426, 320),
        );
    }
    let j = data_json(&["k400", "--root", out.to_str().unwrap()]);
    assert_eq!(j["problems"].as_array().unwrap().len(), 0, "{j}");
    assert_eq!(
        (j["splits"]["train"].as_u64(), j["splits"]["val"].as_u64()),
        (Some(2), Some(1))
    );

    // The reference's Kinetics lists name videos by bare YouTube id (`--07WQ2iBlw 272 166`,
    // `0wR5jVB-WPk.mp4 0`): found among the split folders' clip files, prepared as flat folders
    // named as the list names them.
    let ids = d.path().join("ids.txt");
    std::fs::write(&ids, "ccc 300 0\nbbb.mp4 1\n").unwrap();
    let labels = d.path().join("labels.csv");
    std::fs::write(&labels, "id,name\n0,abseiling\n1,air drumming\n").unwrap();
    let (ids_s, labels_s) = (ids.to_str().unwrap(), labels.to_str().unwrap());
    let j = data_json(&[
        "k400",
        "--root",
        src.to_str().unwrap(),
        "--list",
        ids_s,
        "--labels",
        labels_s,
    ]);
    assert!(
        j["layout"]
            .as_str()
            .unwrap()
            .contains("YouTube id in train/, val/ (2 of 2 videos)"),
        "{j}"
    );
    assert_eq!(j["problems"].as_array().unwrap().len(), 0, "{j}");
    let out = d.path().join("k400-by-id");
    let text = prepare(
        "k400",
        &src,
        &out,
        &["--list", ids_s, "--labels", labels_s, "--fps", "native"],
    );
    assert!(text.contains("2 videos extracted"), "{text}");
    let (n, _) = probe(&src.join(videos[2].0));
    let (nb, _) = probe(&src.join(videos[1].0));
    assert_eq!(
        list(&out.join("lists/list.txt")),
        vec![("ccc".into(), n, 0), ("bbb".into(), nb, 1)]
    );
    let l = out.join("lists/list.txt");
    let j = data_json(&[
        "k400",
        "--root",
        out.to_str().unwrap(),
        "--list",
        l.to_str().unwrap(),
        "--labels",
        labels_s,
    ]);
    assert_eq!(j["problems"].as_array().unwrap().len(), 0, "{j}");

    // ActivityNet: two training segments of one video, one validation video.
    let src = d.path().join("anet");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("activity_net.v1-3.min.json"),
        r#"{"version": "VERSION 1.3", "taxonomy": [], "database": {
            "AAA": {"subset": "training", "duration": 5.0, "resolution": "160x120",
                    "annotations": [{"segment": [0.5, 2.5], "label": "Making a sandwich"},
                                    {"segment": [3.0, 4.2], "label": "Archery"},
                                    {"segment": [6.0, 7.0], "label": "Archery"}]},
            "BBB": {"subset": "validation", "duration": 3.0, "resolution": "160x120",
                    "annotations": [{"segment": [0.2, 2.0], "label": "Archery"}]},
            "CCC": {"subset": "testing", "duration": 3.0, "resolution": "160x120",
                    "annotations": []}}}"#,
    )
    .unwrap();
    clip_of(&src.join("v_AAA.mp4"), 5.0, "160x120", 25);
    clip_of(&src.join("v_BBB.mkv"), 3.0, "160x120", 30);
    // Before preparing, `data` finds the videos by YouTube id, and the segments' frames: the
    // third segment is past the end of its 5 s video.
    let j = data_json(&["anet", "--root", src.to_str().unwrap()]);
    assert!(j["layout"].as_str().unwrap().contains("YouTube id"), "{j}");
    let problems = j["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{j}");
    assert_eq!(
        (problems[0]["split"].as_str(), problems[0]["line"].as_u64()),
        (Some("train"), Some(3))
    );
    assert!(
        problems[0]["file"].as_str().unwrap().ends_with("v_AAA.mp4")
            && problems[0]["reason"]
                .as_str()
                .unwrap()
                .contains("segment 6.00–7.00 s holds no frame"),
        "{problems:?}"
    );
    let out = d.path().join("anet-frames");
    let text = prepare("anet", &src, &out, &["--short-side", "64"]);
    assert!(
        text.contains("2 videos → 4 frame folders")
            && text.contains("1 fps")
            && text.contains("1 videos extracted, 0 already done, 1 failed")
            && text.contains("no frame in \"AAA_2\""),
        "{text}"
    );
    assert!(!out.join("frames/AAA_2").exists());
    let (n, r) = probe(&src.join("v_AAA.mp4"));
    let (nb, rb) = probe(&src.join("v_BBB.mkv"));
    let want = [
        ("AAA_0", resampled(n, r, Some([0.5, 2.5]), Some(1.0))),
        ("AAA_1", resampled(n, r, Some([3.0, 4.2]), Some(1.0))),
        ("BBB", resampled(nb, rb, None, Some(1.0))),
    ];
    assert_eq!(want.map(|w| w.1), [2, 2, 3]);
    for (folder, k) in want {
        check_folder(
            &out.join("frames").join(folder),
            k,
            |i| format!("image_{:06}.jpg", i + 1),
            (86, 64),
        );
    }
    // Classes sorted: Archery 0, Making a sandwich 1.
    assert_eq!(
        list(&out.join("lists/train.txt")),
        vec![("AAA_0".into(), 2, 1), ("AAA_1".into(), 2, 0)]
    );
    let j = data_json(&["anet", "--root", out.to_str().unwrap()]);
    let problems = j["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{j}");
    assert!(
        problems[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("frames/AAA_2"),
        "{j}"
    );
    assert_eq!(
        (j["splits"]["train"].as_u64(), j["splits"]["val"].as_u64()),
        (Some(3), Some(1))
    );
}

/// kill -9 in the middle of a `prepare`, then the same command again: every folder in
/// `frames/` is complete at every moment, and the rerun makes only what is missing.
#[test]
fn a_killed_prepare_resumes_with_complete_folders_only() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("ucf");
    let lists = src.join("ucfTrainTestlist");
    std::fs::create_dir_all(&lists).unwrap();
    std::fs::write(lists.join("classInd.txt"), "1 Archery\r\n").unwrap();
    let videos: Vec<String> = (1..=24)
        .map(|i| format!("Archery/v_Archery_g{i:02}_c01.avi"))
        .collect();
    let train: String = videos.iter().map(|v| format!("{v} 1\r\n")).collect();
    std::fs::write(lists.join("trainlist01.txt"), train).unwrap();
    std::fs::write(lists.join("testlist01.txt"), "").unwrap();
    clip_of(&src.join("UCF-101").join(&videos[0]), 6.0, "320x240", 25);
    for v in &videos[1..] {
        std::fs::copy(
            src.join("UCF-101").join(&videos[0]),
            src.join("UCF-101").join(v),
        )
        .unwrap();
    }
    let (n, _) = probe(&src.join("UCF-101").join(&videos[0]));
    let out = d.path().join("frames-out");
    let frames = out.join("frames/Archery");
    let complete = |dir: &Path| {
        let files = names(dir);
        files.len() == n && files.last() == Some(&format!("image_{n:04}.jpg"))
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["prepare", "ucf101", "--root"])
        .arg(&src)
        .arg("--out")
        .arg(&out)
        .args(["--jobs", "1"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once some folders are done, while one is being written.
    let started = std::time::Instant::now();
    let seen: Vec<PathBuf> = loop {
        let done: Vec<PathBuf> = std::fs::read_dir(&frames)
            .map(|r| r.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        for dir in &done {
            assert!(complete(dir), "{} is incomplete", dir.display());
        }
        if done.len() >= 3 {
            break done;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the kill"
        );
        assert!(started.elapsed().as_secs() < 120);
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    // A second `prepare` into the same folder meanwhile is refused.
    let o = xtask(&[
        "prepare",
        "ucf101",
        "--root",
        src.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    if child.try_wait().unwrap().is_none() {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("another prepare is writing to this folder"),
            "{err}"
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let after: Vec<PathBuf> = std::fs::read_dir(&frames)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        after.len() >= seen.len() && after.len() < videos.len(),
        "{}",
        after.len()
    );
    for dir in &after {
        assert!(
            complete(dir),
            "{} is incomplete after the kill",
            dir.display()
        );
    }
    let text = prepare("ucf101", &src, &out, &[]);
    assert!(
        text.contains(&format!(
            "{} videos extracted, {} already done, 0 failed",
            videos.len() - after.len(),
            after.len()
        )),
        "{text}"
    );
    assert_eq!(names(&frames).len(), videos.len());
    for v in &videos {
        assert!(complete(
            &out.join("frames").join(v.trim_end_matches(".avi"))
        ));
    }
    assert!(!out.join(".partial").exists());
    let l = list(&out.join("lists/train_split1.txt"));
    assert_eq!(l.len(), videos.len());
    assert!(l.iter().all(|(_, k, label)| *k == n && *label == 0));
}

/// A features + zero-shot sweep over the videos and the same sweep over their prepared frames
/// (same size, JPEG quality 95) give the same predictions and features within decoding
/// tolerance: the frames stand for the videos.
#[test]
fn runs_on_prepared_frames_score_as_on_the_videos() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("ucf");
    let lists = src.join("ucfTrainTestlist");
    std::fs::create_dir_all(&lists).unwrap();
    std::fs::write(
        lists.join("classInd.txt"),
        "1 ApplyEyeMakeup\r\n2 Archery\r\n",
    )
    .unwrap();
    let test = [
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi",
        "Archery/v_Archery_g01_c01.avi",
        "Archery/v_Archery_g02_c01.avi",
    ];
    std::fs::write(lists.join("trainlist01.txt"), "").unwrap();
    std::fs::write(
        lists.join("testlist01.txt"),
        test.iter().map(|v| format!("{v}\r\n")).collect::<String>(),
    )
    .unwrap();
    for (i, v) in test.iter().enumerate() {
        clip_of(
            &src.join("UCF-101").join(v),
            1.0 + i as f64 * 0.3,
            "64x48",
            10,
        );
    }
    let out = d.path().join("prepared");
    prepare(
        "ucf101",
        &src,
        &out,
        &["--short-side", "0", "--quality", "95"],
    );
    let model = common::model_dir(d.path());
    let script = d.path().join("s.rhai");
    std::fs::write(
        &script,
        format!(
            r#"let s = sweep("s");
            let base = #{{ model: #{{ backbone: "{}", frames: 4, input_size: 32 }},
                           data: #{{ dataset: "ucf101" }} }};
            let f = base; f.kind = "features"; f.params = #{{ split: "test" }};
            let feats = s.add(f);
            let z = base; z.kind = "zero-shot"; z.needs = #{{ features: feats }};
            s.add(z);"#,
            model.display()
        ),
    )
    .unwrap();
    let sweep = |root: &Path, results: &str| {
        let results = d.path().join(results);
        let run = |args: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_xtask"))
                .arg("--results")
                .arg(&results)
                .args(args)
                .env("T4V_DATA_UCF101", root)
                .output()
                .unwrap()
        };
        let o = run(&["sweep", script.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(err.contains("2 succeeded, 0 failed"), "{err}");
        let runs: Value = serde_json::from_slice(&run(&["runs", "--json"]).stdout).unwrap();
        let by = |k: &str| {
            runs.as_array()
                .unwrap()
                .iter()
                .find(|r| r["kind"] == k)
                .unwrap()
                .clone()
        };
        (by("features"), by("zero-shot"))
    };
    let (fv, zv) = sweep(&src, "on-videos");
    let (ff, zf) = sweep(&out, "on-frames");
    for k in ["test/top1", "test/top5", "test/videos"] {
        assert_eq!(zv["metrics"][k], zf["metrics"][k], "{k}: {zv} vs {zf}");
    }
    let read = |r: &Value| common::read(Path::new(r["artefacts"]["features"].as_str().unwrap()));
    let (a, b) = (read(&fv), read(&ff));
    let (x, y) = (&a["features"], &b["features"]);
    assert_eq!(x.0, y.0);
    assert_eq!(x.0[0], test.len());
    // Each video's features ([frames, dim] per video) as one vector.
    let dim: usize = x.0[1..].iter().product();
    for v in 0..test.len() {
        let (p, q) = (&x.1[v * dim..][..dim], &y.1[v * dim..][..dim]);
        let dot: f32 = p.iter().zip(q).map(|(a, b)| a * b).sum();
        let norm = |u: &[f32]| u.iter().map(|a| a * a).sum::<f32>().sqrt();
        let cos = dot / (norm(p) * norm(q));
        assert!(
            cos > 0.9995,
            "video {v}: cosine {cos} between videos and frames"
        );
    }
}
