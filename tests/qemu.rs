//! The qemu backend (issue 12, item 3): a honeypot VM restored from the saved warm state, on a
//! tap in its own namespace, answers SMB as the farm's Samba honeypot does, and is recycled.
//! Needs root, QEMU and the image `scripts/vm-image.sh` builds (built here on first use, then
//! cached); skipped with a printed reason where those are missing. Makes namespaces (prefix
//! `hfq`): run under the shared lock (`flock /tmp/honeyfarm-peer-tests.lock cargo test --test
//! qemu`). Containment of a VM: `tests/contained.rs`; the bench: `tests/honeypots.rs`.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use honeyfarm_runtime::farm::{answers_smb, Backend, Boot, Policy};

#[test]
fn a_restored_vm_answers_smb_and_is_recycled() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("honeyfarm_runtime=debug")
        .with_test_writer()
        .try_init();
    let Some((backend, work)) =
        common::vm::backend("hfq-restore", Boot::Restore, Policy::deny_all(), None)
    else {
        return;
    };
    let addr: SocketAddr = "10.233.1.2:445".parse().unwrap();
    let _gone = common::vm::Links(common::vm::PREFIX, vec![addr], work);
    for round in 0..2 {
        let t = Instant::now();
        let hp = backend.start(addr).expect("a restored VM");
        eprintln!(
            "round {round}: restored VM answers SMB after {} ms",
            t.elapsed().as_millis()
        );
        let dir = hp.dir.clone();
        assert!(dir.join("disk.qcow2").exists());
        let list = smb(&["smbclient", "-N", "-L", "10.233.1.2"]);
        for share in ["public", "ADMIN$", "C$", "IPC$"] {
            assert!(list.contains(share), "{share} missing:\n{list}");
        }
        let info = smb(&[
            "rpcclient",
            "-U%",
            "-N",
            "10.233.1.2",
            "-c",
            "srvinfo; enumdomusers",
        ]);
        assert!(info.contains("FILESRV01"), "{info}");
        assert!(
            info.contains("user:[alice]") && info.contains("user:[bob]"),
            "{info}"
        );
        // A write lands on this VM's overlay only.
        let put = smb(&[
            "smbclient",
            "//10.233.1.2/public",
            "-N",
            "-c",
            &format!("put /etc/hostname round{round}.txt; ls"),
        ]);
        assert!(put.contains(&format!("round{round}.txt")), "{put}");
        if round > 0 {
            assert!(
                !put.contains("round0.txt"),
                "the previous VM's file survived the recycling:\n{put}"
            );
        }
        backend.stop(hp);
        assert!(!dir.exists(), "the overlay is discarded");
        assert!(!answers_smb(addr, Duration::from_millis(300)));
    }
}

/// An SMB1 client command; its output and errors.
fn smb(argv: &[&str]) -> String {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .args(common::SMB1_CLIENT)
        .output()
        .expect("the Samba client runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
