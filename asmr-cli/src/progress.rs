//! Training progress on the terminal: a bar with the remaining time on a terminal, a line every
//! tenth of the run otherwise; notes and evaluations as lines; one line with the expected duration
//! once the first steps have shown the rate.

use std::io::IsTerminal;
use std::time::Instant;

use asmr_core::trainer::{Flow, Observer, StepRecord, Trainer};
use indicatif::{ProgressBar, ProgressStyle};

/// Runs expected to take longer than this get a line saying so, and how to shorten them.
const LONG_RUN_SECONDS: f64 = 120.0;
/// Seconds of steps the estimate waits for.
const ESTIMATE_AFTER_SECONDS: f64 = 2.0;

pub struct Progress {
    quiet: bool,
    tty: bool,
    bar: ProgressBar,
    /// Step and time this process started at.
    start: Option<(usize, Instant)>,
    estimated: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        Self {
            quiet,
            tty: std::io::stderr().is_terminal(),
            bar: ProgressBar::hidden(),
            start: None,
            estimated: false,
        }
    }

    fn line(&self, text: &str) {
        if !self.quiet {
            self.bar.suspend(|| eprintln!("{text}"));
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// `1 h 05 min`, `12 min 30 s`, `45 s`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

impl Observer for Progress {
    fn started(&mut self, t: &Trainer) -> asmr_core::Result<()> {
        let total = t.schedule_steps();
        if t.step > 0 {
            self.line(&format!("resuming from step {} of {total}", t.step));
        }
        if !self.quiet && self.tty {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30.cyan/blue} {pos}/{len} [{elapsed_precise}, {eta} left] {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_position(t.step as u64);
            bar.reset_eta();
            self.bar = bar;
        }
        self.start = Some((t.step, Instant::now()));
        Ok(())
    }

    fn stepped(&mut self, t: &Trainer, recs: &[StepRecord]) -> asmr_core::Result<Flow> {
        let Some(rec) = recs.last() else {
            return Ok(Flow::Continue);
        };
        // With a time budget the run's length is known once its first steps are measured.
        let total = t.schedule_steps();
        self.bar.set_length(total as u64);
        let (first, since) = self.start.unwrap_or((0, Instant::now()));
        let seconds = since.elapsed().as_secs_f64().max(1e-9);
        let rate = (t.step - first) as f64 / seconds;
        let left = (total - t.step.min(total)) as f64 / rate.max(1e-9);
        let best = if t.best_psnr.is_finite() {
            format!(" (best {:.2})", t.best_psnr)
        } else {
            String::new()
        };
        let msg = format!(
            "loss {:.3e}  PSNR {:.2} dB{best}  {rate:.2} steps/s",
            rec.loss, rec.psnr
        );
        self.bar.set_position(t.step as u64);
        self.bar.set_message(msg.clone());
        if !self.estimated && seconds >= ESTIMATE_AFTER_SECONDS && !t.is_done() {
            self.estimated = true;
            let limit = t.train_config().time_limit;
            let budget = limit - t.elapsed();
            // Where the time limit ends the run before its steps do, there is no option to suggest
            // (until the budget's steps are estimated, the steps are only the cap).
            let timed = limit > 0.0 && (budget <= left || t.schedule_steps() < t.total_steps());
            let left = if timed { budget } else { left };
            if left > LONG_RUN_SECONDS {
                let line = if timed {
                    format!(
                        "training for about {} more (the time limit) at {rate:.2} steps/s",
                        duration(left)
                    )
                } else {
                    long_run_line(left, rate, t.steps_per_epoch().is_some())
                };
                self.line(&line);
            }
        }
        let every = (total / 10).max(1);
        // Steps arrive in groups on a GPU (`train.loss_every`): a line where a group passes a tenth.
        let tenth = recs.iter().any(|r| r.step.is_multiple_of(every));
        if !self.quiet && !self.tty && (tenth || t.is_done()) {
            eprintln!(
                "step {}/{total}  {msg}  {} left",
                t.step,
                duration(if t.is_done() { 0.0 } else { left })
            );
        }
        if crate::interrupt::requested() && !t.is_done() {
            self.line(&format!(
                "stopping at step {} (interrupted): saving the state",
                t.step
            ));
            return Ok(Flow::Stop);
        }
        Ok(Flow::Continue)
    }

    fn evaluated(&mut self, t: &Trainer, psnr: f64) -> asmr_core::Result<()> {
        let epochs = t.total_epochs();
        self.line(&format!(
            "epoch {}/{epochs}: PSNR {psnr:.2} dB (best {:.2} dB)",
            t.epoch(),
            t.best_psnr
        ));
        Ok(())
    }

    fn note(&mut self, message: &str) {
        self.line(&format!("note: {message}"));
    }
}

/// The hint for a long run, naming the option that sets its length: minibatch runs are as long as
/// their epochs (`--iterations` counts only while the epochs are `auto`).
fn long_run_line(left: f64, rate: f64, minibatch: bool) -> String {
    let length = if minibatch {
        "--epochs N"
    } else {
        "--iterations N"
    };
    format!(
        "this run needs about {} more at {rate:.2} steps/s; {length} or --time-limit SECONDS \
         shortens it",
        duration(left)
    )
}

#[cfg(test)]
mod tests {
    use super::long_run_line;

    #[test]
    fn the_long_run_hint_names_the_option_that_sets_the_runs_length() {
        let full = long_run_line(3600.0, 2.0, false);
        assert!(full.contains("--iterations N"), "{full}");
        assert!(full.contains("1 h"), "{full}");
        let minibatch = long_run_line(3600.0, 2.0, true);
        assert!(minibatch.contains("--epochs N"), "{minibatch}");
        assert!(!minibatch.contains("--iterations"), "{minibatch}");
    }
}
