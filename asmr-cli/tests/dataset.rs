//! Dataset runs end to end: many inputs, models and seeds; shards as a local Slurm job array;
//! a killed shard started again; a corrupt file among good ones; `summary` and `reproduce`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use image::{ImageBuffer, Luma};

fn cli_cmd(args: &[&str], cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_asmr-cli"));
    c.args(args).current_dir(cwd);
    for v in [
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_COUNT",
        "SLURM_ARRAY_TASK_STEP",
    ] {
        c.env_remove(v);
    }
    c
}

fn run(args: &[&str], cwd: &Path) -> Output {
    cli_cmd(args, cwd).output().expect("run asmr-cli")
}

fn ok(args: &[&str], cwd: &Path) -> String {
    let o = run(args, cwd);
    assert!(
        o.status.success(),
        "{args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `n` small gray pictures, each a different pattern, in `dir/photos/`.
fn photos(dir: &Path, n: u32, size: u32) -> PathBuf {
    let folder = dir.join("photos");
    std::fs::create_dir_all(&folder).unwrap();
    for k in 0..n {
        let img = ImageBuffer::from_fn(size, size, |x, y| {
            let v = ((x * (k + 3) + y * (2 * k + 1)) % 17) as f32 / 16.0;
            Luma([(v * 255.0) as u8])
        });
        img.save(folder.join(format!("p{k}.png"))).unwrap();
    }
    folder
}

const FAST: &[&str] = &[
    "--set",
    "net.hidden=16",
    "--set",
    "net.layers=3",
    "--set",
    "train.lr=1e-3",
    "--iterations",
    "4",
    "-q",
];

/// Every finished run folder under `root` (relative), and the summary's rows without the wall
/// times (which differ between processes).
fn runs_and_table(root: &Path) -> (BTreeSet<PathBuf>, serde_json::Value) {
    let mut runs = BTreeSet::new();
    for signal in std::fs::read_dir(root).unwrap() {
        let signal = signal.unwrap().path();
        if !signal.is_dir() || signal.file_name().unwrap() == ".work" {
            continue;
        }
        for r in std::fs::read_dir(&signal).unwrap() {
            let r = r.unwrap().path();
            assert!(
                r.join("metrics.json").is_file(),
                "{} incomplete",
                r.display()
            );
            runs.insert(r.strip_prefix(root).unwrap().to_path_buf());
        }
    }
    let text = std::fs::read_to_string(root.join("summary.json")).unwrap();
    let mut table: serde_json::Value = serde_json::from_str(&text).unwrap();
    for row in table["rows"].as_array_mut().unwrap() {
        row.as_object_mut().unwrap().remove("wall_seconds");
    }
    (runs, table)
}

fn no_partial_files(root: &Path) {
    let work = root.join(".work");
    let leftovers: Vec<_> = walk(&work);
    assert!(leftovers.is_empty(), "left in .work: {leftovers:?}");
    for f in walk(root) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp-"), "temporary file {}", f.display());
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn four_way_array_equals_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let folder = photos(dir.path(), 6, 16);
    let folder = folder.to_str().unwrap();
    let mut args = vec![
        "fit",
        "image",
        folder,
        "--model",
        "asmr,siren",
        "--seeds",
        "1,2,3",
    ];
    args.extend_from_slice(FAST);

    // One process over the whole list.
    let mut single = args.clone();
    single.extend(["--out", "single"]);
    let log = ok(&single, dir.path());
    let (runs, table) = runs_and_table(&dir.path().join("single"));
    assert_eq!(runs.len(), 36, "{log}");
    no_partial_files(&dir.path().join("single"));

    // A 4-task Slurm job array (ids 10..13) into one shared folder.
    let mut array = args.clone();
    array.extend(["--out", "array"]);
    let children: Vec<_> = (0..4)
        .map(|k| {
            cli_cmd(&array, dir.path())
                .env("SLURM_ARRAY_TASK_ID", (10 + k).to_string())
                .env("SLURM_ARRAY_TASK_MIN", "10")
                .env("SLURM_ARRAY_TASK_COUNT", "4")
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // The summary a shard writes covers what was finished when it ended; write it again now.
    ok(&["summary", "array"], dir.path());
    let (array_runs, array_table) = runs_and_table(&dir.path().join("array"));
    assert_eq!(array_runs, runs);
    assert_eq!(array_table, table);
    no_partial_files(&dir.path().join("array"));

    // Started again, nothing is fitted twice.
    let loud: Vec<&str> = array.iter().copied().filter(|a| *a != "-q").collect();
    let again = ok(&loud, dir.path());
    assert!(again.contains("0 fitted, 36 already complete"), "{again}");
}

#[test]
fn a_killed_shard_started_again_fits_only_the_missing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let folder = photos(dir.path(), 3, 32);
    let folder = folder.to_str().unwrap();
    let args = [
        "fit",
        "image",
        folder,
        "--seeds",
        "1,2",
        "--shard",
        "1/1",
        "--set",
        "net.hidden=32",
        "--set",
        "train.lr=1e-3",
        "--iterations",
        "150",
        "--set",
        "train.checkpoint_every=20",
        "--out",
        "data",
        "-q",
    ];
    let root = dir.path().join("data");
    let mut child = cli_cmd(&args, dir.path()).spawn().unwrap();
    // Kill it once two runs are finished (so the third is under way).
    let t = Instant::now();
    loop {
        let done = walk(&root)
            .iter()
            .filter(|p| p.ends_with("metrics.json") && !p.starts_with(root.join(".work")))
            .count();
        if done >= 2 || t.elapsed() > Duration::from_secs(120) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = runs_listed(&root);
    assert!(before.len() >= 2 && before.len() < 6, "{before:?}");

    let log = ok(&args[..args.len() - 1], dir.path());
    let line = format!(
        "{} fitted, {} already complete",
        6 - before.len(),
        before.len()
    );
    assert!(log.contains(&line), "wanted `{line}` in {log}");
    let (runs, _) = runs_and_table(&root);
    assert_eq!(runs.len(), 6);
    assert!(before.is_subset(&runs));
    no_partial_files(&root);
}

fn runs_listed(root: &Path) -> BTreeSet<PathBuf> {
    walk(root)
        .into_iter()
        .filter(|p| p.ends_with("metrics.json") && !p.starts_with(root.join(".work")))
        .map(|p| {
            p.parent()
                .unwrap()
                .strip_prefix(root)
                .unwrap()
                .to_path_buf()
        })
        .collect()
}

#[test]
fn a_corrupt_file_among_good_ones_is_named_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let folder = photos(dir.path(), 2, 16);
    std::fs::write(folder.join("broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let mut args = vec!["fit", "image", folder.to_str().unwrap(), "--out", "out"];
    args.extend_from_slice(FAST);
    let o = run(&args, dir.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("1 of 3 runs failed"), "{err}");
    assert!(err.contains("broken"), "{err}");
    let runs = runs_listed(&dir.path().join("out"));
    let names: Vec<String> = runs.iter().map(|p| p.display().to_string()).collect();
    assert_eq!(
        names,
        ["p0/asmr-image-seed42", "p1/asmr-image-seed42"],
        "{err}"
    );
    // The summary covers the good ones.
    assert!(dir.path().join("out/summary.md").is_file());
}

#[test]
fn manifests_globs_and_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    photos(dir.path(), 3, 16);
    std::fs::write(
        dir.path().join("list.txt"),
        "photos/p2.png\nphotos/p0.png\n",
    )
    .unwrap();
    let mut args = vec!["fit", "image", "list.txt", "photos/p1*", "--out", "m"];
    args.extend_from_slice(FAST);
    ok(&args, dir.path());
    let names: Vec<String> = runs_listed(&dir.path().join("m"))
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "p0/asmr-image-seed42",
            "p1/asmr-image-seed42",
            "p2/asmr-image-seed42"
        ]
    );
    for (extra, needle) in [
        (vec!["photos", "--shard", "5/4"], "--shard 5/4"),
        (
            vec!["photos", "--seeds", "1,2", "--resume", "x"],
            "--resume",
        ),
        (vec!["nowhere/*.png", "--seeds", "1"], "matches no file"),
        (vec!["photos", "--model", "asmr,nosuch"], "nosuch"),
    ] {
        let mut a = vec!["fit", "image"];
        a.extend(extra);
        a.extend(["--out", "bad", "-q"]);
        let o = run(&a, dir.path());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{a:?}");
        assert!(err.contains(needle), "{a:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{a:?}: {err}");
    }
}

#[test]
fn reproduce_plans_and_names_missing_data() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        &["reproduce", "low-mac", "--data", ".", "--plan"],
        dir.path(),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("expects cameraman"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");

    let img = ImageBuffer::from_fn(512, 512, |x, y| Luma([((x ^ y) & 0xff) as u8]));
    img.save(dir.path().join("cameraman.png")).unwrap();
    let o = run(
        &["reproduce", "low-mac", "--data", ".", "--plan"],
        dir.path(),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("| cameraman "))
        .collect();
    assert_eq!(rows.len(), 18, "{out}");
    for m in 1..=5 {
        assert!(out.contains(&format!("asmr/low-mac-{m} seed 3")), "{out}");
    }
    assert!(out.contains("siren/low-mac-4 seed 1"), "{out}");
    // Every row has a time estimate.
    assert!(
        rows.iter()
            .all(|r| r.ends_with(" s |") || r.contains("min")),
        "{out}"
    );
    assert!(out.contains("18 runs, about"), "{out}");
}
