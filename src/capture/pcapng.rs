//! pcapng: sections, each with its own interfaces, and each interface with its own link type,
//! timestamp resolution and offset. pcap-parser reads the blocks; a [`Section`] keeps the
//! state they need between them and turns packet blocks into [`Frame`]s.

use super::{Format, Frame, InputSummary, Nanos};
use pcap_parser::pcapng::{
    EnhancedPacketBlock, InterfaceDescriptionBlock, SectionHeaderBlock, SimplePacketBlock,
};
use pcap_parser::traits::PcapNGPacketBlock;

/// Packets naming an undeclared interface that are reported one by one; the rest are counted.
const BAD_INTERFACE_WARNINGS: u64 = 10;

/// One interface description, as the packets of its section need it.
#[derive(Clone, Copy)]
struct Interface {
    linktype: u32,
    /// Timestamp units per second.
    resolution: u64,
    offset_s: i64,
}

/// The state of the section being read: its interfaces, and the packets seen so far that name
/// one it does not declare.
#[derive(Default)]
pub(super) struct Section {
    interfaces: Vec<Interface>,
    bad_interface: u64,
}

impl Section {
    /// A new section starts: interfaces are numbered afresh.
    pub(super) fn start(&mut self, shb: &SectionHeaderBlock<'_>, sum: &mut InputSummary) {
        sum.format = Some(Format::Pcapng);
        sum.big_endian = shb.big_endian();
        self.interfaces.clear();
    }

    /// An interface description: the next interface of the section.
    pub(super) fn interface(
        &mut self,
        idb: &InterfaceDescriptionBlock<'_>,
        sum: &mut InputSummary,
    ) {
        self.interfaces.push(Interface {
            linktype: idb.linktype.0 as u32,
            resolution: idb.ts_resolution().unwrap_or(1_000_000),
            offset_s: idb.ts_offset(),
        });
        sum.interfaces += 1;
        if sum.snaplen.is_none() && idb.snaplen != 0 {
            sum.snaplen = Some(idb.snaplen);
        }
    }

    /// The frame an enhanced packet block holds, or `None` (with a warning) when it names an
    /// interface the section did not declare.
    pub(super) fn enhanced<'a>(
        &mut self,
        epb: &'a EnhancedPacketBlock<'a>,
        file: usize,
        number: u64,
        sum: &mut InputSummary,
    ) -> Option<Frame<'a>> {
        let Some(iface) = self.interfaces.get(epb.if_id as usize) else {
            self.bad_interface += 1;
            if self.bad_interface <= BAD_INTERFACE_WARNINGS {
                sum.warnings.push(format!(
                    "frame {number}: packet names interface {} but the section declares {}; \
                     skipped",
                    epb.if_id,
                    self.interfaces.len()
                ));
            }
            return None;
        };
        Some(Frame {
            file,
            number,
            ts: ng_ts(epb.ts_high, epb.ts_low, iface),
            linktype: iface.linktype,
            orig_len: epb.origlen,
            interface: epb.if_id,
            data: epb.packet_data(),
        })
    }

    /// The frame a simple packet block holds (first interface; no timestamp of its own, so the
    /// previous frame's), or `None` before any interface is declared.
    pub(super) fn simple<'a>(
        &self,
        spb: &'a SimplePacketBlock<'a>,
        file: usize,
        number: u64,
        sum: &InputSummary,
    ) -> Option<Frame<'a>> {
        let iface = self.interfaces.first()?;
        Some(Frame {
            file,
            number,
            ts: sum.last_ts.unwrap_or(0),
            linktype: iface.linktype,
            orig_len: spb.origlen,
            interface: 0,
            data: spb.packet_data(),
        })
    }

    /// At the end of the input: how many more packets named an undeclared interface than were
    /// reported one by one.
    pub(super) fn finish(&self, sum: &mut InputSummary) {
        if self.bad_interface > BAD_INTERFACE_WARNINGS {
            sum.warnings.push(format!(
                "... and {} more packets naming an undeclared interface; skipped",
                self.bad_interface - BAD_INTERFACE_WARNINGS
            ));
        }
    }
}

/// A packet's capture time: `high:low` units of the interface's resolution, plus its offset.
/// Saturates rather than wraps on absurd values.
fn ng_ts(high: u32, low: u32, iface: &Interface) -> Nanos {
    let raw = (u64::from(high) << 32) | u64::from(low);
    let res = iface.resolution.max(1);
    let secs = raw / res;
    let frac = raw % res;
    let nanos = (u128::from(frac) * 1_000_000_000u128 / u128::from(res)) as i64;
    (secs as i64)
        .saturating_add(iface.offset_s)
        .saturating_mul(1_000_000_000)
        .saturating_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcapng_timestamp_honours_resolution_and_offset() {
        let micro = Interface {
            linktype: 1,
            resolution: 1_000_000,
            offset_s: 0,
        };
        // 1.5 s in microseconds
        assert_eq!(ng_ts(0, 1_500_000, &micro), 1_500_000_000);
        let nano = Interface {
            linktype: 1,
            resolution: 1_000_000_000,
            offset_s: 10,
        };
        assert_eq!(ng_ts(0, 7, &nano), 10_000_000_007);
    }
}
