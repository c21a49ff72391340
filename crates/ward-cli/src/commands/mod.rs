//! What the binary does around the library: the observer that prints, and `ward run`'s
//! table.

pub(crate) mod run;

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use ward_experiment::{Observer, RoundReport};

/// Prints a line to stdout (only the binary prints).
#[allow(clippy::print_stdout)]
pub(crate) fn out(line: impl std::fmt::Display) {
    println!("{line}");
}

/// The terminal observer: command output to stdout, a progress bar over rounds (and over
/// a long command's steps) on stderr when it is a terminal, warnings through `tracing`.
#[derive(Debug)]
pub(crate) struct Terminal {
    /// Show progress bars.
    progress: bool,
    bar: Option<ProgressBar>,
    steps: Option<ProgressBar>,
}

impl Terminal {
    /// An observer that shows progress when `progress` (and stderr is a terminal:
    /// indicatif hides bars otherwise).
    pub(crate) fn new(progress: bool) -> Self {
        Self {
            progress,
            bar: None,
            steps: None,
        }
    }
}

impl Observer for Terminal {
    fn run_started(&mut self, label: &str, done: usize, rounds: usize) {
        if !self.progress || self.steps.is_some() {
            return;
        }
        let b = ProgressBar::new(rounds as u64);
        if let Ok(style) =
            ProgressStyle::with_template("{prefix} [{bar:30}] round {pos}/{len} {msg} ({elapsed})")
        {
            b.set_style(style.progress_chars("=> "));
        }
        b.set_prefix(label.to_string());
        b.set_position(done as u64);
        self.bar = Some(b);
    }

    fn round_finished(&mut self, report: &RoundReport) {
        if let Some(b) = &self.bar {
            if let Some(m) = report.mean_accuracy() {
                b.set_message(format!("mean acc {m:.3}"));
            }
            b.inc(1);
        }
    }

    fn run_finished(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }

    fn line(&mut self, line: &str) {
        match &self.steps {
            Some(s) => s.suspend(|| out(line)),
            None => out(line),
        }
    }

    fn step(&mut self, done: usize, total: usize, what: &str) {
        if !self.progress {
            return;
        }
        let s = self.steps.get_or_insert_with(|| {
            let s = ProgressBar::new(total as u64);
            if let Ok(style) =
                ProgressStyle::with_template("[{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})")
            {
                s.set_style(style.progress_chars("=> "));
            }
            s.enable_steady_tick(Duration::from_millis(500));
            s
        });
        s.set_length(total as u64);
        s.set_position(done as u64);
        s.set_message(what.to_string());
        if done >= total {
            s.finish_and_clear();
            self.steps = None;
        }
    }
}
