//! Merge: several files read as one capture, their frames in capture-time order, as mergecap
//! writes them (`tcpdump -C` rotations given in glob order, `gw.pcap10` before `gw.pcap2`).
//!
//! Owns the order: each file is first read up to its first packet (then closed), and the file
//! whose next frame comes first is read until another file's next frame comes before its own.
//! A file is opened when its first packet is due and closed when it ends, so only files that
//! overlap in time are open at once, each with its own buffer. Frames keep their file index
//! (the order given) and their number in their own file, as Wireshark shows each file.

use super::reader::{FileReader, NO_LIMIT};
use super::{CaptureError, Frame, InputSummary, Nanos};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// What the merge learnt about the files.
#[derive(Debug, Default)]
pub struct Merged {
    /// One summary per file, in the order given.
    pub inputs: Vec<InputSummary>,
    /// A file given before another whose first packet is earlier, when there is one (the
    /// first such pair, as indices in the order given).
    pub out_of_order: Option<(usize, usize)>,
}

/// Reads `paths` as one capture, handing frames to `on_frame` in capture-time order (equal
/// times: the file given first); `progress` gets (input, raw bytes of it read).
pub(super) fn read_merged(
    paths: &[String],
    on_frame: &mut dyn FnMut(&Frame<'_>),
    progress: &mut dyn FnMut(usize, u64),
) -> Result<Merged, CaptureError> {
    let mut inputs: Vec<Option<InputSummary>> = vec![None; paths.len()];
    let mut firsts: Vec<Option<Nanos>> = Vec::with_capacity(paths.len());
    // The next frame of each file not yet ended: (capture time, file index), earliest first.
    let mut heads = BinaryHeap::new();
    for (i, path) in paths.iter().enumerate() {
        let mut file = FileReader::open(path, i)?;
        // Every frame is held back: the file is read up to its first packet.
        let first = file.read_until((Nanos::MIN, 0), &mut |_| {}, &mut |_| {});
        match first {
            Some(ts) => heads.push(Reverse((ts, i))),
            None => inputs[i] = Some(file.finish(&mut |n| progress(i, n))?),
        }
        firsts.push(first);
    }
    let mut open: HashMap<usize, FileReader<'_>> = HashMap::new();
    while let Some(Reverse((_, i))) = heads.pop() {
        let limit = heads.peek().map_or(NO_LIMIT, |Reverse(next)| *next);
        let mut file = match open.remove(&i) {
            Some(f) => f,
            None => FileReader::open(&paths[i], i)?,
        };
        let mut on_progress = |n: u64| progress(i, n);
        match file.read_until(limit, on_frame, &mut on_progress) {
            Some(ts) => {
                heads.push(Reverse((ts, i)));
                open.insert(i, file);
            }
            None => inputs[i] = Some(file.finish(&mut on_progress)?),
        }
    }
    Ok(Merged {
        inputs: inputs.into_iter().map(Option::unwrap_or_default).collect(),
        out_of_order: out_of_order(&firsts),
    })
}

/// The first file (index) whose first packet comes before that of a file given earlier, with
/// the latest-starting file given before it.
fn out_of_order(firsts: &[Option<Nanos>]) -> Option<(usize, usize)> {
    let mut latest: Option<(Nanos, usize)> = None;
    for (i, first) in firsts.iter().enumerate() {
        let Some(ts) = *first else { continue };
        match latest {
            Some((l, at)) if ts < l => return Some((at, i)),
            Some((l, _)) if ts <= l => {}
            _ => latest = Some((ts, i)),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_names_the_first_file_that_starts_before_one_given_earlier() {
        assert_eq!(
            out_of_order(&[Some(1), Some(2), Some(2), None, Some(5)]),
            None
        );
        assert_eq!(out_of_order(&[]), None);
        // Glob order of tcpdump -C pieces: x.pcap, x.pcap1, x.pcap10, x.pcap2.
        assert_eq!(
            out_of_order(&[Some(0), Some(1), Some(10), Some(2)]),
            Some((2, 3))
        );
        // An empty file in between says nothing about the order.
        assert_eq!(out_of_order(&[Some(5), None, Some(3)]), Some((0, 2)));
    }
}
