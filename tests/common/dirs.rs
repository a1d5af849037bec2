//! Each test that starts servers (farms, smbd honeypots, VMs) does so under a directory of its
//! own, `{tmp}/{name}-{pid}`: what it leaves running is found by that directory, stopped by
//! its guard when the test ends, and swept by the next run when a timeout killed it (a killed
//! test drops no guard, and what it left holds its fixed ports).

use std::path::PathBuf;
use std::process::Command;

/// Kills whatever a test left running under its directory (honeypots of a farm that a failed
/// assertion killed) when dropped.
pub struct Cleanup(PathBuf);

impl Drop for Cleanup {
    /// Kills the processes whose command line names the directory itself: not another
    /// test's whose directory only starts with it (`/tmp/x-12` in `/tmp/x-123`).
    fn drop(&mut self) {
        let dir = self.0.display().to_string();
        let names_it = |text: &str| {
            text.match_indices(&dir)
                .any(|(i, _)| ends_a_path(&text[i + dir.len()..]))
        };
        kill_where(&dir, names_it);
    }
}

/// Whether `rest`, what follows a directory's name in a command line, ends that name there.
fn ends_a_path(rest: &str) -> bool {
    matches!(rest.chars().next(), None | Some('/' | ' ' | '"'))
}

/// Kills (`-9`) the processes whose command line contains `needle` and satisfies `chosen`.
fn kill_where(needle: &str, chosen: impl Fn(&str) -> bool) {
    for line in processes_with(needle) {
        if chosen(&line) {
            if let Some(pid) = line.split_whitespace().next() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
    }
}

/// A fresh, empty directory for test `name` and the guard that stops what the test leaves
/// running in it; what earlier runs of the test left is swept first (see [`sweep`]).
pub fn test_dir(name: &str) -> (PathBuf, Cleanup) {
    sweep(name);
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    (dir.clone(), Cleanup(dir))
}

/// Kills what an earlier, dead run of test `name` left (its farm, honeypots, VMs, which hold
/// its fixed ports) and removes its directories. They are the processes whose command line
/// names a directory `{name}-{pid}` exactly, `pid` a test process that no longer runs: never
/// another test's (a longer name), nor a live run's (another engineer's, or a test of this
/// run that shares the name).
pub fn sweep(name: &str) {
    let tmp = std::env::temp_dir();
    let prefix = tmp.join(format!("{name}-")).display().to_string();
    let stale = |text: &str| -> bool {
        text.match_indices(&prefix).any(|(i, _)| {
            let rest = &text[i + prefix.len()..];
            let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
            !pid.is_empty()
                && ends_a_path(&rest[pid.len()..])
                && !PathBuf::from("/proc").join(&pid).exists()
        })
    };
    kill_where(&prefix, stale);
    for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        if stale(&entry.path().display().to_string()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// `pid args` of every process whose command line contains `needle`.
pub fn processes_with(needle: &str) -> Vec<String> {
    let out = Command::new("ps")
        .args(["-eo", "pid,args"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(needle) && !l.contains("ps -eo"))
        .map(str::to_string)
        .collect()
}
