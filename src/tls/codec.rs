//! Codec: a cursor over received bytes whose reads return `None` instead of running off the
//! end (rustls's `Reader`), so the hand-written parsers of this room never index input.

/// A cursor over a byte slice; every read either returns the bytes it promised or `None`.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(rest: &'a [u8]) -> Self {
        Cursor { rest }
    }

    /// The next `n` bytes, or `None` (and nothing consumed) if fewer remain.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (a, b) = self.rest.split_at(n);
        self.rest = b;
        Some(a)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).and_then(|b| b.first().copied())
    }

    /// A big-endian u16.
    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    /// A vector with a one-byte length prefix (RFC 8446 `opaque x<0..2^8-1>`).
    pub(crate) fn vec_u8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    /// A vector with a two-byte length prefix (RFC 8446 `opaque x<0..2^16-1>`).
    pub(crate) fn vec_u16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

/// The big-endian u16 values of `list` (a trailing odd byte is ignored).
pub(crate) fn u16s(list: &[u8]) -> impl Iterator<Item = u16> + '_ {
    list.chunks_exact(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_end_are_none_and_consume_nothing() {
        let mut c = Cursor::new(&[0, 3, 1, 2]);
        assert_eq!(c.u16(), Some(3));
        assert_eq!(c.take(3), None);
        assert_eq!(c.take(2), Some(&[1u8, 2][..]));
        assert!(c.is_empty() && c.u8().is_none());
    }

    #[test]
    fn length_prefixed_vectors() {
        let mut c = Cursor::new(&[0, 2, 0xaa, 0xbb, 1, 0xcc]);
        assert_eq!(c.vec_u16(), Some(&[0xaa, 0xbb][..]));
        assert_eq!(c.vec_u8(), Some(&[0xcc][..]));
        assert_eq!(u16s(&[1, 2, 3]).collect::<Vec<_>>(), vec![0x0102]);
    }
}
