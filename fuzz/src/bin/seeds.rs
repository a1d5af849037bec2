//! Writes the seed corpora of the fuzz targets from the corpus captures and the shipped script:
//! `seeds OUT_DIR` makes `OUT_DIR/{frame,registry,matcher}/`, one file per stream direction.

use std::path::{Path, PathBuf};

use honeyfarm_fuzz::{shipped_script, stacks};
use honeyfarm_protocols::services::services_by_port;
use honeyfarm_protocols::REGISTRY;
use honeyfarm_runtime::capture::{tcp_streams, Direction};
use honeyfarm_runtime::replay::Side;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).ok_or("usage: seeds OUT_DIR")?);
    let captures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/captures");
    let stacks = stacks();
    let by_port = services_by_port(&[]);
    let mut written = 0usize;
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&captures)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    paths.sort();
    for path in paths {
        let name = path.file_stem().unwrap_or_default().to_string_lossy().to_string();
        for stream in tcp_streams(&path)? {
            let Some(service) = by_port.get(&stream.server.port()) else {
                continue;
            };
            for (dir, to_server) in [(Direction::ToServer, true), (Direction::ToClient, false)] {
                let data = &stream.half(dir).data;
                if data.is_empty() {
                    continue;
                }
                let Some(pick) = stacks
                    .iter()
                    .position(|(s, _, side)| s.name == service.name && *side == to_server)
                else {
                    continue;
                };
                let (_, entry, _) = stacks[pick];
                let tag = format!("{name}-{}-{}", stream.id, if to_server { "c" } else { "s" });
                let mut frame = vec![pick as u8];
                frame.extend_from_slice(data);
                write(&out.join("frame"), &tag, &frame)?;
                let index = REGISTRY.iter().position(|e| e.name == entry.name).unwrap_or(0);
                let mut reg = (index as u16).to_le_bytes().to_vec();
                reg.extend_from_slice(&data[..data.len().min(64 << 10)]);
                write(&out.join("registry"), &tag, &reg)?;
                written += 1;
            }
        }
    }
    let script = shipped_script();
    let client: Vec<u8> = script
        .messages
        .iter()
        .filter(|m| m.side == Side::Client)
        .flat_map(|m| m.bytes.iter().copied())
        .collect();
    write(&out.join("matcher"), "samba-enumdomusers", &client)?;
    println!("seeds: {written} stream directions, 1 script, in {}", out.display());
    Ok(())
}

fn write(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), data)
}
