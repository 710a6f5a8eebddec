//! `data <dataset>` on small datasets in the official layouts, with broken media.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod common;
use common::media::data;
#[cfg(feature = "video")]
use common::media::{clip, kinetics_csvs, ucf_archive};

fn frames(dir: &Path, pattern: impl Fn(usize) -> String, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        image::RgbImage::from_pixel(34, 25, image::Rgb([i as u8 * 20, 100, 50]))
            .save(dir.join(pattern(i)))
            .unwrap();
    }
}

#[test]
fn ucf101_official_layout_with_broken_media() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let lists = root.join("ucfTrainTestlist");
    std::fs::create_dir_all(&lists).unwrap();
    std::fs::write(lists.join("classInd.txt"), "1 ApplyEyeMakeup\n2 Archery\n").unwrap();
    std::fs::write(
        lists.join("trainlist01.txt"),
        "ApplyEyeMakeup/v_a1.avi 1\nArchery/v_b1.avi 2\nArchery/v_b2.avi 2\n",
    )
    .unwrap();
    std::fs::write(
        lists.join("testlist01.txt"),
        "ApplyEyeMakeup/v_a2.avi\nArchery/v_b3.avi\n",
    )
    .unwrap();
    let f = root.join("frames");
    let name = |i: usize| format!("image_{:04}.jpg", i + 1);
    frames(&f.join("ApplyEyeMakeup/v_a1"), name, 5);
    frames(&f.join("Archery/v_b1"), name, 5);
    std::fs::create_dir_all(f.join("Archery/v_b2")).unwrap(); // empty folder
    frames(&f.join("ApplyEyeMakeup/v_a2"), name, 3);
    std::fs::write(f.join("ApplyEyeMakeup/v_a2/image_0001.jpg"), b"not a jpeg").unwrap(); // corrupt
    // Archery/v_b3: missing folder

    let r = root.to_str().unwrap();
    let (ok, v, err) = data(&["ucf101", "--root", r, "--json"]);
    assert!(ok, "{err}");
    assert_eq!(v["classes"], 2);
    assert_eq!(
        v["splits"],
        serde_json::json!({"train": 3, "test": 2, "full": 5})
    );
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 3, "{problems:?}");
    let reason = |suffix: &str| {
        problems
            .iter()
            .find(|p| p["file"].as_str().unwrap().ends_with(suffix))
            .unwrap()["reason"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(reason("Archery/v_b2").contains("no frames named like `image_0001.jpg`"));
    assert!(reason("ApplyEyeMakeup/v_a2").contains("image_0001.jpg: cannot decode"));
    assert!(reason("Archery/v_b3").contains("No such file"));
    let (ok, v, _) = data(&["ucf101", "--root", r, "--json", "--annotations-only"]);
    assert!(ok);
    assert_eq!(v["problems"].as_array().unwrap().len(), 0);

    // A malformed annotation line is an error naming file and line.
    std::fs::write(
        lists.join("trainlist01.txt"),
        "ApplyEyeMakeup/v_a1.avi 1\nArchery/v_b1.avi 7\n",
    )
    .unwrap();
    let (ok, _, err) = data(&["ucf101", "--root", r]);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "{}:2: class id 7 out of range 1..=2",
            lists.join("trainlist01.txt").display()
        )),
        "{err}"
    );

    let (ok, _, err) = data(&["k400", "--root", "/nonexistent/k400"]);
    assert!(!ok);
    assert!(
        err.contains("dataset k400 not found at /nonexistent/k400"),
        "{err}"
    );
    let (ok, _, err) = data(&["k700"]);
    assert!(
        !ok && err.contains(
            "unknown dataset `k700` (known: k400, k600, ucf101, hmdb51, anet, synthetic, synthetic-pretrain, synthetic-novel)"
        ),
        "{err}"
    );
}

#[test]
fn reference_lists_and_the_synthetic_world() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    std::fs::write(
        root.join("labels.csv"),
        "id,name\n0,brush hair\n1,cartwheel\n",
    )
    .unwrap();
    std::fs::write(
        root.join("list.txt"),
        "brush_hair/a 5 0\ncartwheel/b 5 1\ncartwheel/c 5 2\n",
    )
    .unwrap();
    let (ok, _, err) = data(&[
        "hmdb51",
        "--root",
        root.to_str().unwrap(),
        "--list",
        root.join("list.txt").to_str().unwrap(),
        "--labels",
        root.join("labels.csv").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "{}:3: label 2 out of range: there are 2 classes",
            root.join("list.txt").display()
        )),
        "{err}"
    );

    let (ok, v, err) = data(&["synthetic", "--json"]);
    assert!(ok, "{err}");
    assert_eq!(v["classes"], 48);
    assert_eq!(v["class_names"][0], "a red circle moving left");
    assert_eq!(v["splits"]["train"], 48 * 24);
}

/// Video files: `data` reads them (and flags a broken one) when built with `--features video`.
#[cfg(feature = "video")]
#[test]
fn video_files_with_ffmpeg() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let lists = root.join("ucfTrainTestlist");
    std::fs::create_dir_all(&lists).unwrap();
    std::fs::write(lists.join("classInd.txt"), "1 ApplyEyeMakeup\n2 Archery\n").unwrap();
    std::fs::write(
        lists.join("trainlist01.txt"),
        "ApplyEyeMakeup/v_a1.avi 1\nArchery/v_b1.avi 2\n",
    )
    .unwrap();
    std::fs::write(lists.join("testlist01.txt"), "Archery/v_b2.avi\n").unwrap();
    let v = root.join("videos");
    for (dir, name) in [("ApplyEyeMakeup", "v_a1.avi"), ("Archery", "v_b1.avi")] {
        std::fs::create_dir_all(v.join(dir)).unwrap();
        let out = v.join(dir).join(name);
        let o = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc=duration=1:size=64x48:rate=10",
                "-c:v",
                "mpeg4",
            ])
            .arg(&out)
            .output()
            .expect("ffmpeg CLI");
        assert!(o.status.success());
    }
    std::fs::write(v.join("Archery/v_b2.avi"), b"RIFF garbage").unwrap();
    let (ok, j, err) = data(&["ucf101", "--root", root.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    let problems = j["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("Archery/v_b2.avi")
    );
}

/// The datasets' own archives, unpacked as they come (no `videos/` or `frames/` folder): the
/// layout is found and named, CRLF lists read, a truncated video is the one problem.
#[cfg(feature = "video")]
#[test]
fn official_layouts_as_the_archives_unpack() {
    // UCF-101: `UCF-101/<class>/v_*.avi` beside `ucfTrainTestlist/`, lists with CRLF.
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("ucf");
    ucf_archive(
        &root,
        &[
            "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
            "Archery/v_Archery_g01_c01.avi",
        ],
        &["Archery/v_Archery_g02_c01.avi"],
        "Archery/v_Archery_g02_c01.avi",
    );
    let (ok, j, err) = data(&["ucf101", "--root", root.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    assert_eq!(j["classes"], 2);
    assert_eq!(
        (j["splits"]["train"].as_u64(), j["splits"]["test"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(j["layout"].as_str().unwrap().starts_with("UCF-101/"), "{j}");
    let problems = j["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["split"], "test");
    assert!(
        problems[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("UCF-101/Archery/v_Archery_g02_c01.avi"),
        "{problems:?}"
    );

    // HMDB-51: class folders of AVIs directly under the root, beside the split files.
    let root = d.path().join("hmdb");
    let splits = root.join("testTrainMulti_7030_splits");
    std::fs::create_dir_all(&splits).unwrap();
    std::fs::write(
        splits.join("brush_hair_test_split1.txt"),
        "a_brush_hair_1.avi 1 \r\nb_brush_hair_2.avi 2 \r\n",
    )
    .unwrap();
    std::fs::write(
        splits.join("cartwheel_test_split1.txt"),
        "c_cartwheel_1.avi 1 \r\n",
    )
    .unwrap();
    for v in [
        "brush_hair/a_brush_hair_1.avi",
        "brush_hair/b_brush_hair_2.avi",
        "cartwheel/c_cartwheel_1.avi",
    ] {
        clip(&root.join(v));
    }
    let (ok, j, err) = data(&["hmdb51", "--root", root.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    assert_eq!(
        j["class_names"],
        serde_json::json!(["brush hair", "cartwheel"])
    );
    assert_eq!(
        (j["splits"]["train"].as_u64(), j["splits"]["test"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(
        j["layout"].as_str().unwrap().starts_with("class folders"),
        "{j}"
    );
    assert_eq!(j["problems"], serde_json::json!([]));

    // Kinetics: `train/<label>/<id>_<start>_<end>.mp4` (class sub-folders) and `val/` without
    // them, in WebM; one clip never downloaded.
    let root = d.path().join("k400");
    kinetics_csvs(
        &root,
        &["abseiling,aaa,10,20,train", "air drumming,bbb,0,10,train"],
        &["abseiling,ccc,5,15,val", "air drumming,ddd,1,11,val"],
    );
    clip(&root.join("train/abseiling/aaa_000010_000020.mp4"));
    clip(&root.join("train/air drumming/bbb_000000_000010.mp4"));
    clip(&root.join("val/ccc_000005_000015.webm"));
    let (ok, j, err) = data(&["k400", "--root", root.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    assert_eq!(
        (j["splits"]["train"].as_u64(), j["splits"]["val"].as_u64()),
        (Some(2), Some(2))
    );
    assert!(
        j["layout"].as_str().unwrap().starts_with("train/, val/"),
        "{j}"
    );
    let problems = j["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("val/air drumming/ddd_000001_000011.mp4"),
        "{problems:?}"
    );

    // No media anywhere: the error lists where it looked.
    let root = d.path().join("bare");
    std::fs::create_dir_all(root.join("ucfTrainTestlist")).unwrap();
    for f in ["classInd.txt", "trainlist01.txt", "testlist01.txt"] {
        std::fs::copy(
            d.path().join("ucf/ucfTrainTestlist").join(f),
            root.join("ucfTrainTestlist").join(f),
        )
        .unwrap();
    }
    let (ok, _, err) = data(&["ucf101", "--root", root.to_str().unwrap()]);
    assert!(!ok);
    for place in ["frames", "videos", "UCF-101"] {
        assert!(
            err.contains(&root.join(place).display().to_string()),
            "{err}"
        );
    }
    // The annotations alone need no media.
    let (ok, j, err) = data(&[
        "ucf101",
        "--root",
        root.to_str().unwrap(),
        "--annotations-only",
        "--json",
    ]);
    assert!(ok && j["splits"]["train"] == 2, "{err}");
}

/// A list file and its label CSV read for their annotations alone: no dataset folder needed.
#[test]
fn lists_without_a_root() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("labels.csv"),
        "id,name\r\n0,archery\r\n1,bowling\r\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("list.txt"),
        "a/v1 30 0\r\nb/v2 40 1\r\nb/v3 20 1\r\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["data", "ucf101", "--annotations-only", "--json", "--list"])
        .arg(d.path().join("list.txt"))
        .arg("--labels")
        .arg(d.path().join("labels.csv"))
        .env_remove("T4V_DATA")
        .env_remove("T4V_DATA_UCF101")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["classes"], 2);
    assert_eq!(j["splits"]["list"], 3);
}

/// `data.on_error: "skip"`: a features run over a split with a truncated video succeeds, counts
/// and lists the video, and the zero-shot evaluation on its features says over how many videos
/// it scored; by default the same run fails naming the file and its place in the split.
#[cfg(feature = "video")]
#[test]
fn a_broken_video_fails_a_run_or_is_skipped_and_counted() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("ucf101");
    let lists = root.join("ucfTrainTestlist");
    ucf_archive(
        &root,
        &["Archery/v_Archery_g01_c01.avi"],
        &[
            "ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi",
            "Archery/v_Archery_g02_c01.avi",
            "Archery/v_Archery_g03_c01.avi",
        ],
        "Archery/v_Archery_g02_c01.avi",
    );
    let model = common::model_dir(d.path());
    let sweep = |name: &str, on_error: &str| {
        let script = d.path().join(format!("{name}.rhai"));
        std::fs::write(
            &script,
            format!(
                r#"let s = sweep("{name}");
                let base = #{{ model: #{{ backbone: "{}", frames: 4, input_size: 32 }},
                               data: #{{ dataset: "ucf101"{on_error} }} }};
                let f = base; f.kind = "features"; f.params = #{{ split: "test" }};
                let feats = s.add(f);
                let z = base; z.kind = "zero-shot"; z.needs = #{{ features: feats }};
                s.add(z);"#,
                model.display()
            ),
        )
        .unwrap();
        let results = d.path().join("results");
        let run = |args: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_xtask"))
                .arg("--results")
                .arg(&results)
                .args(args)
                .env("T4V_DATA_UCF101", &root)
                .output()
                .unwrap()
        };
        let o = run(&["sweep", script.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        let runs: Value =
            serde_json::from_slice(&run(&["runs", "--sweep", name, "--json"]).stdout).unwrap();
        (err, runs.as_array().unwrap().clone())
    };

    let (err, runs) = sweep("strict", "");
    assert!(err.contains("0 succeeded, 1 failed, 1 blocked"), "{err}");
    let reason = runs.iter().find(|r| r["kind"] == "features").unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("<test>:2") && reason.contains("v_Archery_g02_c01.avi"),
        "{reason}"
    );

    let (err, runs) = sweep("lenient", r#", on_error: "skip""#);
    assert!(err.contains("2 succeeded, 0 failed"), "{err}");
    let f = runs.iter().find(|r| r["kind"] == "features").unwrap();
    assert_eq!(f["metrics"]["test/skipped"], 1.0, "{f}");
    assert_eq!(f["metrics"]["features/videos"], 2.0, "{f}");
    let listed = std::fs::read_to_string(f["artefacts"]["skipped-test"].as_str().unwrap()).unwrap();
    assert!(
        listed.starts_with("position,reason\n2,") && listed.contains("v_Archery_g02_c01.avi"),
        "{listed}"
    );
    let z = runs.iter().find(|r| r["kind"] == "zero-shot").unwrap();
    assert_eq!(z["metrics"]["test/videos"], 2.0, "{z}");
    assert!(
        f["attempts"][0]["data"].is_string(),
        "the attempt keeps what it read: {f}"
    );

    // The annotations change: the done runs are named as changed, kept until asked, then redone;
    // their ids stay.
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("--results")
            .arg(d.path().join("results"))
            .args(args)
            .env("T4V_DATA_UCF101", &root)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    };
    let script = d.path().join("lenient.rhai");
    let script = script.to_str().unwrap();
    assert!(!run(&["sweep", script, "--dry-run"]).contains("data changed"));
    std::fs::write(
        lists.join("trainlist01.txt"),
        "Archery/v_Archery_g01_c01.avi 2\r\nApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi 1\r\n",
    )
    .unwrap();
    let plan = run(&["sweep", script, "--dry-run"]);
    let fid = f["id"].as_str().unwrap();
    let zid = z["id"].as_str().unwrap();
    assert!(
        plan.contains(&format!("done (data changed) {fid}"))
            && plan.contains(&format!("done (data changed) {zid}")),
        "{plan}"
    );
    let out = run(&["sweep", script]);
    assert!(
        out.contains("0 succeeded") && out.contains("--rerun-changed"),
        "{out}"
    );
    let out = run(&["sweep", script, "--rerun-changed"]);
    assert!(out.contains("2 succeeded, 0 failed"), "{out}");
    assert!(!run(&["sweep", script, "--dry-run"]).contains("data changed"));
}
