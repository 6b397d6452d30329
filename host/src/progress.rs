//! How long operations (generating data, benchmarks) report how far they are. The library only
//! reports; `oar` draws a progress bar from the reports on a terminal (indicatif) and prints
//! the steps as lines otherwise.

/// One report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Progress<'a> {
    /// A new step begins; its line says what it does.
    Step(&'a str),
    /// The current step has done `done` of its `total` units (files, repetitions).
    Count {
        /// Units done.
        done: u64,
        /// Units in all.
        total: u64,
    },
}

/// A receiver that keeps only the steps, as lines (for logs and tests).
pub fn lines(mut line: impl FnMut(&str)) -> impl FnMut(Progress<'_>) {
    move |p| {
        if let Progress::Step(s) = p {
            line(s)
        }
    }
}
