//! Replay (after RolePlayer): recorded dialogs as scripts, a library that picks the scripts an
//! attacker's first messages fit, and the matching of an attacker's messages against them.

mod candidates;
mod conversation;
mod library;
mod matcher;
mod script;
mod shape;
mod template;
mod walked;

pub use crate::codec::FrameError;
pub use candidates::Candidates;
pub use conversation::{Conversation, Decoded, MEMORY_LIMIT};
pub use library::Library;
pub use matcher::{pair_cookie_refs, pair_cookies, Audience, Candidate, Deviation, Step};
pub use script::{Script, ScriptError, ScriptMessage, ServiceCodecs, Side, FORMAT, VERSION};
pub use shape::{roles_of, Shape};
pub use template::Template;
pub use walked::{same_path, RoleRef, Walked};
