//! Run-time fault detection. [`Model::from_bytes`] checks the file once; a device's flash or RAM can still flip a
//! bit later (radiation, ageing flash, brown-outs), and one flipped bit in a compressed stream shifts every later
//! weight of its layer. At load the file's CRC-32 is computed once anyway; [`Checks`] keeps that running CRC at
//! the end of every section (a few hundred bytes of RAM, no extra pass), so that [`Model::verify`] can re-check
//! the whole file between inferences in one pass and name the section a fault lies in — a device can then reload
//! just those bytes from a second copy.

use crate::bytes::crc32_update;
use crate::error::{Error, Result, Section};
use crate::format::*;
use crate::model::Model;

/// The running CRC-32 of the file (from [`CRC_FROM`], as the header's CRC) at the end of each region, as the
/// file was at load. Region 0 is the section table and the graph section; region `i > 0` is weights section `i`;
/// each runs up to the next section's start (its padding included), the last to the end of the file.
#[derive(Debug, Clone)]
pub(crate) struct Checks {
    pub(crate) count: usize,
    ends: [u32; MAX_SECTIONS],
    crcs: [u32; MAX_SECTIONS],
}

impl Checks {
    /// No regions: what an empty model holds.
    pub(crate) const EMPTY: Checks = Checks {
        count: 0,
        ends: [0; MAX_SECTIONS],
        crcs: [0; MAX_SECTIONS],
    };

    /// Computes the file's CRC-32 (over `bytes[CRC_FROM..]`) in one pass, keeping its running value at every
    /// section start the table names. The table is not validated yet (the CRC is checked first): offsets out of
    /// order or out of bounds are skipped, and a file with such a table fails its table check right after. Returns
    /// the CRC.
    pub(crate) fn record(&mut self, bytes: &[u8]) -> u32 {
        let checks = self;
        checks.count = 0;
        let word = |at: usize| {
            let b = bytes.get(at..at.saturating_add(4))?;
            Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        };
        let count = word(COUNT_OFFSET).unwrap_or(0).min(MAX_SECTIONS);
        let (mut state, mut start) = (!0u32, CRC_FROM);
        for i in 1..=count {
            let end = if i == count {
                bytes.len()
            } else {
                match word(HEADER_BYTES + TABLE_ENTRY_BYTES * i + 4) {
                    Some(o) if o >= start && o <= bytes.len() => o,
                    _ => continue,
                }
            };
            state = crc32_update(state, bytes.get(start..end).unwrap_or(&[]));
            checks.ends[checks.count] = end as u32;
            checks.crcs[checks.count] = !state;
            (checks.count, start) = (checks.count + 1, end);
        }
        if checks.count == 0 {
            state = crc32_update(state, bytes.get(CRC_FROM..).unwrap_or(&[]));
        }
        !state
    }
}

impl<'a> Model<'a> {
    /// Re-checks the model's bytes against what they were at load: the header's fields and the CRC-32, region by
    /// region. Callable between inferences (it allocates nothing and takes one pass over the file, about as long as
    /// the CRC check at load); a changed byte gives [`Error::Fault`] naming the section it lies in and its byte
    /// range, which a device can reload from a second copy before calling `verify` again. Every single-bit
    /// flip (and every burst of up to 32 bits) is detected; other damage escapes with probability 2⁻³².
    pub fn verify(&self) -> Result<()> {
        self.verify_image(self.bytes)
    }

    /// [`Model::verify`] for an image of the file at another address — a second copy about to replace the loaded
    /// one, or a copy with injected faults (`slimnet sensitivity` measures detection this way): whether `image`
    /// still holds exactly the bytes this model was loaded from.
    pub fn verify_image(&self, image: &[u8]) -> Result<()> {
        let c = &self.checks;
        let last = c.count.checked_sub(1).ok_or(Error::PathUnavailable)?;
        let mut head = [0u8; CRC_FROM];
        head[..4].copy_from_slice(&MAGIC);
        head[4..6].copy_from_slice(&VERSION.to_le_bytes());
        head[6..8].copy_from_slice(&self.flags.to_le_bytes());
        head[8..12].copy_from_slice(&(self.bytes.len() as u32).to_le_bytes());
        head[12..16].copy_from_slice(&c.crcs[last].to_le_bytes());
        if image.len() != self.bytes.len() || image.get(..CRC_FROM) != Some(&head[..]) {
            return Err(self.fault(Section::Header, 0, CRC_FROM));
        }
        let (mut state, mut start) = (!0u32, CRC_FROM);
        for i in 0..c.count {
            let end = c.ends[i] as usize;
            state = crc32_update(state, image.get(start..end).unwrap_or(&[]));
            if !state != c.crcs[i] {
                return Err(self.fault(self.region_section(i, start), start, end));
            }
            start = end;
        }
        Ok(())
    }

    /// What region `i` (starting at `start`) holds: the table and graph, or an operator's weights.
    fn region_section(&self, i: usize, start: usize) -> Section {
        if i == 0 {
            return Section::Graph;
        }
        let ops = self.ops.get(..self.op_count).unwrap_or(&[]);
        match ops.iter().position(|op| op.weights_offset == start) {
            Some(j) => Section::Weights(j as u16),
            None => Section::Table,
        }
    }

    fn fault(&self, section: Section, start: usize, end: usize) -> Error {
        Error::Fault {
            section,
            offset: start,
            len: end.saturating_sub(start),
        }
    }
}
