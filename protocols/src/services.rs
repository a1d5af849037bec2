//! The service table: which message types each side of a service sends, its well-known ports,
//! and what is particular to it, said as data so that the generic loops (the CLI's `dissect`,
//! `script import`, `run`, the fuzz targets) never name a protocol.

use std::collections::HashMap;

use honeyfarm_runtime::codec::Entry;
use honeyfarm_runtime::farm::Unframeable;
use honeyfarm_runtime::replay::ServiceCodecs;

use crate::REGISTRY;

/// A name the specs do not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("unknown service `{0}`; the services are {services}", services = service_names().join(", "))]
    Service(String),
    #[error("no message type `{0}`; known: {types}", types = REGISTRY.iter().map(|e| e.name).collect::<Vec<_>>().join(", "))]
    MessageType(String),
}

/// A protocol stack: the message types each side sends.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    pub name: &'static str,
    pub client: &'static str,
    pub server: &'static str,
    pub ports: &'static [u16],
    /// Line-based: after an error, decoding starts again at the next line.
    pub text: bool,
    /// Its messages announce data connections through their address and port roles (FTP's
    /// PORT, EPRT, PASV, EPSV): connections to an announced endpoint belong to it.
    pub data_connections: bool,
    /// Messages of another protocol version that the spec recognises but does not decode.
    pub foreign: Option<Foreign>,
    /// How its real server ends a message the farm cannot frame (one its framing's `max_frame`
    /// refuses, or not the protocol at all).
    pub unframeable: Unframeable,
}

/// A case of a service's spec that marks messages of another version of the protocol (SMB2
/// and later on an SMB port): counted under their own kind, not as errors.
#[derive(Debug, Clone, Copy)]
pub struct Foreign {
    /// The name of the switch case the spec gives them.
    pub case: &'static str,
    /// The kind they are shown and counted as.
    pub kind: &'static str,
}

/// The services the farm knows, with their well-known ports.
pub const SERVICES: &[Service] = &[
    Service {
        name: "ftp",
        text: true,
        client: "ftp.Command",
        server: "ftp.Reply",
        ports: &[21],
        data_connections: true,
        foreign: None,
        unframeable: Unframeable::Close,
    },
    Service {
        name: "smtp",
        text: true,
        client: "smtp.ClientMessage",
        server: "smtp.Reply",
        ports: &[25, 587],
        data_connections: false,
        foreign: None,
        unframeable: Unframeable::Close,
    },
    Service {
        name: "smb",
        text: false,
        client: "netbios.DirectTcp",
        server: "netbios.DirectTcp",
        ports: &[445],
        data_connections: false,
        foreign: Some(NOT_SMB1),
        unframeable: SAMBA,
    },
    Service {
        name: "netbios-ssn",
        text: false,
        client: "netbios.Session",
        server: "netbios.Session",
        ports: &[139],
        data_connections: false,
        foreign: Some(NOT_SMB1),
        unframeable: SAMBA,
    },
    Service {
        name: "http",
        text: true,
        client: "http.Request",
        server: "http.Response",
        ports: &[80, 8080],
        data_connections: false,
        foreign: None,
        unframeable: Unframeable::Close,
    },
];

/// Samba frames SMB1 with NetBIOS's 17-bit length on every port (RFC 1002's 7 flag bits, the
/// last one the length's extension), though direct TCP's header has 24 bits: a session message
/// (type byte 0) that the 24-bit length makes longer than `max_frame` is to Samba a short one
/// it reads, finds not SMB and drops the connection over, the rest unread (nmap -sV's DNS and
/// oracle-tns probes: a reset), or one whose bytes it still waits for (the afp probe). Other
/// type bytes are NetBIOS control packets Samba waits on too (GetRequest; the mongodb probe's
/// second header), as it waits on what does not decode.
const SAMBA: Unframeable = Unframeable::OwnLength {
    kind: 0,
    length_bits: 17,
};

/// SMB2 and later, which `smb.proto-dsl` keeps as bytes under the case `NotSmb1`.
const NOT_SMB1: Foreign = Foreign {
    case: "NotSmb1",
    kind: "not_smb1",
};

impl Service {
    /// Its message types, as the runtime takes them.
    pub fn codecs(&self) -> Result<ServiceCodecs, LookupError> {
        Ok(ServiceCodecs {
            name: self.name.to_string(),
            client: entry(self.client)?,
            server: entry(self.server)?,
            text: self.text,
        })
    }

    /// The kind of a message of another version (see [`Foreign`]), given the cases it took.
    pub fn foreign_kind(&self, cases: &[String]) -> Option<&'static str> {
        let f = self.foreign?;
        cases.iter().any(|c| c == f.case).then_some(f.kind)
    }
}

/// Every kind a [`Foreign`] message is counted under, once each.
pub fn foreign_kinds() -> Vec<&'static str> {
    let mut kinds: Vec<&'static str> = SERVICES
        .iter()
        .filter_map(|s| s.foreign.map(|f| f.kind))
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    kinds
}

/// A service by name.
pub fn service(name: &str) -> Result<&'static Service, LookupError> {
    SERVICES
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| LookupError::Service(name.to_string()))
}

/// The services' names, in table order.
pub fn service_names() -> Vec<&'static str> {
    SERVICES.iter().map(|s| s.name).collect()
}

/// Which service each port carries: the well-known ports, then the `--port` overrides.
pub fn services_by_port(overrides: &[(u16, String)]) -> HashMap<u16, &'static Service> {
    let mut by_port: HashMap<u16, &'static Service> = HashMap::new();
    for s in SERVICES {
        for p in s.ports {
            by_port.insert(*p, s);
        }
    }
    for (port, name) in overrides {
        if let Some(s) = SERVICES.iter().find(|s| s.name == name) {
            by_port.insert(*port, s);
        }
    }
    by_port
}

/// Finds a message type of the specs by name (what script files name).
pub fn types(name: &str) -> Option<&'static Entry> {
    REGISTRY.iter().find(|e| e.name == name)
}

/// [`types`], or an error that lists the types there are.
pub fn entry(name: &str) -> Result<&'static Entry, LookupError> {
    types(name).ok_or_else(|| LookupError::MessageType(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_names_compiled_message_types() {
        for s in SERVICES {
            s.codecs().unwrap();
        }
    }

    #[test]
    fn ports_map_to_services_and_overrides_win() {
        let by_port = services_by_port(&[(2121, "ftp".into()), (445, "netbios-ssn".into())]);
        assert_eq!(by_port[&21].name, "ftp");
        assert_eq!(by_port[&2121].name, "ftp");
        assert_eq!(by_port[&445].name, "netbios-ssn");
        assert_eq!(by_port[&587].name, "smtp");
    }

    #[test]
    fn unknown_names_list_what_there_is() {
        let e = service("gopher").unwrap_err().to_string();
        assert!(
            e.contains("unknown service `gopher`") && e.contains("ftp, smtp"),
            "{e}"
        );
        let e = entry("ftp.Nope").unwrap_err().to_string();
        assert!(
            e.contains("no message type `ftp.Nope`") && e.contains("ftp.Command"),
            "{e}"
        );
    }

    #[test]
    fn foreign_messages_are_known_by_their_case() {
        let smb = service("smb").unwrap();
        assert_eq!(smb.foreign_kind(&["NotSmb1".into()]), Some("not_smb1"));
        assert_eq!(smb.foreign_kind(&["Negotiate".into()]), None);
        assert_eq!(
            service("ftp").unwrap().foreign_kind(&["NotSmb1".into()]),
            None
        );
        assert_eq!(foreign_kinds(), vec!["not_smb1"]);
    }
}
