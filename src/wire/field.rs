//! Checked reads of big-endian fields: each returns `None` when the bytes are not there, so a
//! header cut by the snaplen never panics, and no layer indexes into input unchecked.

/// The big-endian `u16` at `at`, if `d` holds it.
pub(super) fn be16(d: &[u8], at: usize) -> Option<u16> {
    let b = d.get(at..)?.first_chunk::<2>()?;
    Some(u16::from_be_bytes(*b))
}

/// The big-endian `u32` at `at`, if `d` holds it.
pub(super) fn be32(d: &[u8], at: usize) -> Option<u32> {
    let b = d.get(at..)?.first_chunk::<4>()?;
    Some(u32::from_be_bytes(*b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_end_are_none() {
        let d = [1, 2, 3, 4, 5];
        assert_eq!(be16(&d, 3), Some(0x0405));
        assert_eq!(be16(&d, 4), None);
        assert_eq!(be32(&d, 1), Some(0x0203_0405));
        assert_eq!(be32(&d, 2), None);
        assert_eq!(be32(&d, usize::MAX), None);
    }
}
