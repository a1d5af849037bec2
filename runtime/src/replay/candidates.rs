//! Every script the attacker's dialog still fits (issue 10, candidate narrowing): scripts that
//! begin with the same requests stay candidates together and drop out as the attacker's
//! messages tell them apart, so a dialog recorded as the second of two such scripts is served
//! from it.
//!
//! One candidate answers at a time: the first still in the set, in library order (scripts load
//! sorted by file name), which makes the choice deterministic. The others follow silently: each
//! must have replied what the attacker got (equal content, its cookies paired with the values
//! the attacker saw), or it leaves the set, because the attacker has heard something that
//! script's server never said. Scripts recorded from the same server agree on their shared
//! prefix up to role fields (cookies, times, nonces), which is what the pairing absorbs.

use std::sync::Arc;

use crate::codec::{AnyMessage, MatchKey, RoleField, Value};

use super::matcher::{pair_cookies, Audience, Candidate, Deviation, Step};
use super::script::{Script, Side};
use super::walked::Walked;

/// The candidates still in play, the answering one first.
#[derive(Debug, Default)]
pub struct Candidates {
    live: Vec<Candidate>,
}

impl Candidates {
    /// Candidates for these scripts, in this order (the first answers while it stays).
    pub fn new(scripts: impl IntoIterator<Item = Arc<Script>>) -> Self {
        Candidates {
            live: scripts.into_iter().map(Candidate::new).collect(),
        }
    }

    /// True before any script was chosen (and once every one has dropped out).
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// How many scripts still fit.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// The script that answers now.
    pub fn answering(&self) -> Option<&Arc<Script>> {
        self.live.first().map(|c| &c.script)
    }

    /// Matches the attacker's message (`walked`: its fields) against every candidate and keeps
    /// those it follows; when none does, the answering candidate's deviation says why.
    pub fn accept(&mut self, msg: &dyn AnyMessage, walked: &Walked) -> Result<(), Deviation> {
        let mut first = None;
        self.live
            .retain_mut(|c| match c.accept_walked(msg, walked) {
                Ok(()) => true,
                Err(e) => {
                    first.get_or_insert(e);
                    false
                }
            });
        match (self.live.is_empty(), first) {
            (true, Some(e)) => Err(e),
            (true, None) => Err(Deviation("no script is being followed".into())),
            (false, _) => Ok(()),
        }
    }

    /// [`Candidate::accept_bytes`] while one script is left (with more, the full path tells
    /// them apart).
    pub fn accept_bytes(&mut self, input: &[u8]) -> Option<(usize, Vec<Option<Value>>)> {
        match &mut self.live[..] {
            [one] => one.accept_bytes(input),
            _ => None,
        }
    }

    /// The answering candidate's replies due now; one that cannot answer (its reply does not
    /// fit the attacker's options) leaves the set and the next answers.
    pub fn serve(&mut self, to: Audience) -> Result<Step, Deviation> {
        loop {
            let Some(c) = self.live.first_mut() else {
                return Err(Deviation("no script is being followed".into()));
            };
            match c.serve(to) {
                Ok(step) => {
                    // Answered: no candidate builds replies to this message any more.
                    self.live.iter_mut().for_each(Candidate::forget_options);
                    return Ok(step);
                }
                Err(e) if self.live.len() == 1 => return Err(e),
                Err(_) => {
                    self.live.remove(0);
                }
            }
        }
    }

    /// After the answering candidate's replies were sent (`sent`: each as the attacker decoded
    /// it), the others move past their own replies, or leave the set if theirs differ.
    pub fn heard(&mut self, sent: &[(&MatchKey, &[RoleField])]) {
        let mut n = 0;
        self.live.retain_mut(|c| {
            n += 1;
            n == 1 || c.shadow(sent).is_ok()
        });
    }
}

impl Candidate {
    /// Follows replies another script answered with: this script's replies due now must be the
    /// same in content, their cookies pairing with the values the attacker saw.
    fn shadow(&mut self, sent: &[(&MatchKey, &[RoleField])]) -> Result<(), Deviation> {
        let mut cookies = self.cookies.clone();
        let mut pos = self.pos;
        for (key, fields) in sent {
            let Some(m) = self
                .script
                .messages
                .get(pos)
                .filter(|m| m.side == Side::Server)
            else {
                return Err(Deviation(format!("the script has no reply at {pos}")));
            };
            if let Some((path, got, want)) = key.first_difference(&m.key) {
                return Err(Deviation(format!(
                    "reply {pos} ({}): {path} is {want} here, the attacker got {got}",
                    m.kind
                )));
            }
            pair_cookies(&mut cookies, fields, &m.fields)
                .map_err(|e| Deviation(format!("reply {pos}: {e}")))?;
            pos += 1;
        }
        if self
            .script
            .messages
            .get(pos)
            .is_some_and(|m| m.side == Side::Server)
        {
            return Err(Deviation(format!("the script has more replies at {pos}")));
        }
        self.cookies = cookies;
        while self.pos < pos {
            self.passed();
        }
        Ok(())
    }
}
