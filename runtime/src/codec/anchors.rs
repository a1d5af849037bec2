//! The stack of anchors (named positions) that offsets and alignment count from. Inline for
//! the usual handful, so decoding a message allocates nothing for it.

const INLINE: usize = 8;

#[derive(Debug, Clone, Default)]
pub(crate) struct Anchors {
    inline: [(&'static str, usize); INLINE],
    len: usize,
    more: Vec<(&'static str, usize)>,
}

impl Anchors {
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len + self.more.len()
    }

    #[inline]
    pub(crate) fn push(&mut self, name: &'static str, pos: usize) {
        if self.len < INLINE {
            self.inline[self.len] = (name, pos);
            self.len += 1;
        } else {
            self.more.push((name, pos));
        }
    }

    #[inline]
    pub(crate) fn truncate(&mut self, mark: usize) {
        if mark <= INLINE {
            self.more.clear();
            self.len = self.len.min(mark);
        } else {
            self.more.truncate(mark - INLINE);
        }
    }

    /// The innermost anchor of that name.
    pub(crate) fn find(&self, name: &str) -> Option<usize> {
        self.more
            .iter()
            .rev()
            .chain(self.inline[..self.len].iter().rev())
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn innermost_wins_and_truncate_restores() {
        let mut a = Anchors::default();
        for i in 0..12 {
            a.push(if i % 2 == 0 { "x" } else { "y" }, i);
        }
        assert_eq!(a.find("x"), Some(10));
        assert_eq!(a.find("y"), Some(11));
        a.truncate(9);
        assert_eq!(a.find("x"), Some(8));
        a.truncate(3);
        assert_eq!(a.len(), 3);
        assert_eq!(a.find("y"), Some(1));
        assert_eq!(a.find("z"), None);
    }
}
