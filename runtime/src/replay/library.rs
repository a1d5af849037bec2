//! The scripts of every service, indexed by their first client message: an attacker's first
//! message selects the scripts that can answer it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::codec::{Entry, MatchKey};

use super::script::{Script, ScriptError};

#[derive(Debug, Default)]
pub struct Library {
    scripts: Vec<Arc<Script>>,
    /// By service, then by first client message (looked up without copying the key).
    by_first: HashMap<String, HashMap<MatchKey, Vec<usize>>>,
}

impl Library {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, script: Script) {
        let index = self.scripts.len();
        if let Some(first) = script.first_request() {
            self.by_first
                .entry(script.service.name.clone())
                .or_default()
                .entry(first.key.clone())
                .or_default()
                .push(index);
        }
        self.scripts.push(Arc::new(script));
    }

    /// Loads every `*.json` script in `dir` (sorted by name); a file that is not a valid script
    /// is returned as an error beside the others, which still load.
    pub fn load_dir(
        &mut self,
        dir: &Path,
        types: &dyn Fn(&str) -> Option<&'static Entry>,
    ) -> Result<Vec<ScriptError>, ScriptError> {
        let read = std::fs::read_dir(dir).map_err(|source| ScriptError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let mut paths: Vec<_> = read
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        let mut errors = Vec::new();
        for p in paths {
            match Script::load(&p, types) {
                Ok(s) => self.add(s),
                Err(e) => errors.push(e),
            }
        }
        Ok(errors)
    }

    pub fn len(&self) -> usize {
        self.scripts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scripts.is_empty()
    }

    /// The scripts of a service whose dialog starts with the server speaking (a banner).
    pub fn server_first(&self, service: &str) -> Vec<Arc<Script>> {
        self.scripts
            .iter()
            .filter(|s| s.service.name == service)
            .filter(|s| {
                s.messages
                    .first()
                    .is_some_and(|m| m.side == super::Side::Server)
            })
            .cloned()
            .collect()
    }

    /// The scripts of a service whose first client message has these content fields.
    pub fn candidates(&self, service: &str, first: &MatchKey) -> Vec<Arc<Script>> {
        self.by_first
            .get(service)
            .and_then(|m| m.get(first))
            .map(|ix| ix.iter().map(|&i| self.scripts[i].clone()).collect())
            .unwrap_or_default()
    }
}
