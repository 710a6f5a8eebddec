//! Hostile annotation files: every parser, fed valid files mutated at random (bytes replaced,
//! inserted, deleted, lines cut) and random bytes, returns its records or an error naming the
//! file; it never panics. `PROPTEST_CASES` sets the number of cases (default 256 per parser).

use std::path::Path;

use proptest::prelude::*;
use t4v_video::VideoError;
use t4v_video::annotations::{anet, hmdb, kinetics, label_csv, list_file, ucf};

/// The parsers and a valid file of each (the formats of REFERENCE.md §3).
const VALID: &[(&str, &str)] = &[
    (
        "labels",
        "id,name\n0,abseiling\n1,air drumming\n2,massaging person's head\n",
    ),
    (
        "list",
        "abseiling/-7kbO0v4hag_000107_000117 300 0\n--07WQ2iBlw 272 2\nclip.mp4 1\n",
    ),
    ("class_ind", "1 ApplyEyeMakeup\r\n2 Archery\r\n"),
    (
        "train_list",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\nArchery/v_Archery_g01_c01.avi 2\r\n",
    ),
    (
        "test_list",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\nArchery/v_Archery_g02_c01.avi\r\n",
    ),
    (
        "kinetics",
        "label,youtube_id,time_start,time_end,split,is_cc\nabseiling,-3B32lodo2M,59,69,val,0\n\"air drumming\",_dbcJuKJQNs,40,50,val,0\n",
    ),
    (
        "anet",
        r#"{"version": "VERSION 1.3", "taxonomy": [], "database": {"a1": {"subset": "training", "duration": 10.0, "annotations": [{"segment": [1, 2], "label": "Archery"}]}, "b2": {"subset": "validation", "duration": 9.0, "annotations": [{"segment": [0, 5], "label": "BMX"}]}}}"#,
    ),
    (
        "hmdb",
        "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1\nApril_09_brush_hair_u_nm_np1_ba_goo_1.avi 2\n",
    ),
];

/// Parses `bytes` as the file of `which`, written at `path`; the error's text.
fn parse(which: &str, dir: &Path, bytes: &[u8]) -> Result<(), String> {
    let path = dir.join(format!("{which}.txt"));
    let hmdb_dir = dir.join("splits");
    let file = if which == "hmdb" {
        std::fs::create_dir_all(&hmdb_dir).unwrap();
        hmdb_dir.join("brush_hair_test_split1.txt")
    } else {
        path.clone()
    };
    std::fs::write(&file, bytes).unwrap();
    let classes = vec!["ApplyEyeMakeup".to_string(), "Archery".to_string()];
    let named = |e: VideoError| {
        let m = e.to_string();
        let shown = if which == "hmdb" { &hmdb_dir } else { &path };
        if m.contains(&shown.display().to_string()) || m.contains(&file.display().to_string()) {
            Err(m)
        } else {
            panic!("{which}: an error that does not name the file: {m}")
        }
    };
    let r = match which {
        "labels" => label_csv(&path).map(|_| ()),
        "list" => list_file(&path, 3).map(|_| ()),
        "class_ind" => ucf::class_ind(&path).map(|_| ()),
        "train_list" => ucf::train_list(&path, &classes).map(|_| ()),
        "test_list" => ucf::test_list(&path, &classes).map(|_| ()),
        "kinetics" => kinetics::csv(&path, None).map(|_| ()),
        "anet" => anet::json(&path).map(|_| ()),
        "hmdb" => hmdb::split(&hmdb_dir, 1).map(|_| ()),
        other => unreachable!("{other}"),
    };
    r.or_else(named)
}

#[derive(Clone, Debug)]
enum Edit {
    Replace(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Cut(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    // Bytes that matter to the formats, and any byte.
    let byte = prop_oneof![
        prop::sample::select(b" ,\n\r\t\"{}[]:0123456789-._/".to_vec()),
        any::<u8>(),
    ];
    prop::collection::vec(
        prop_oneof![
            (any::<usize>(), byte.clone()).prop_map(|(i, b)| Edit::Replace(i, b)),
            (any::<usize>(), byte).prop_map(|(i, b)| Edit::Insert(i, b)),
            any::<usize>().prop_map(Edit::Delete),
            any::<usize>().prop_map(Edit::Cut),
        ],
        1..8,
    )
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = bytes.len().max(1);
        match *e {
            Edit::Replace(i, b) if !bytes.is_empty() => bytes[i % n] = b,
            Edit::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
            Edit::Delete(i) if !bytes.is_empty() => {
                bytes.remove(i % n);
            }
            Edit::Cut(i) => bytes.truncate(i % (bytes.len() + 1)),
            _ => {}
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(t4v_fault::cases(256)))]

    #[test]
    fn mutated_annotation_files_parse_or_name_the_file(
        which in 0..VALID.len(),
        edits in edits(),
    ) {
        let d = tempfile::tempdir().unwrap();
        let (name, text) = VALID[which];
        let _ = parse(name, d.path(), &apply(text.as_bytes().to_vec(), &edits));
        t4v_fault::tally(
            "Hostile input",
            "annotation files of every format (lists, CSV, JSON, splits), mutated",
            t4v_fault::cases(256),
            "the records or an error naming the file; no panic",
        );
    }

    #[test]
    fn random_bytes_parse_or_name_the_file(
        which in 0..VALID.len(),
        bytes in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let d = tempfile::tempdir().unwrap();
        let _ = parse(VALID[which].0, d.path(), &bytes);
        t4v_fault::tally(
            "Hostile input",
            "annotation files of every format, random bytes",
            t4v_fault::cases(256),
            "the records or an error naming the file; no panic",
        );
    }
}

#[test]
fn the_valid_files_parse() {
    let d = tempfile::tempdir().unwrap();
    for (name, text) in VALID {
        parse(name, d.path(), text.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
