//! Crash consistency: `fit` killed (SIGKILL) or stopped (SIGINT, SIGTERM) at many moments —
//! before the first checkpoint, during checkpoints, during the final writes — and continued each
//! time ends with the model and metrics of an uninterrupted run, and no file under its final name
//! is ever partial. The same for a dataset run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use image::{ImageBuffer, Luma};

/// The CLI with SIGINT and SIGTERM at their default dispositions, however the test runner was
/// started: a runner started as a background job has SIGINT ignored, the fit would inherit that and
/// keep it (see `sigint_ignored_at_start_stays_ignored`), and the stops here would not happen.
fn cli(args: &[String], cwd: &Path) -> Command {
    with_signals(args, cwd, libc::SIG_DFL)
}

fn with_signals(args: &[String], cwd: &Path, disposition: libc::sighandler_t) -> Command {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new(env!("CARGO_BIN_EXE_asmr-cli"));
    // SAFETY: `signal` is async-signal-safe, as the code between fork and exec must be.
    unsafe {
        c.pre_exec(move || {
            libc::signal(libc::SIGINT, disposition);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            Ok(())
        });
    }
    c.args(args)
        .current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for v in [
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_COUNT",
    ] {
        c.env_remove(v);
    }
    c
}

fn photo(dir: &Path, name: &str, k: u32) -> PathBuf {
    let img = ImageBuffer::from_fn(48, 40, |x, y| {
        Luma([(((x * (3 + k) + y * 7) % 23) as f32 / 22.0 * 255.0) as u8])
    });
    let p = dir.join(name);
    img.save(&p).unwrap();
    p
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

const RECIPE: &[&str] = &[
    "--set",
    "net.hidden=24",
    "--set",
    "train.lr=1e-3",
    "--set",
    "train.checkpoint_every=37",
    "--iterations",
    "400",
    "-q",
];

/// `fit image PHOTO --out OUT` with the recipe above.
fn fit_photo(photo: &str, out: &str) -> Vec<String> {
    let mut a = args(&["fit", "image", photo, "--out", out]);
    a.extend(args(RECIPE));
    a
}

/// A small deterministic generator for the kill moments.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn send(child: &std::process::Child, signal: libc::c_int) {
    // SAFETY: signalling our own child process by its id.
    unsafe {
        libc::kill(child.id() as libc::pid_t, signal);
    }
}

/// Every file under `dir` with a final name is whole: no temporary names left visible as final
/// ones, metrics and configs parse, checkpoints load, pictures decode.
fn check_files(dir: &Path, cwd: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            check_files(&p, cwd);
            continue;
        }
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue; // temporaries and claims live under hidden names
        }
        let bytes = std::fs::read(&p).unwrap();
        match p.extension().and_then(|e| e.to_str()) {
            Some("json") => {
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            }
            Some("yaml") => {
                let text = String::from_utf8(bytes).unwrap();
                assert!(text.contains("train:"), "{}: partial", p.display());
            }
            Some("png") => {
                image::load_from_memory(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            }
            Some("safetensors") => {
                let o = Command::new(env!("CARGO_BIN_EXE_asmr-cli"))
                    .args(["info", p.to_str().unwrap()])
                    .current_dir(cwd)
                    .output()
                    .unwrap();
                assert!(
                    o.status.success(),
                    "{}: {}",
                    p.display(),
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            _ => {}
        }
    }
}

/// Start `command(attempt)` again and again, each time interrupting it after a random moment with
/// SIGKILL, SIGINT or SIGTERM in turn, checking the files after each stop, until a run ends by
/// itself; returns how many were interrupted.
fn until_done(
    cwd: &Path,
    folder: &Path,
    seed: u64,
    whole_run: Duration,
    command: &dyn Fn() -> Vec<String>,
) -> usize {
    let mut rng = Lcg(seed);
    let signals = [libc::SIGKILL, libc::SIGINT, libc::SIGTERM];
    for attempt in 0..60 {
        let mut child = cli(&command(), cwd).spawn().unwrap();
        // Early moments are the likeliest to find start-up and first-checkpoint windows.
        // A few early moments first (start-up, first checkpoint), then anywhere in the run.
        let r = rng.next();
        let fraction = [0.02, 0.05, 0.08]
            .get(attempt)
            .copied()
            .unwrap_or(1.1 * r * r);
        std::thread::sleep(whole_run.mul_f64(fraction));
        if child.try_wait().unwrap().is_none() {
            send(&child, signals[attempt % 3]);
        }
        let status = child.wait().unwrap();
        check_files(folder, cwd);
        if status.success() {
            return attempt;
        }
    }
    panic!("the run never finished in 60 attempts");
}

/// Run `command(out)` to the end into `whole` and into `again` (which must agree: a fit is
/// deterministic); the kill moments are fractions of the shorter time.
fn faster_of_two(cwd: &Path, command: &dyn Fn(&str) -> Vec<String>) -> Duration {
    ["whole", "again"]
        .iter()
        .map(|out| {
            let t = std::time::Instant::now();
            assert!(cli(&command(out), cwd).status().unwrap().success());
            t.elapsed()
        })
        .min()
        .unwrap()
}

/// The tests here one at a time: their kill moments are fractions of a measured whole run, which
/// the other test's fits running beside it would stretch.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A test's scratch folder, held with the lock that runs these tests one at a time.
fn one_at_a_time() -> (std::sync::MutexGuard<'static, ()>, tempfile::TempDir) {
    let serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    (serial, tempfile::tempdir().unwrap())
}

fn same_results(a: &Path, b: &Path) {
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p.join("metrics.json")).unwrap()).unwrap()
    };
    let (ma, mb) = (read(a), read(b));
    for key in ["psnr", "ssim", "best_step", "steps", "best_train_psnr"] {
        assert_eq!(
            ma[key],
            mb[key],
            "{key}: {} vs {}",
            a.display(),
            b.display()
        );
    }
    let pixels = |p: &Path| {
        image::open(p.join("reconstruction.png"))
            .unwrap()
            .to_luma8()
    };
    assert_eq!(pixels(a), pixels(b), "reconstructions differ");
}

#[test]
fn killed_and_continued_fits_end_like_uninterrupted_ones() {
    let (_serial, dir) = one_at_a_time();
    let d = dir.path();
    let p = photo(d, "photo.png", 0);
    let p = p.to_str().unwrap();
    let took = faster_of_two(d, &|out| fit_photo(p, out));
    same_results(&d.join("whole"), &d.join("again"));

    let folder = d.join("cut");
    let state = folder.join("state.safetensors");
    let command = || {
        let mut a = fit_photo(p, "cut");
        // An interrupted run with a checkpoint is continued from it; one without is started
        // again by the same command.
        if state.exists() && !folder.join("metrics.json").exists() {
            a.extend(args(&["--resume", "cut/state.safetensors"]));
        }
        a
    };
    let stops = until_done(d, &folder, 7, took, &command);
    assert!(
        stops >= 3,
        "only {stops} interruptions: the run is too short"
    );
    same_results(&d.join("whole"), &folder);
}

#[test]
fn killed_and_restarted_dataset_runs_end_like_uninterrupted_ones() {
    let (_serial, dir) = one_at_a_time();
    let d = dir.path();
    std::fs::create_dir(d.join("photos")).unwrap();
    for k in 0..3 {
        photo(&d.join("photos"), &format!("p{k}.png"), k);
    }
    let dataset = |out: &str| {
        let mut a = args(&["fit", "image", "photos", "--seeds", "1,2", "--out", out]);
        a.extend(args(RECIPE));
        a
    };
    let took = faster_of_two(d, &dataset);
    let stops = until_done(d, &d.join("cut"), 11, took, &|| dataset("cut"));
    assert!(stops >= 3, "only {stops} interruptions");
    for k in 0..3 {
        for seed in 1..=2 {
            let run = format!("p{k}/asmr-image-seed{seed}");
            same_results(&d.join("whole").join(&run), &d.join("cut").join(&run));
        }
    }
    let work = std::fs::read_dir(d.join("cut/.work"))
        .map(|e| e.count())
        .unwrap_or(0);
    assert_eq!(work, 0, "unfinished work left");
}

/// A fit started with SIGINT ignored (a shell's background job) keeps ignoring it, as Unix tools
/// do, and runs to its end; SIGTERM still stops it.
#[test]
fn sigint_ignored_at_start_stays_ignored() {
    let (_serial, dir) = one_at_a_time();
    let d = dir.path();
    let p = photo(d, "photo.png", 0);
    // Signalled once its first checkpoint is written, well after the handlers are installed.
    let run = |out: &str, iterations: &str, signal: libc::c_int| {
        let mut a = fit_photo(p.to_str().unwrap(), out);
        let at = a.iter().position(|x| x == "--iterations").unwrap();
        a[at + 1] = iterations.to_string();
        let mut child = with_signals(&a, d, libc::SIG_IGN).spawn().unwrap();
        let state = d.join(out).join("state.safetensors");
        let start = std::time::Instant::now();
        while !state.exists() && child.try_wait().unwrap().is_none() {
            assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint");
            std::thread::sleep(Duration::from_millis(5));
        }
        send(&child, signal);
        (
            child.wait().unwrap(),
            d.join(out).join("metrics.json").exists(),
        )
    };
    let (status, finished) = run("ignored", "400", libc::SIGINT);
    assert!(status.success() && finished, "{status:?}");
    // A run far too long to end by itself.
    let (status, finished) = run("stopped", "1000000", libc::SIGTERM);
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(!finished);
}
