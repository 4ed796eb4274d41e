//! Exit codes a pipeline can branch on.
//!
//! Jenkins and the monthly job decide what to do next from the code alone: retry later
//! (locked), page someone (rollback failed), or fix the input (bad input).

/// Everything worked.
pub const OK: u8 = 0;
/// A failure that fits no other code (an AWS error, a timeout).
pub const FAILED: u8 = 1;
/// The input was refused before anything changed (file, line and fix in the message).
pub const BAD_INPUT: u8 = 2;
/// The bake failed (a step, the image, the test); what it created was removed.
pub const BAKE_FAILED: u8 = 3;
/// The rollout failed and was rolled back: the group serves the previous image.
pub const ROLLED_BACK: u8 = 4;
/// The rollout failed and could not be rolled back: a person must look now.
pub const NEEDS_ATTENTION: u8 = 5;
/// The account is busy: another rollout holds the group, a refresh is running or rolling
/// back on it, the group changed since the plan, or another kiln process holds the
/// simulated account's state file. Try again later.
pub const LOCKED: u8 = 6;
/// Interrupted (Ctrl-C, SIGTERM); what the run had started was cleaned up.
pub const INTERRUPTED: u8 = 130;

/// An error that carries the exit code it should end the process with.
#[derive(Debug, thiserror::Error)]
// The whole chain of the inner error is printed here and not offered as a `source`, so
// that `{:#}` prints it once.
#[error("{}", render(error))]
pub struct Exit {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Exit {
    pub fn new(code: u8, error: impl Into<anyhow::Error>) -> Self {
        Self {
            code,
            error: error.into(),
        }
    }
}

/// An error chain on one line, each cause after a colon, leaving out a cause whose text
/// the message before it already quotes (library errors often name their source).
pub fn render(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if text.contains(&message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&message);
    }
    text
}

/// The exit code for an error chain: the first [`Exit`] found in it, else [`FAILED`].
pub fn code_of(error: &anyhow::Error) -> u8 {
    error
        .chain()
        .find_map(|e| e.downcast_ref::<Exit>())
        .map_or(FAILED, |exit| exit.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("describe images in ap-northeast-1: Throttling: rate exceeded")]
    struct Cause;

    #[derive(Debug, thiserror::Error)]
    #[error("plan failed: {0}")]
    struct Quoting(#[source] Cause);

    #[test]
    fn a_cause_already_quoted_is_printed_once() {
        let error = anyhow::Error::new(Quoting(Cause)).context("bake poc-web-base");
        assert_eq!(
            render(&error),
            "bake poc-web-base: plan failed: describe images in ap-northeast-1: Throttling: rate exceeded"
        );
    }

    #[test]
    fn the_code_is_found_under_context() {
        let error = anyhow::Error::new(Exit::new(LOCKED, Cause)).context("target poc-web");
        assert_eq!(code_of(&error), LOCKED);
        assert_eq!(code_of(&anyhow::Error::new(Cause)), FAILED);
        assert!(render(&error).ends_with("Throttling: rate exceeded"));
    }
}
