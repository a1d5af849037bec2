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
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .args(["-9", "-f"])
            .arg(&self.0)
            .status();
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
            let whole = matches!(
                rest[pid.len()..].chars().next(),
                None | Some('/' | ' ' | '"')
            );
            !pid.is_empty() && whole && !PathBuf::from("/proc").join(&pid).exists()
        })
    };
    for line in processes_with(&prefix) {
        if stale(&line) {
            if let Some(pid) = line.split_whitespace().next() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
    }
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
