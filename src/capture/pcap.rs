//! Legacy pcap (the format tcpdump writes): what its file header says and each record's
//! capture time. pcap-parser reads the bytes (micro- or nanosecond timestamps, either byte
//! order, the "modified" variant); this turns its blocks into [`Frame`]s.

use super::{Format, Frame, InputSummary, Nanos};
use pcap_parser::{LegacyPcapBlock, PcapHeader};

/// What the file header fixes for every record of a legacy pcap file.
#[derive(Debug, Clone, Copy)]
pub(super) struct LegacyFile {
    linktype: u32,
    /// Timestamps carry nanoseconds (else microseconds).
    nanosecond: bool,
}

impl LegacyFile {
    /// Reads the file header into `sum` and keeps what the records need.
    pub(super) fn from_header(h: &PcapHeader, sum: &mut InputSummary) -> Self {
        sum.format = Some(if h.is_modified_format() {
            Format::PcapModified
        } else if h.is_nanosecond_precision() {
            Format::PcapNanosecond
        } else {
            Format::Pcap
        });
        sum.big_endian = h.is_bigendian();
        sum.snaplen = Some(h.snaplen);
        sum.interfaces = 1;
        LegacyFile {
            linktype: h.network.0 as u32,
            nanosecond: h.is_nanosecond_precision(),
        }
    }

    /// The frame a record holds: number `number` of input `file`.
    pub(super) fn frame<'a>(
        &self,
        file: usize,
        number: u64,
        rec: &LegacyPcapBlock<'a>,
    ) -> Frame<'a> {
        Frame {
            file,
            number,
            ts: self.ts(rec),
            linktype: self.linktype,
            orig_len: rec.origlen,
            interface: 0,
            data: rec.data,
        }
    }

    /// A record's capture time.
    fn ts(&self, rec: &LegacyPcapBlock<'_>) -> Nanos {
        let sub = if self.nanosecond {
            i64::from(rec.ts_usec)
        } else {
            i64::from(rec.ts_usec) * 1000
        };
        i64::from(rec.ts_sec) * 1_000_000_000 + sub.min(999_999_999_999)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_time_honours_the_header_precision() {
        let rec = LegacyPcapBlock {
            ts_sec: 2,
            ts_usec: 5,
            caplen: 0,
            origlen: 0,
            data: &[],
        };
        let micro = LegacyFile {
            linktype: 1,
            nanosecond: false,
        };
        let nano = LegacyFile {
            linktype: 1,
            nanosecond: true,
        };
        assert_eq!(micro.ts(&rec), 2_000_005_000);
        assert_eq!(nano.ts(&rec), 2_000_000_005);
    }
}
