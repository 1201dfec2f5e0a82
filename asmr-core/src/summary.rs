//! A paper-style table over many run folders: one row per (model, preset), each metric as mean
//! and standard deviation over the row's signals and seeds, with the cost columns beside them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::Serialize;

use crate::dataset::WORK_DIR;
use crate::error::{Error, Result};
use crate::output::write_bytes_atomic;
use crate::run::{FitReport, METRICS_FILE};

/// Mean and sample standard deviation (`n - 1` in the denominator, 0 for one value) of `n`
/// values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stat {
    pub mean: f64,
    pub std: f64,
    pub n: usize,
}

impl Stat {
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        if n == 0 {
            return Stat {
                mean: f64::NAN,
                std: f64::NAN,
                n,
            };
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = if n > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        Stat { mean, std, n }
    }
}

/// One (model, preset) of the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub model: String,
    pub preset: String,
    pub runs: usize,
    pub signals: usize,
    pub seeds: usize,
    /// Quality metrics by name (`psnr`, `ssim`, `iou`...), over the runs that report them.
    pub metrics: BTreeMap<String, Stat>,
    pub macs_per_sample: f64,
    pub params: f64,
    pub wall_seconds: Stat,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub rows: Vec<Row>,
    /// Metric columns, in table order.
    pub metrics: Vec<String>,
}

/// Every run folder (a folder holding `metrics.json`) under `dirs`, searched recursively (the
/// unfinished runs of a dataset's `.work` folder are left out), sorted by path.
pub fn find_runs(dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        if dir.join(METRICS_FILE).is_file() {
            out.push(dir.to_path_buf());
            return Ok(());
        }
        for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let p = entry.map_err(|e| Error::io(dir, e))?.path();
            let skip = p.file_name().is_some_and(|n| n == WORK_DIR);
            if p.is_dir() && !skip {
                walk(&p, out)?;
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for d in dirs {
        if !d.is_dir() {
            return Err(Error::input(d, "not a folder of runs"));
        }
        walk(d, &mut out)?;
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The table of `reports`: rows sorted by model, then preset.
pub fn summarise(reports: &[FitReport]) -> Summary {
    let mut groups: BTreeMap<(String, String), Vec<&FitReport>> = BTreeMap::new();
    for r in reports {
        let preset = r.preset.clone().unwrap_or_else(|| "-".into());
        groups.entry((r.model.clone(), preset)).or_default().push(r);
    }
    let mut names = BTreeSet::new();
    let rows: Vec<Row> = groups
        .into_iter()
        .map(|((model, preset), runs)| {
            let keys: BTreeSet<&String> = runs.iter().flat_map(|r| r.quality.keys()).collect();
            let metrics: BTreeMap<String, Stat> = keys
                .into_iter()
                .map(|k| {
                    let v: Vec<f64> = runs
                        .iter()
                        .filter_map(|r| r.quality.get(k))
                        .copied()
                        .collect();
                    (k.clone(), Stat::of(&v))
                })
                .collect();
            names.extend(metrics.keys().cloned());
            let mean = |f: &dyn Fn(&FitReport) -> f64| {
                runs.iter().map(|r| f(r)).sum::<f64>() / runs.len() as f64
            };
            let wall: Vec<f64> = runs.iter().map(|r| r.wall_seconds).collect();
            Row {
                runs: runs.len(),
                signals: runs
                    .iter()
                    .map(|r| &r.source)
                    .collect::<BTreeSet<_>>()
                    .len(),
                seeds: runs.iter().map(|r| r.seed).collect::<BTreeSet<_>>().len(),
                macs_per_sample: mean(&|r| r.macs_per_sample),
                params: mean(&|r| r.params as f64),
                wall_seconds: Stat::of(&wall),
                metrics,
                model,
                preset,
            }
        })
        .collect();
    // The headline metrics first, then the rest by name.
    let lead = ["psnr", "ssim", "snr", "iou", "chamfer_l1"];
    let mut metrics: Vec<String> = lead
        .iter()
        .filter(|k| names.contains(**k))
        .map(|k| k.to_string())
        .collect();
    metrics.extend(names.into_iter().filter(|k| !lead.contains(&k.as_str())));
    Summary { rows, metrics }
}

/// How a metric is named on a plot's axis.
fn metric_label(key: &str) -> String {
    match key {
        "psnr" => "PSNR (dB)".into(),
        "snr" => "SNR (dB)".into(),
        "ssim" => "SSIM".into(),
        "iou" => "IoU".into(),
        "chamfer_l1" => "Chamfer L1".into(),
        other => other.into(),
    }
}

fn mean_std(s: Option<&Stat>) -> String {
    match s {
        Some(s) if s.n > 0 => format!("{} ± {}", sig(s.mean), sig(s.std)),
        _ => "-".into(),
    }
}

/// Four significant digits, without an exponent for ordinary magnitudes.
fn sig(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v == 0.0 {
        return "0".into();
    }
    let mag = v.abs().log10().floor() as i32;
    if !(-4..6).contains(&mag) {
        return format!("{v:.3e}");
    }
    let decimals = (3 - mag).max(0) as usize;
    format!("{v:.decimals$}")
}

impl Summary {
    pub fn markdown(&self) -> String {
        let mut head = vec!["model".to_string(), "preset".into(), "runs".into()];
        head.extend(self.metrics.iter().cloned());
        head.extend(["MACs/sample".into(), "params".into(), "wall s".into()]);
        let mut s = format!("| {} |\n", head.join(" | "));
        s.push_str(&format!(
            "|{}\n",
            head.iter()
                .enumerate()
                .map(|(i, _)| if i < 2 { "---|" } else { "---:|" })
                .collect::<String>()
        ));
        for r in &self.rows {
            let mut cells = vec![
                r.model.clone(),
                r.preset.clone(),
                format!(
                    "{} ({} signal{} x {} seed{})",
                    r.runs,
                    r.signals,
                    if r.signals == 1 { "" } else { "s" },
                    r.seeds,
                    if r.seeds == 1 { "" } else { "s" }
                ),
            ];
            cells.extend(self.metrics.iter().map(|k| mean_std(r.metrics.get(k))));
            cells.push(sig(r.macs_per_sample));
            cells.push(format!("{:.0}", r.params));
            cells.push(mean_std(Some(&r.wall_seconds)));
            s.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        s
    }

    /// One line per row; every metric as `NAME_mean`, `NAME_std`.
    pub fn csv(&self) -> String {
        let mut head = vec!["model", "preset", "runs", "signals", "seeds"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        for k in &self.metrics {
            head.push(format!("{k}_mean"));
            head.push(format!("{k}_std"));
        }
        head.extend(
            [
                "macs_per_sample",
                "params",
                "wall_seconds_mean",
                "wall_seconds_std",
            ]
            .map(String::from),
        );
        let quote = |s: &str| {
            if s.contains([',', '"', '\n']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        };
        let mut out = head.join(",") + "\n";
        for r in &self.rows {
            let mut cells = vec![
                quote(&r.model),
                quote(&r.preset),
                r.runs.to_string(),
                r.signals.to_string(),
                r.seeds.to_string(),
            ];
            for k in &self.metrics {
                match r.metrics.get(k) {
                    Some(s) => cells.extend([s.mean.to_string(), s.std.to_string()]),
                    None => cells.extend([String::new(), String::new()]),
                }
            }
            cells.extend([
                r.macs_per_sample.to_string(),
                r.params.to_string(),
                r.wall_seconds.mean.to_string(),
                r.wall_seconds.std.to_string(),
            ]);
            out.push_str(&(cells.join(",") + "\n"));
        }
        out
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into())
    }

    /// The metric plotted against MACs per sample: the first headline metric the runs have.
    pub fn plot_metric(&self) -> Option<&str> {
        self.metrics.first().map(String::as_str)
    }

    /// `summary.png`: quality against MACs per sample (log axis), one point per row with its
    /// standard deviation as an error bar.
    pub fn plot(&self, path: &Path) -> Result<()> {
        let Some(metric) = self.plot_metric() else {
            return Err(Error::Invalid("no metric to plot".into()));
        };
        let points: Vec<(String, f64, Stat)> = self
            .rows
            .iter()
            .filter_map(|r| {
                let s = *r.metrics.get(metric)?;
                (s.mean.is_finite() && r.macs_per_sample > 0.0)
                    .then(|| (format!("{} {}", r.model, r.preset), r.macs_per_sample, s))
            })
            .collect();
        if points.is_empty() {
            return Err(Error::Invalid(format!("no run reports {metric}")));
        }
        let (x_lo, x_hi) = points
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
        let (y_lo, y_hi) = points.iter().fold((f64::MAX, f64::MIN), |(a, b), p| {
            (a.min(p.2.mean - p.2.std), b.max(p.2.mean + p.2.std))
        });
        let pad = ((y_hi - y_lo) * 0.15).max(0.05 * y_hi.abs().max(1e-3));
        crate::plot::register_font();
        crate::figure::render(path, (900, 600), |root| {
            let err = |e: String| Error::Invalid(format!("plotting {}: {e}", path.display()));
            let mut chart = ChartBuilder::on(root)
                .caption(
                    format!("{} against MACs per sample", metric_label(metric)),
                    ("sans-serif", 20),
                )
                .margin(20)
                .x_label_area_size(45)
                .y_label_area_size(70)
                .build_cartesian_2d(
                    ((x_lo / 2.0)..(x_hi * 2.0)).log_scale(),
                    (y_lo - pad)..(y_hi + pad),
                )
                .map_err(|e| err(e.to_string()))?;
            chart
                .configure_mesh()
                .x_desc("MACs per sample (log)")
                .y_desc(metric_label(metric))
                .x_label_formatter(&|v| sig(*v))
                .label_style(("sans-serif", 14))
                .draw()
                .map_err(|e| err(e.to_string()))?;
            for (k, (label, x, s)) in points.iter().enumerate() {
                let colour = Palette99::pick(k).to_rgba();
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(*x, s.mean - s.std), (*x, s.mean + s.std)],
                        colour.stroke_width(2),
                    )))
                    .map_err(|e| err(e.to_string()))?;
                chart
                    .draw_series(std::iter::once(Circle::new(
                        (*x, s.mean),
                        6,
                        colour.filled(),
                    )))
                    .map_err(|e| err(e.to_string()))?
                    .label(label.clone())
                    .legend(move |(x, y)| Circle::new((x + 10, y), 5, colour.filled()));
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .label_font(("sans-serif", 14))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(|e| err(e.to_string()))?;
            Ok(())
        })
    }

    /// `summary.md`, `summary.csv`, `summary.json` and (when a metric can be plotted)
    /// `summary.png` in `dir`, each written atomically; returns the files written.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut files = Vec::new();
        for (name, text) in [
            ("summary.md", self.markdown()),
            ("summary.csv", self.csv()),
            ("summary.json", self.json()),
        ] {
            let p = dir.join(name);
            write_bytes_atomic(&p, text.as_bytes())?;
            files.push(p);
        }
        if self.plot_metric().is_some() {
            let p = dir.join("summary.png");
            self.plot(&p)?;
            files.push(p);
        }
        Ok(files)
    }
}

/// Read the reports of every run under `dirs` and tabulate them.
pub fn summarise_dirs(dirs: &[PathBuf]) -> Result<(Summary, usize)> {
    let runs = find_runs(dirs)?;
    if runs.is_empty() {
        let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        return Err(Error::Invalid(format!(
            "no run folder (one holding {METRICS_FILE}) under {}",
            names.join(", ")
        )));
    }
    let reports = runs
        .iter()
        .map(|d| FitReport::load(d))
        .collect::<Result<Vec<_>>>()?;
    Ok((summarise(&reports), runs.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_mean_and_sample_std() {
        let s = Stat::of(&[30.0, 32.0, 34.0, 36.0]);
        assert_eq!(s.mean, 33.0);
        // sum of squares 9 + 1 + 1 + 9 = 20 over n - 1 = 3.
        assert!((s.std - (20.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(Stat::of(&[5.0]).std, 0.0);
        assert!(Stat::of(&[]).mean.is_nan());
    }

    fn report(
        model: &str,
        preset: &str,
        source: &str,
        seed: u64,
        psnr: f64,
        wall: f64,
    ) -> FitReport {
        let json = serde_json::json!({
            "psnr": psnr, "ssim": psnr / 100.0, "best_step": 1, "best_train_psnr": psnr,
            "steps": 1, "params": if model == "asmr" { 100 } else { 300 },
            "macs_per_sample": if model == "asmr" { 10.0 } else { 1000.0 },
            "macs_breakdown": {}, "model_bytes": 4, "bits_per_sample": 1.0,
            "wall_seconds": wall, "steps_per_second": 1.0, "reconstruction": "r.png",
            "modality": "image", "model": model, "preset": preset, "source": source,
            "shape": [2, 2], "channels": 1, "samples": 4, "seed": seed, "device": "Cpu"
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn table_rows_are_means_and_stds_by_model_and_preset() {
        let reports = vec![
            report("siren", "p", "a.png", 1, 20.0, 5.0),
            report("asmr", "p", "a.png", 1, 30.0, 1.0),
            report("asmr", "p", "a.png", 2, 32.0, 2.0),
            report("asmr", "p", "b.png", 1, 34.0, 3.0),
            report("asmr", "q", "a.png", 1, 40.0, 1.0),
        ];
        let s = summarise(&reports);
        assert_eq!(s.metrics, ["psnr", "ssim"]);
        let keys: Vec<(&str, &str)> = s
            .rows
            .iter()
            .map(|r| (r.model.as_str(), r.preset.as_str()))
            .collect();
        assert_eq!(keys, [("asmr", "p"), ("asmr", "q"), ("siren", "p")]);
        let r = &s.rows[0];
        assert_eq!((r.runs, r.signals, r.seeds), (3, 2, 2));
        // By hand: mean 32; deviations -2, 0, 2; sample variance 8 / 2 = 4.
        assert_eq!(r.metrics["psnr"].mean, 32.0);
        assert!((r.metrics["psnr"].std - 2.0).abs() < 1e-12);
        assert!((r.metrics["ssim"].mean - 0.32).abs() < 1e-12);
        assert!((r.metrics["ssim"].std - 0.02).abs() < 1e-12);
        assert_eq!(r.wall_seconds.mean, 2.0);
        assert_eq!((r.macs_per_sample, r.params), (10.0, 100.0));
        assert_eq!(s.rows[2].metrics["psnr"].std, 0.0);
        let md = s.markdown();
        assert!(md.contains("| asmr | p | 3 (2 signals x 2 seeds) | 32.00 ± 2.000 | 0.3200 ± 0.02000 | 10.00 | 100 | 2.000 ± 1.000 |"), "{md}");
        let csv = s.csv();
        assert!(csv.starts_with("model,preset,runs,signals,seeds,psnr_mean,psnr_std,ssim_mean"));
        assert!(csv.contains("\nasmr,p,3,2,2,32,2,"), "{csv}");
        let d = tempfile::tempdir().unwrap();
        let files = s.write(d.path()).unwrap();
        assert_eq!(files.len(), 4);
        let back: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(d.path().join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(back["rows"][0]["metrics"]["psnr"]["mean"], 32.0);
        assert!(fs::metadata(d.path().join("summary.png")).unwrap().len() > 1000);
    }

    #[test]
    fn significant_digits() {
        assert_eq!(sig(31.8123), "31.81");
        assert_eq!(sig(0.91234), "0.9123");
        assert_eq!(sig(1353.75), "1354");
        assert_eq!(sig(0.000012), "1.200e-5");
    }
}
