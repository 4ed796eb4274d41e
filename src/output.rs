//! What the person or the CI job sees: progress on stderr, results on stdout.
//!
//! On a terminal, progress is a bar that follows the current phase, with each milestone
//! printed above it. Anywhere else (Jenkins, a pipe) it is one plain line per event, so a
//! log reads top to bottom.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kiln_cloud::progress::{Event, Level, Progress};
use serde::Serialize;

use crate::cli::{GlobalArgs, OutputFormat};

/// How often the spinner redraws on a terminal.
const SPINNER_TICK: Duration = Duration::from_millis(120);

/// Renders progress events on stderr.
pub struct Reporter {
    bar: Option<ProgressBar>,
    quiet: bool,
    simulated: bool,
    lines: Mutex<()>,
}

impl Reporter {
    /// Bars when stderr is a terminal and the user did not ask for plain lines.
    pub fn new(global: &GlobalArgs, simulated: bool) -> Self {
        let interactive = std::io::stderr().is_terminal() && !global.no_progress;
        let bar = (interactive && !global.quiet).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg} {pos}/{len}")
                    .expect("progress template is valid"),
            );
            bar.enable_steady_tick(SPINNER_TICK);
            bar
        });
        Self {
            bar,
            quiet: global.quiet,
            simulated,
            lines: Mutex::new(()),
        }
    }

    /// Clears the bar so that the result prints on a clean terminal.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn line(&self, event: &Event) -> String {
        let clock = if self.simulated { " (sim)" } else { "" };
        let position = event
            .position
            .map(|(done, total)| format!(" [{done}/{total}]"))
            .unwrap_or_default();
        format!(
            "{at}{clock} {level:<5} {phase} {subject}: {message}{position}",
            at = event.at.format("%Y-%m-%dT%H:%M:%SZ"),
            level = level_name(event.level),
            phase = event.phase,
            subject = event.subject,
            message = event.message,
        )
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Info => "INFO",
        Level::Warn => "WARN",
        Level::Error => "ERROR",
    }
}

impl Progress for Reporter {
    fn event(&self, event: Event) {
        if self.quiet && event.level != Level::Error {
            return;
        }
        let line = self.line(&event);
        match &self.bar {
            Some(bar) => {
                bar.set_prefix(event.phase.clone());
                bar.set_message(format!("{}: {}", event.subject, event.message));
                if let Some((done, total)) = event.position {
                    bar.set_length(total);
                    bar.set_position(done);
                }
                bar.println(line);
            }
            None => {
                let _guard = self.lines.lock().expect("stderr lock");
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        }
    }
}

/// Whether a result went to stdout: a run that printed one and then failed (a region
/// whose copy failed) does not print a second document.
static RESULT_PRINTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn result_printed() -> bool {
    RESULT_PRINTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Writes `text` on stderr as it is. A closed stderr (a CI log pipe gone, `2>&1 | head`)
/// is no reason to stop: what kiln is doing, a clean-up above all, goes on.
pub fn say(text: impl std::fmt::Display) {
    let _ = write!(std::io::stderr(), "{text}");
}

/// Prints a result on stdout: JSON as is, or text through `text`.
pub fn print_result<T: Serialize>(
    format: OutputFormat,
    result: &T,
    text: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    RESULT_PRINTED.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut out = std::io::stdout().lock();
    let written = match format {
        OutputFormat::Json => serde_json::to_writer_pretty(&mut out, result)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out)),
        OutputFormat::Text => write!(out, "{}", text(result)),
    };
    match written {
        // The reader has all it wanted (`kiln images | head`): not a failure of the run.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
