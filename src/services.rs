//! The CLI's side of the service table (`honeyfarm_protocols::services`): `--port` arguments.

use anyhow::{bail, Result};
pub use honeyfarm_protocols::services::{
    entry, foreign_kinds, service, services_by_port, types, Service,
};
use honeyfarm_protocols::services::{service_names, SERVICES};

/// Parses `2121=ftp`.
pub fn parse_port(s: &str) -> Result<(u16, String)> {
    let Some((port, name)) = s.split_once('=') else {
        bail!("--port takes PORT=SERVICE, as in 2121=ftp");
    };
    let port: u16 = port
        .parse()
        .map_err(|_| anyhow::anyhow!("bad port `{port}` in --port {s}"))?;
    if !SERVICES.iter().any(|sv| sv.name == name) {
        bail!(
            "unknown service `{name}` in --port {s}; the services are {}",
            service_names().join(", ")
        );
    }
    Ok((port, name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_port_arguments_say_what_is_wrong() {
        assert_eq!(parse_port("2121=ftp").unwrap(), (2121, "ftp".into()));
        let e = parse_port("2121=gopher").unwrap_err().to_string();
        assert!(
            e.contains("unknown service `gopher`") && e.contains("ftp, smtp"),
            "{e}"
        );
        assert!(parse_port("x=ftp")
            .unwrap_err()
            .to_string()
            .contains("bad port `x`"));
        assert!(parse_port("2121")
            .unwrap_err()
            .to_string()
            .contains("PORT=SERVICE"));
    }
}
