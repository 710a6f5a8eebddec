//! Parsers on small files in each official format, including malformed lines; half-class
//! subsets against numpy; counts on the reference's real lists (ignored: needs ../shared).

use std::path::{Path, PathBuf};

use t4v_video::annotations::{anet, hmdb, kinetics, label_csv, list_file, ucf};
use t4v_video::protocol::half_classes;

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, body).unwrap();
    p
}

fn err_of<T: std::fmt::Debug>(r: Result<T, t4v_video::VideoError>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn reference_label_csvs_and_lists() {
    let d = tempfile::tempdir().unwrap();
    let labels = write(
        d.path(),
        "labels.csv",
        "id,name\n0,abseiling\n1,air drumming\n2,massaging person's head\n",
    );
    assert_eq!(
        label_csv(&labels).unwrap(),
        vec!["abseiling", "air drumming", "massaging person's head"]
    );
    let list = write(
        d.path(),
        "list.txt",
        "abseiling/-7kbO0v4hag_000107_000117 300 0\n--07WQ2iBlw 272 2\n\nclip.mp4 1\n",
    );
    let v = list_file(&list, 3).unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!((v[0].frames, v[0].label, v[1].line), (Some(300), 0, 2));
    assert_eq!((v[2].frames, v[2].label, v[2].line), (None, 1, 4));

    let l = |body: &str| list_file(&write(d.path(), "bad.txt", body), 3);
    let p = d.path().join("bad.txt").display().to_string();
    assert_eq!(
        err_of(l("a 1 0\nb\n")),
        format!("{p}:2: expected 2 or 3 columns (path [frames] label), found 1")
    );
    assert_eq!(
        err_of(l("a 1 0\nb 2 1 x\n")),
        format!("{p}:2: label `x` is not a number")
    );
    assert_eq!(
        err_of(l("a 1 3\n")),
        format!("{p}:1: label 3 out of range: there are 3 classes")
    );
    assert_eq!(
        err_of(l("a 99999999999 1\n")),
        format!("{p}:1: frame count `99999999999` is not a number")
    );
    // Columns are read from the right: Kinetics' class folders hold spaces.
    let v = l("air drumming/bbb_000000_000010 48 1\nair drumming/ccc.mp4  2\n").unwrap();
    assert_eq!(
        (v[0].path.to_str(), v[0].frames, v[0].label),
        (Some("air drumming/bbb_000000_000010"), Some(48), 1)
    );
    assert_eq!(
        (v[1].path.to_str(), v[1].frames, v[1].label),
        (Some("air drumming/ccc.mp4"), None, 2)
    );
    assert_eq!(
        err_of(l("a 1 -1\n")),
        format!("{p}:1: label `-1` is not a number")
    );
    let bad = write(d.path(), "bad.csv", "id,name\n0,a\n2,b\n");
    assert_eq!(
        err_of(label_csv(&bad)),
        format!("{}:3: class id 2 out of order (expected 1)", bad.display())
    );
    assert!(
        err_of(label_csv(&d.path().join("none.csv")))
            .starts_with(&format!("{}: ", d.path().join("none.csv").display()))
    );
}

#[test]
fn ucf101_official_lists() {
    let d = tempfile::tempdir().unwrap();
    let ci = write(
        d.path(),
        "classInd.txt",
        "1 ApplyEyeMakeup\n2 ApplyLipstick\n3 Archery\n",
    );
    let classes = ucf::class_ind(&ci).unwrap();
    assert_eq!(classes.len(), 3);
    let train = write(
        d.path(),
        "trainlist01.txt",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\nArchery/v_Archery_g08_c01.avi 3\r\n",
    );
    let t = ucf::train_list(&train, &classes).unwrap();
    assert_eq!(
        (t[1].label, t[1].path.to_str().unwrap()),
        (2, "Archery/v_Archery_g08_c01.avi")
    );
    let test = write(
        d.path(),
        "testlist01.txt",
        "ApplyLipstick/v_ApplyLipstick_g01_c01.avi\n",
    );
    assert_eq!(ucf::test_list(&test, &classes).unwrap()[0].label, 1);

    let bad = write(
        d.path(),
        "t.txt",
        "ApplyEyeMakeup/v.avi 1\nArchery/v.avi 2\n",
    );
    assert_eq!(
        err_of(ucf::train_list(&bad, &classes)),
        format!(
            "{}:2: class id 2 does not match folder `Archery`",
            bad.display()
        )
    );
    let bad = write(d.path(), "t.txt", "Bowling/v.avi\n");
    assert_eq!(
        err_of(ucf::test_list(&bad, &classes)),
        format!("{}:1: unknown class `Bowling`", bad.display())
    );
    let bad = write(d.path(), "t.txt", "Archery/v.avi 4\n");
    assert_eq!(
        err_of(ucf::train_list(&bad, &classes)),
        format!("{}:1: class id 4 out of range 1..=3", bad.display())
    );
}

#[test]
fn hmdb51_split_files() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "brush_hair_test_split1.txt",
        "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 \nb.avi 2 \nc.avi 0 \n",
    );
    write(d.path(), "cartwheel_test_split1.txt", "d.avi 2 \n");
    write(d.path(), "cartwheel_test_split2.txt", "d.avi 1 \n");
    let s = hmdb::split(d.path(), 1).unwrap();
    assert_eq!(s.classes, vec!["brush_hair", "cartwheel"]);
    assert_eq!((s.train.len(), s.test.len()), (1, 2));
    assert_eq!(s.test[1].path, Path::new("cartwheel/d.avi"));
    let bad = write(d.path(), "cartwheel_test_split3.txt", "d.avi 3\n");
    write(d.path(), "brush_hair_test_split3.txt", "a.avi 1\n");
    assert_eq!(
        err_of(hmdb::split(d.path(), 3).map(|s| s.classes)),
        format!(
            "{}:1: flag `3` is not 0 (unused), 1 (train) or 2 (test)",
            bad.display()
        )
    );
}

#[test]
fn kinetics_csvs() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "validate.csv",
        "label,youtube_id,time_start,time_end,split,is_cc\nabseiling,-3B32lodo2M,59,69,val,0\n\"air drumming\",_dbcJuKJQNs,40,50,val,0\n\"passing American football (in game)\",x,1,11,val,0\n",
    );
    let (classes, videos) = kinetics::csv(&p, None).unwrap();
    assert_eq!(
        classes,
        vec![
            "abseiling",
            "air drumming",
            "passing American football (in game)"
        ]
    );
    assert_eq!(
        videos[0].path,
        Path::new("abseiling/-3B32lodo2M_000059_000069")
    );
    assert_eq!((videos[1].label, videos[1].line), (1, 3));
    let bad = write(
        d.path(),
        "b.csv",
        "label,youtube_id,time_start,time_end,split\nabseiling,a,1,x,val\n",
    );
    assert_eq!(
        err_of(kinetics::csv(&bad, None)),
        format!("{}:2: time_end `x` is not a number", bad.display())
    );
    let bad = write(
        d.path(),
        "b.csv",
        "label,youtube_id,time_start,time_end,split\nknitting,a,1,2,val\n",
    );
    assert_eq!(
        err_of(kinetics::csv(&bad, Some(&classes))),
        format!("{}:2: unknown class `knitting`", bad.display())
    );
    let bad = write(
        d.path(),
        "b.csv",
        "label,youtube_id,time_start,time_end,split\nabseiling,a,1,2\n",
    );
    assert!(err_of(kinetics::csv(&bad, None)).starts_with(&format!("{}:2: ", bad.display())));
}

#[test]
fn activitynet_json() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "anet.json",
        r#"{"version": "VERSION 1.3", "taxonomy": [], "database": {
            "a1": {"subset": "training", "duration": 10.0, "annotations": [{"segment": [1, 2], "label": "Archery"}, {"segment": [3, 4], "label": "Archery"}]},
            "b2": {"subset": "validation", "duration": 9.0, "annotations": [{"segment": [0, 5], "label": "BMX"}]},
            "c3": {"subset": "testing", "duration": 9.0, "annotations": []}}}"#,
    );
    let s = anet::json(&p).unwrap();
    assert_eq!(s.classes, vec!["Archery", "BMX"]);
    assert_eq!(
        s.train
            .iter()
            .map(|v| v.path.to_str().unwrap())
            .collect::<Vec<_>>(),
        vec!["a1_0", "a1_1"]
    );
    // A training instance is its segment of the video; a validation video is all of it.
    assert_eq!(
        (s.train[0].span, s.train[1].span, s.val[0].span),
        (Some([1.0, 2.0]), Some([3.0, 4.0]), None)
    );
    assert_eq!((s.val.len(), s.val[0].label), (1, 1));
    let bad = write(
        d.path(),
        "bad.json",
        "{\"database\": {\n \"a\": {\"subset\": 3}}}",
    );
    assert!(err_of(anet::json(&bad)).starts_with(&format!("{}:2: ", bad.display())));
}

#[test]
fn half_class_subsets_equal_numpy_for_ucf_hmdb_anet() {
    let oracle = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/half_class_oracle.csv"),
    )
    .unwrap();
    let mut rows = 0;
    for line in oracle.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        let (c, seed): (usize, u32) = (cols[1].parse().unwrap(), cols[2].parse().unwrap());
        let want: Vec<usize> = cols[3].split(' ').map(|x| x.parse().unwrap()).collect();
        assert_eq!(half_classes(c, seed), want, "{} seed {seed}", cols[0]);
        rows += 1;
    }
    assert_eq!(rows, 30);
}

/// The reference's real lists parse to the counts of REFERENCE.md §5. Needs the shared data:
/// `T4V_SHARED=../shared cargo test -p t4v-video -- --ignored`.
#[test]
#[ignore]
fn reference_lists_parse_to_their_published_counts() {
    let root =
        PathBuf::from(std::env::var("T4V_SHARED").expect("set T4V_SHARED to the shared folder"))
            .join("data/text4vis-lists");
    let count = |labels: &str, list: &str| {
        let classes = label_csv(&root.join(labels)).unwrap();
        (
            classes.len(),
            list_file(&root.join(list), classes.len()).unwrap().len(),
        )
    };
    for (k, train, test) in [(1, 9537, 3783), (2, 9586, 3734), (3, 9624, 3696)] {
        assert_eq!(
            count("ucf_labels.csv", &format!("ucf101/train_rgb_split_{k}.txt")),
            (101, train)
        );
        assert_eq!(
            count("ucf_labels.csv", &format!("ucf101/val_rgb_split_{k}.txt")),
            (101, test)
        );
        assert_eq!(
            count(
                "hmdb51_labels.csv",
                &format!("hmdb51/train_rgb_split_{k}.txt")
            ),
            (51, 3570)
        );
        assert_eq!(
            count(
                "hmdb51_labels.csv",
                &format!("hmdb51/val_rgb_split_{k}.txt")
            ),
            (51, 1530)
        );
    }
    assert_eq!(
        count("ucf_labels.csv", "ucf101/ucf_full_for_zeroshot.txt"),
        (101, 13320)
    );
    assert_eq!(
        count("hmdb51_labels.csv", "hmdb51/hmdb_full_for_zeroshot.txt"),
        (51, 6766)
    );
    assert_eq!(
        count("kinetics_400_labels.csv", "k400/kinetics_rgb_val_se320.txt"),
        (400, 19796)
    );
    assert_eq!(
        count(
            "kinetics_400_labels.csv",
            "k400/kinetics_video_val_se320.txt"
        ),
        (400, 19796)
    );
    assert_eq!(
        count("anet1.3_labels.csv", "anet/anet_train_instance_fps1.txt"),
        (200, 15410)
    );
    assert_eq!(
        count("anet1.3_labels.csv", "anet/anet_val_video_fps1.txt"),
        (200, 4926)
    );
    assert_eq!(
        count("anet1.3_labels.csv", "anet/anet_full_for_zeroshot.txt"),
        (200, 14950)
    );
    for (k, n) in [(1, 14119), (2, 14067), (3, 14161)] {
        assert_eq!(
            count(
                &format!("k600/k160_labels_split{k}.csv"),
                &format!("k600/test_split{k}_exist.txt")
            ),
            (160, n)
        );
    }
    // The training filter of the reference: lists with frame counts keep videos with ≥ 8 frames.
    let classes = label_csv(&root.join("anet1.3_labels.csv")).unwrap();
    let kept = list_file(
        &root.join("anet/anet_train_instance_fps1.txt"),
        classes.len(),
    )
    .unwrap()
    .into_iter()
    .filter(|v| v.frames.unwrap() >= 8)
    .count();
    assert_eq!(kept, 12770);
}
