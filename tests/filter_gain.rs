//! `honeyfarm synth-trace` and `honeyfarm filter-gain`: the gain table against a reference
//! count of the filter's rule, on a synthetic trace and on a pcap's SYNs.

mod common;

use std::collections::{HashMap, HashSet};

use common::{honeyfarm_ok as honeyfarm, Pcap};

/// The table's rows: N -> (probes, answered, sources).
fn rows(table: &str) -> HashMap<usize, (u64, u64, u64)> {
    table
        .lines()
        .skip(2)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].parse().unwrap(),
                (
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                    f[4].parse().unwrap(),
                ),
            )
        })
        .collect()
}

/// The filter's rule without its table (no window, no eviction): answered connections. A
/// probe is a new (address, port) pair of its source.
fn reference(csv: &str, n: usize) -> u64 {
    let mut admitted: HashMap<&str, HashSet<(&str, &str)>> = HashMap::new();
    let mut answered = 0;
    for l in csv
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("time,"))
    {
        let f: Vec<&str> = l.split(',').collect();
        let set = admitted.entry(f[1]).or_default();
        let pair = (f[2], f[3]);
        if set.contains(&pair) || set.len() < n {
            set.insert(pair);
            answered += 1;
        }
    }
    answered
}

#[test]
fn the_gain_table_of_a_synthetic_trace_matches_the_rule() {
    let path = std::env::temp_dir().join(format!("honeyfarm-synth-{}.csv", std::process::id()));
    let p = path.to_str().unwrap();
    honeyfarm(&["synth-trace", "--seed", "7", "--sources", "300", "--out", p]);
    let csv = std::fs::read_to_string(&path).unwrap();
    assert!(csv.starts_with("# SYNTHETIC"), "labelled synthetic");
    let probes = csv.lines().count() as u64 - 2;
    let table = honeyfarm(&["filter-gain", "--trace", p]);
    let rows = rows(&table);
    assert_eq!(rows.len(), 10, "{table}");
    for n in 1..=10 {
        let (pr, answered, sources) = rows[&n];
        assert_eq!(pr, probes);
        assert_eq!(sources, 300, "{table}");
        assert_eq!(answered, reference(&csv, n), "N = {n}\n{table}");
    }
    assert!(
        rows[&4].1 < probes / 2,
        "a heavy tail filters most: {table}"
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_pcap_counts_syns_without_ack() {
    let mut pcap = Pcap::new();
    let src = [192, 0, 2, 1];
    for i in 1..=6u8 {
        pcap.tcp(
            u32::from(i),
            (src, 40000),
            ([198, 18, 0, i], 445),
            1,
            true,
            b"",
        );
        // Data of the same connection: not a probe.
        pcap.tcp(
            u32::from(i),
            (src, 40000),
            ([198, 18, 0, i], 445),
            2,
            false,
            b"x",
        );
    }
    pcap.tcp(
        9,
        ([192, 0, 2, 2], 40000),
        ([198, 18, 0, 1], 445),
        1,
        true,
        b"",
    );
    let path = pcap.write("syns");
    let table = honeyfarm(&["filter-gain", "--trace", path.to_str().unwrap()]);
    let rows = rows(&table);
    // Source 1: 6 addresses; source 2: one.
    assert_eq!(rows[&1], (7, 2, 2), "{table}");
    assert_eq!(rows[&4], (7, 5, 2), "{table}");
    assert_eq!(rows[&6], (7, 7, 2), "{table}");
}
