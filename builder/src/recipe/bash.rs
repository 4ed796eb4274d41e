//! `bash -n` on a script: a syntax error is found when the recipes are read, not on the
//! builder half an hour into a bake, when Run Command reaches the step. Nothing is run;
//! where bash is not installed the check is skipped, with one warning.

use std::io::Write;
use std::process::{Command, Stdio};

/// What bash says before the line number when it reads the script from standard input
/// by name, which it does so that its messages carry the line.
const STDIN: &str = "/dev/stdin";

/// A syntax error: the line of the script bash names, and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based; `None` when bash names none.
    pub line: Option<usize>,
    /// Bash's first message, without its `/dev/stdin: line N: ` prefix.
    pub message: String,
}

/// Checks scripts with `bash -n`, until bash turns out to be missing.
#[derive(Debug)]
pub struct Bash {
    available: bool,
}

impl Default for Bash {
    fn default() -> Self {
        Self { available: true }
    }
}

impl Bash {
    /// The script's first syntax error; `None` when bash accepts it, or cannot be run.
    pub fn check(&mut self, script: &str) -> Option<SyntaxError> {
        if !self.available {
            return None;
        }
        match syntax(script) {
            Ok(error) => error,
            Err(e) => {
                self.available = false;
                tracing::warn!(error = %e, "bash is not available: scripts are not syntax-checked");
                None
            }
        }
    }
}

/// Runs `bash -n /dev/stdin` on `script`; an error when bash cannot be run.
fn syntax(script: &str) -> std::io::Result<Option<SyntaxError>> {
    let mut child = Command::new("bash")
        .args(["-n", STDIN])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        // Bash stops reading at the first error: a closed pipe is not a failure here.
        let _ = stdin.write_all(script.as_bytes());
    }
    let out = child.wait_with_output()?;
    if out.status.success() {
        return Ok(None);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Ok(Some(parse(stderr.lines().next().unwrap_or_default())))
}

/// `/dev/stdin: line 9: syntax error near unexpected token `fi'` as its parts.
fn parse(first: &str) -> SyntaxError {
    let rest = first
        .strip_prefix(STDIN)
        .and_then(|r| r.strip_prefix(": "))
        .unwrap_or(first);
    let numbered = rest
        .strip_prefix("line ")
        .and_then(|r| r.split_once(": "))
        .and_then(|(n, message)| Some((n.parse().ok()?, message)));
    match numbered {
        Some((line, message)) => SyntaxError {
            line: Some(line),
            message: message.to_string(),
        },
        None => SyntaxError {
            line: None,
            message: rest.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_error_is_read_with_its_line() {
        let mut bash = Bash::default();
        assert_eq!(bash.check("echo hi\nif true; then echo; fi\n"), None);
        assert_eq!(
            bash.check("echo hi\nfi\n"),
            Some(SyntaxError {
                line: Some(2),
                message: "syntax error near unexpected token `fi'".into(),
            })
        );
        assert_eq!(
            bash.check("echo \"hi\n"),
            Some(SyntaxError {
                line: Some(1),
                message: "unexpected EOF while looking for matching `\"'".into(),
            })
        );
    }

    #[test]
    fn a_message_without_a_line_is_kept_whole() {
        let error = parse("bash: something else");
        assert_eq!(error.line, None);
        assert_eq!(error.message, "bash: something else");
    }
}
