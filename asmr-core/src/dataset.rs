//! Many signals: the inputs of a dataset run, its run list, shards, and run folders that several
//! processes can share.
//!
//! A run is one (signal, model, preset, seed). Its folder under the dataset's root is
//! `<signal>/<model>-<preset>-seed<seed>`; it appears there only when the run is complete (the fit
//! writes into `.work/<same path>` and the folder is renamed into place), so a folder that exists
//! is a finished run and a dataset run can be killed and started again. A run is claimed by an
//! exclusive lock on `.work/<same path>.lock`; the system releases it when its process ends, however
//! it ends, so the next process to claim the run resumes it from its last checkpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::run::{METRICS_FILE, STATE_FILE};

/// Extensions of a manifest: a text file listing one input per line.
pub const MANIFEST_EXTENSIONS: &[&str] = &["txt", "list", "lst"];
/// Where unfinished runs live under a dataset's root.
pub const WORK_DIR: &str = ".work";

/// The input files `paths` name, in order, each once: a path is a file, a directory (its files
/// with one of `extensions`, sorted, not recursive), a glob (`photos/*.png`, quoted so the shell
/// leaves it), or a manifest (`.txt`, `.list`, `.lst`: one path per line, relative to the
/// manifest's folder; blank lines and `#` comments skipped).
pub fn expand_inputs(paths: &[PathBuf], extensions: &[&str]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        expand_one(p, extensions, &mut out, 0)?;
    }
    let mut seen = BTreeSet::new();
    out.retain(|p| seen.insert(p.clone()));
    Ok(out)
}

fn has_extension(p: &Path, extensions: &[&str]) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| extensions.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// A manifest (a list of inputs) rather than an input: a text file's extension that is not one
/// of the modality's own.
pub fn is_manifest(p: &Path, extensions: &[&str]) -> bool {
    has_extension(p, MANIFEST_EXTENSIONS) && !has_extension(p, extensions)
}

fn expand_one(p: &Path, extensions: &[&str], out: &mut Vec<PathBuf>, depth: usize) -> Result<()> {
    let text = p.to_string_lossy();
    if !p.exists() && text.contains(['*', '?', '[']) {
        let paths = glob::glob(&text)
            .map_err(|e| Error::input(p, format!("not a valid glob pattern: {e}")))?;
        let mut found: Vec<PathBuf> = paths
            .filter_map(|r| r.ok())
            .filter(|q| q.is_file())
            .collect();
        if found.is_empty() {
            return Err(Error::input(p, "the pattern matches no file"));
        }
        found.sort();
        out.extend(found);
        return Ok(());
    }
    if p.is_dir() {
        let entries = fs::read_dir(p).map_err(|e| Error::io(p, e))?;
        let mut found = Vec::new();
        for entry in entries {
            let q = entry.map_err(|e| Error::io(p, e))?.path();
            let hidden = q
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if q.is_file() && !hidden && has_extension(&q, extensions) {
                found.push(q);
            }
        }
        if found.is_empty() {
            return Err(Error::input(
                p,
                format!("holds no input file ({})", extensions.join(", ")),
            ));
        }
        found.sort();
        out.extend(found);
        return Ok(());
    }
    if !p.exists() {
        return Err(Error::input(p, "no such file or directory"));
    }
    if is_manifest(p, extensions) {
        if depth > 8 {
            return Err(Error::input(p, "manifests nest more than 8 deep"));
        }
        let text = fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
        let base = p.parent().unwrap_or(Path::new("."));
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let q = Path::new(line);
            let q = if q.is_absolute() {
                q.to_path_buf()
            } else {
                base.join(q)
            };
            expand_one(&q, extensions, out, depth + 1).map_err(|e| {
                Error::input(
                    p,
                    format!("line {} (a manifest of inputs): {e}", number + 1),
                )
            })?;
        }
        return Ok(());
    }
    out.push(p.to_path_buf());
    Ok(())
}

/// One fit of a dataset run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    pub input: PathBuf,
    /// The signal's name in folder names (its file stem, made unique within the list).
    pub signal: String,
    pub model: String,
    pub preset: String,
    pub seed: u64,
}

impl RunSpec {
    /// The run's folder relative to the dataset's root.
    pub fn folder(&self) -> PathBuf {
        Path::new(&self.signal).join(format!("{}-{}-seed{}", self.model, self.preset, self.seed))
    }

    /// `cameraman asmr/low-mac-4 seed 1`, for progress and failure lists.
    pub fn label(&self) -> String {
        format!(
            "{} {}/{} seed {}",
            self.signal, self.model, self.preset, self.seed
        )
    }
}

/// Folder-safe names for the inputs: file stems, with the parent folder's name added where two
/// inputs share a stem, and a counter where that is not enough either.
pub fn signal_names(inputs: &[PathBuf]) -> Vec<String> {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let stem = |p: &PathBuf| clean(&p.file_stem().unwrap_or_default().to_string_lossy());
    let mut count = BTreeMap::<String, usize>::new();
    for p in inputs {
        *count.entry(stem(p)).or_default() += 1;
    }
    let mut used = BTreeSet::new();
    inputs
        .iter()
        .map(|p| {
            let s = stem(p);
            let mut name = if count[&s] > 1 {
                let parent = p
                    .parent()
                    .and_then(|q| q.file_name())
                    .map(|n| clean(&n.to_string_lossy()))
                    .unwrap_or_default();
                format!("{parent}-{s}")
            } else {
                s
            };
            if name.is_empty() || name.starts_with('.') {
                name = format!("signal{name}");
            }
            let base = name.clone();
            let mut k = 1;
            while !used.insert(name.clone()) {
                k += 1;
                name = format!("{base}-{k}");
            }
            name
        })
        .collect()
}

/// The run list of inputs x (model, preset) pairs x seeds, inputs outermost.
pub fn run_list(inputs: &[PathBuf], recipes: &[(String, String)], seeds: &[u64]) -> Vec<RunSpec> {
    let names = signal_names(inputs);
    let mut runs = Vec::new();
    for (input, signal) in inputs.iter().zip(names) {
        for (model, preset) in recipes {
            for &seed in seeds {
                runs.push(RunSpec {
                    input: input.clone(),
                    signal: signal.clone(),
                    model: model.clone(),
                    preset: preset.clone(),
                    seed,
                });
            }
        }
    }
    runs
}

/// Shard `index` of `count` (0-based): runs `index`, `index + count`, ... of the list, so every run
/// belongs to exactly one shard and each shard gets a mix of models and signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// `I/N` with `I` from 1 to `N`, as on the command line.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || {
            Error::Invalid(format!(
                "--shard {text}: expected I/N with 1 <= I <= N (the I-th of N shards)"
            ))
        };
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (i, n): (usize, usize) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if n == 0 || i == 0 || i > n {
            return Err(bad());
        }
        Ok(Shard {
            index: i - 1,
            count: n,
        })
    }

    /// The shard of a Slurm job array task, from `SLURM_ARRAY_TASK_ID`, `SLURM_ARRAY_TASK_MIN`,
    /// `SLURM_ARRAY_TASK_COUNT` (and `SLURM_ARRAY_TASK_STEP` for arrays like `0-15:2`), read
    /// through `var`; `None` outside an array.
    pub fn from_slurm(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let Some(id) = var("SLURM_ARRAY_TASK_ID") else {
            return Ok(None);
        };
        let num = |name: &str, default: Option<usize>| -> Result<usize> {
            match var(name) {
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| Error::Invalid(format!("{name}={v} is not a whole number"))),
                None => default.ok_or_else(|| {
                    Error::Invalid(format!(
                        "SLURM_ARRAY_TASK_ID is set but {name} is not (not a Slurm job array?)"
                    ))
                }),
            }
        };
        let id: usize = id.trim().parse().map_err(|_| {
            Error::Invalid(format!("SLURM_ARRAY_TASK_ID={id} is not a whole number"))
        })?;
        let min = num("SLURM_ARRAY_TASK_MIN", None)?;
        let count = num("SLURM_ARRAY_TASK_COUNT", None)?;
        let step = num("SLURM_ARRAY_TASK_STEP", Some(1))?.max(1);
        let index = id.checked_sub(min).map(|k| k / step);
        match index {
            Some(index) if index < count && (id - min).is_multiple_of(step) => {
                Ok(Some(Shard { index, count }))
            }
            _ => Err(Error::Invalid(format!(
                "SLURM_ARRAY_TASK_ID={id} is outside the array (min {min}, step {step}, {count} \
                 tasks)"
            ))),
        }
    }

    pub fn pick<T: Clone>(&self, runs: &[T]) -> Vec<T> {
        runs.iter()
            .enumerate()
            .filter(|(k, _)| k % self.count == self.index)
            .map(|(_, r)| r.clone())
            .collect()
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index + 1, self.count)
    }
}

/// What a process may do with a run.
#[derive(Debug)]
pub enum Claim {
    /// The run's folder is complete.
    Done(PathBuf),
    /// Another live process is fitting it.
    Taken,
    /// This process fits it in `work` while it holds `lock`; `resume` is the checkpoint an
    /// earlier, interrupted attempt left there.
    Mine {
        work: PathBuf,
        resume: Option<PathBuf>,
        lock: RunLock,
    },
}

/// An exclusive lock on a run (an advisory lock on `.work/<run>.lock`, which the system drops
/// when the process ends however it ends, so a killed process never keeps a run).
#[derive(Debug)]
pub struct RunLock {
    _file: fs::File,
    path: PathBuf,
}

/// Claim `run` under `root` for this process.
pub fn claim(root: &Path, run: &RunSpec) -> Result<Claim> {
    let done = root.join(run.folder());
    if done.join(METRICS_FILE).is_file() {
        return Ok(Claim::Done(done));
    }
    let work = root.join(WORK_DIR).join(run.folder());
    let parent = work.parent().unwrap_or(root);
    let mut lock_name = work.file_name().unwrap_or_default().to_os_string();
    lock_name.push(".lock");
    let lock_path = work.with_file_name(lock_name);
    // Another process's `publish` may remove the (empty) parent between the two calls: try again.
    let mut tries = 0;
    let file = loop {
        fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        match fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
        {
            Ok(f) => break f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 8 => tries += 1,
            Err(e) => return Err(Error::io(&lock_path, e)),
        }
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => return Ok(Claim::Taken),
        Err(fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
    }
    // Whoever held the lock before may have finished the run meanwhile.
    if done.join(METRICS_FILE).is_file() {
        return Ok(Claim::Done(done));
    }
    fs::create_dir_all(&work).map_err(|e| Error::io(&work, e))?;
    let state = work.join(STATE_FILE);
    Ok(Claim::Mine {
        resume: state.is_file().then_some(state),
        work,
        lock: RunLock {
            _file: file,
            path: lock_path,
        },
    })
}

/// Move a finished run from its work folder to its final place (one rename: the folder appears
/// whole), then give up its lock.
pub fn publish(root: &Path, run: &RunSpec, work: &Path, lock: RunLock) -> Result<PathBuf> {
    let done = root.join(run.folder());
    let parent = done.parent().unwrap_or(root);
    fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    fs::rename(work, &done).map_err(|e| Error::io(&done, e))?;
    // A process that opens the lock file after this finds the run done once it holds the lock.
    let _ = fs::remove_file(&lock.path);
    drop(lock);
    // Empty work folders above it go too (another process may be filling one: then it stays).
    let stop = root.join(WORK_DIR);
    let mut dir = work.parent();
    while let Some(d) = dir.filter(|d| d.starts_with(&stop)) {
        if fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, b"x").unwrap();
    }

    #[test]
    fn inputs_from_files_dirs_globs_and_manifests() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for f in [
            "a/1.png",
            "a/2.PNG",
            "a/notes.md",
            "a/.hidden.png",
            "b/3.png",
            "b/4.jpg",
        ] {
            touch(&r.join(f));
        }
        fs::write(r.join("list.txt"), "# photos\nb/4.jpg\n\n a/1.png \n").unwrap();
        let ext = ["png", "jpg"];
        let got = expand_inputs(
            &[
                r.join("a"),
                r.join("b/*.png"),
                r.join("list.txt"),
                r.join("b/4.jpg"),
            ],
            &ext,
        )
        .unwrap();
        let want: Vec<PathBuf> = ["a/1.png", "a/2.PNG", "b/3.png", "b/4.jpg"]
            .iter()
            .map(|f| r.join(f))
            .collect();
        assert_eq!(got, want);
        let err = expand_inputs(&[r.join("missing.png")], &ext).unwrap_err();
        assert!(err.to_string().contains("no such file"), "{err}");
        let err = expand_inputs(&[r.join("b/*.gif")], &ext).unwrap_err();
        assert!(err.to_string().contains("matches no file"), "{err}");
        fs::write(r.join("bad.txt"), "nothere.png\n").unwrap();
        let err = expand_inputs(&[r.join("bad.txt")], &ext).unwrap_err();
        assert!(err.to_string().contains("nothere.png"), "{err}");
    }

    #[test]
    fn names_are_unique_and_stable() {
        let inputs: Vec<PathBuf> = ["x/cat.png", "y/cat.png", "dog one.png", "z/x/cat.png"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let names = signal_names(&inputs);
        assert_eq!(names, ["x-cat", "y-cat", "dog_one", "x-cat-2"]);
        let runs = run_list(
            &inputs[..1],
            &[
                ("asmr".into(), "image".into()),
                ("siren".into(), "image".into()),
            ],
            &[1, 2],
        );
        assert_eq!(runs.len(), 4);
        assert_eq!(runs[1].folder(), Path::new("cat/asmr-image-seed2"));
        assert_eq!(runs[3].label(), "cat siren/image seed 2");
    }

    #[test]
    fn shards_partition_the_list() {
        let runs: Vec<usize> = (0..37).collect();
        for n in 1..6 {
            let mut all: Vec<usize> = (0..n)
                .flat_map(|i| Shard { index: i, count: n }.pick(&runs))
                .collect();
            all.sort();
            assert_eq!(all, runs);
        }
        assert_eq!(Shard::parse("2/4").unwrap(), Shard { index: 1, count: 4 });
        for bad in ["0/4", "5/4", "1/0", "x", "1/2/3"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slurm_variables_give_the_shard() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let s = Shard::from_slurm(env(&[
            ("SLURM_ARRAY_TASK_ID", "7"),
            ("SLURM_ARRAY_TASK_MIN", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]))
        .unwrap();
        assert_eq!(s, Some(Shard { index: 2, count: 4 }));
        let s = Shard::from_slurm(env(&[
            ("SLURM_ARRAY_TASK_ID", "4"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
        ]))
        .unwrap();
        assert_eq!(s, Some(Shard { index: 2, count: 4 }));
        assert_eq!(Shard::from_slurm(env(&[])).unwrap(), None);
        assert!(Shard::from_slurm(env(&[("SLURM_ARRAY_TASK_ID", "3")])).is_err());
        assert!(Shard::from_slurm(env(&[
            ("SLURM_ARRAY_TASK_ID", "9"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]))
        .is_err());
    }

    #[test]
    fn claims_are_exclusive_and_end_with_their_holder() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let run = &run_list(
            &[PathBuf::from("cat.png")],
            &[("asmr".into(), "p".into())],
            &[1],
        )[0];
        let Claim::Mine { work, resume, lock } = claim(root, run).unwrap() else {
            panic!("first claim")
        };
        assert_eq!(resume, None);
        // Held: a second claim (another open file description, as another process has) is refused.
        assert!(matches!(claim(root, run).unwrap(), Claim::Taken));
        // Its holder gone (a killed process's locks go with it), the run is claimed again and
        // resumes from the checkpoint left behind.
        touch(&work.join(STATE_FILE));
        drop(lock);
        let Claim::Mine { resume, lock, .. } = claim(root, run).unwrap() else {
            panic!("claim after the holder ended")
        };
        assert_eq!(resume, Some(work.join(STATE_FILE)));
        touch(&work.join(METRICS_FILE));
        let done = publish(root, run, &work, lock).unwrap();
        assert!(done.join(METRICS_FILE).is_file() && !work.exists());
        assert!(
            !root.join(WORK_DIR).exists(),
            "empty work folders stay behind"
        );
        assert!(matches!(claim(root, run).unwrap(), Claim::Done(p) if p == done));
    }
}
