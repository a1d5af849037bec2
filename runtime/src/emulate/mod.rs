//! Emulation after HoneyBee: a personality (a real server's replies, keyed by state, command
//! and argument class, with typed placeholders) scanned from a server, and a responder that
//! answers from it well enough that nmap names the original server.

mod clock;
pub(crate) mod ftp;
mod http;
mod line;
mod personality;
pub mod scan;
mod serve;
mod template;

pub use clock::{find_date, Civil, DateStyle, FoundDate};
pub use ftp::host_port;
pub use http::{classes as http_classes, frame as http_frame, Request};
pub use line::{classes as line_classes, Command, LONG_LINE, MESSAGE};
pub use personality::{
    Action, Compiled, CompiledRule, FileEntry, FtpTraits, Key, Limits, Personality,
    PersonalityError, ProbeResult, Protocol, Rule, ANY, FORMAT,
};
pub use serve::{fresh, serve_emulated, EmulateConfig, EmulateError};
pub use template::{envelope_path, Fill, IdShape, Placeholder, Template, TemplateError};
