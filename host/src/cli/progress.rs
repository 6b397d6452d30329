//! Progress on the terminal for long steps (generating data, benchmarks, waiting for a job):
//! an indicatif bar or spinner on stderr when it is a terminal, and plain lines on stdout when
//! it is not (logs, CI, tests read those), so nothing is lost either way.

use indicatif::{ProgressBar, ProgressStyle};
use oar_host::progress::Progress;
use std::io::IsTerminal as _;
use std::time::Duration;

fn live() -> bool {
    std::io::stderr().is_terminal()
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("a valid template")
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} [{elapsed}, {eta} left]")
        .expect("a valid template")
        .progress_chars("=> ")
}

/// A spinner beside one step of unknown length, until it is dropped or finished. Hidden when
/// stderr is not a terminal.
pub fn spinner(message: impl Into<String>) -> ProgressBar {
    if !live() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner().with_style(spinner_style());
    pb.set_message(message.into());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// Draws a long operation's [`Progress`] reports: each step as a line, and counts as a bar.
pub struct Bar {
    pb: ProgressBar,
    live: bool,
}

impl Bar {
    /// A bar for the steps to come.
    pub fn new() -> Bar {
        let live = live();
        Bar {
            pb: if live {
                spinner("starting")
            } else {
                ProgressBar::hidden()
            },
            live,
        }
    }

    /// Takes one report.
    pub fn report(&self, p: Progress<'_>) {
        match p {
            Progress::Step(line) if self.live => {
                self.pb.println(line);
                self.pb.set_style(spinner_style());
                self.pb
                    .set_message(line.trim().trim_end_matches(" ...").to_string());
                self.pb.set_position(0);
            }
            Progress::Step(line) => println!("{line}"),
            Progress::Count { done, total } if self.live => {
                self.pb.set_position(done);
                if self.pb.length() != Some(total) {
                    self.pb.set_style(bar_style());
                    self.pb.set_length(total);
                }
            }
            Progress::Count { .. } => {}
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.pb.finish_and_clear();
    }
}
