//! Rate-limited log lines: an error that repeats millions of times a minute (accepts failing
//! with EMFILE, a store that cannot open its file) costs one line per interval, which says how
//! many it held back.

use std::time::{Duration, Instant};

/// Lets one line through per interval and counts the ones it held back.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    next: Option<Instant>,
    held: u64,
}

impl Throttle {
    pub const fn new(every: Duration) -> Self {
        Throttle {
            every,
            next: None,
            held: 0,
        }
    }

    /// `Some(how many were held back since the last line)` when a line may be written now;
    /// `None` (and one more held back) otherwise.
    pub fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.next {
            Some(t) if now < t => {
                self.held += 1;
                None
            }
            _ => {
                self.next = Some(now + self.every);
                Some(std::mem::take(&mut self.held))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_held_back() {
        let mut t = Throttle::new(Duration::from_millis(50));
        assert_eq!(t.allow(), Some(0));
        for _ in 0..1000 {
            assert_eq!(t.allow(), None);
        }
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(t.allow(), Some(1000));
        assert_eq!(t.allow(), None);
    }
}
