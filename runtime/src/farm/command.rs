//! The one way the farm runs an external tool (`ip`, `nft`, `qemu-img`) to completion: spawned
//! with its standard input written and its output collected, so every caller tells "not
//! installed" (a missing package, which the unprivileged fallbacks skip) from "ran and failed"
//! (what the tool said) alike. Long-lived children (a honeypot, a VM) are spawned by their
//! backends, which keep the `Child`.

use std::ffi::OsStr;
use std::io::{self, Write as _};
use std::process::{Command, ExitStatus, Stdio};

/// Lines of a failed tool's output kept in its error: enough for nft's message and caret.
const SAID_LINES: usize = 4;

/// Why a tool did not do its work.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The program is not on the path.
    #[error("running `{command}`: {source} (is it installed?)")]
    NotFound { command: String, source: io::Error },
    /// It could not be started or waited for (no permission, out of processes...).
    #[error("running `{command}`: {source}")]
    Spawn { command: String, source: io::Error },
    /// It ran and exited unsuccessfully; `said` is the start of its output (standard error
    /// first).
    #[error("`{command}` failed ({status}): {said}")]
    Failed {
        command: String,
        status: ExitStatus,
        said: String,
    },
}

impl CommandError {
    /// True when the program itself is missing.
    pub fn is_not_found(&self) -> bool {
        matches!(self, CommandError::NotFound { .. })
    }
}

/// Runs `program args` with `stdin` written to it (none: `/dev/null`) and returns its
/// standard output. Arguments may be paths (not necessarily UTF-8).
pub fn run<A: AsRef<OsStr>>(
    program: &str,
    args: &[A],
    stdin: Option<&str>,
) -> Result<String, CommandError> {
    let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    let command = format!("{program} {}", shown.join(" "));
    let io_error = |source: io::Error| {
        if source.kind() == io::ErrorKind::NotFound {
            CommandError::NotFound {
                command: command.clone(),
                source,
            }
        } else {
            CommandError::Spawn {
                command: command.clone(),
                source,
            }
        }
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io_error)?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A failed write (the tool quit early) shows as the tool's own failure below.
        let _ = pipe.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().map_err(io_error)?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    Err(CommandError::Failed {
        command,
        status: out.status,
        said: said
            .trim()
            .lines()
            .take(SAID_LINES)
            .collect::<Vec<_>>()
            .join(" / "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_input_and_the_three_failures() {
        assert_eq!(run::<&str>("cat", &[], Some("fed\n")).unwrap(), "fed\n");
        assert_eq!(run("echo", &["a", "b"], None).unwrap(), "a b\n");
        let missing = run("hfm-no-such-tool", &["x"], None).unwrap_err();
        assert!(missing.is_not_found(), "{missing}");
        assert!(missing.to_string().contains("`hfm-no-such-tool x`"));
        let spawn = run::<&str>("/proc", &[], None).unwrap_err();
        assert!(matches!(spawn, CommandError::Spawn { .. }), "{spawn}");
        match run(
            "sh",
            &["-c", "echo out; printf 'one\\ntwo\\n' >&2; exit 3"],
            None,
        ) {
            Err(CommandError::Failed { status, said, .. }) => {
                assert_eq!(status.code(), Some(3));
                assert_eq!(said, "one / two / out");
            }
            other => panic!("{other:?}"),
        }
    }
}
