//! Compact latency distributions for finished time buckets.
//!
//! A bucket keeps the counts of the HDR histogram cells its latencies fell
//! in, but only the run from the lowest used cell to the highest: a full
//! histogram over 1 µs to 10 minutes at two significant digits has about
//! 3,000 cells (12 KB), while a second of real traffic spans a few hundred
//! contiguous ones, and their counts are stored as varints (mostly one
//! byte each). The cell layout is HDR's own (lowest value 1, 256
//! cells for the first 256 values, then 128 per power of two), so counts go
//! back into a histogram cell for cell, with no loss of precision.
//!
//! Depends on nothing else in the crate.

use hdrhistogram::Histogram;

/// Cells per power of two above the first 256 values (two significant
/// digits).
const HALF: u64 = 128;

/// The cell of `value`, as an HDR histogram with lowest discernible value 1
/// and two significant digits numbers it.
pub fn index_of(value: u64) -> usize {
    let bucket = u64::from(63 - (value | 255).leading_zeros()) - 7;
    (bucket * HALF + (value >> bucket)) as usize
}

/// The lowest value in cell `index`.
pub fn lowest_value(index: usize) -> u64 {
    let index = index as u64;
    let bucket = if index < 2 * HALF {
        0
    } else {
        index / HALF - 1
    };
    (index - bucket * HALF) << bucket
}

/// The middle of cell `index` (rounded up), as HDR's `median_equivalent`
/// gives it for any value in the cell.
fn median_value(index: usize) -> u64 {
    let bucket = if index < 2 * HALF as usize {
        0
    } else {
        index as u64 / HALF - 1
    };
    lowest_value(index) + ((1u64 << bucket) >> 1)
}

/// Counts for the cells `first..first + len`, each stored as a LEB128
/// varint: most cells of a bucket hold fewer than 128 requests (one byte)
/// or fewer than 16,384 (two), so a bucket costs about a third of what
/// plain `u32` counts would. Buckets are decoded only to be merged or read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cells {
    first: usize,
    len: usize,
    encoded: Vec<u8>,
}

impl Cells {
    /// The non-empty part of `histogram`.
    pub fn from_histogram(histogram: &Histogram<u32>) -> Cells {
        let mut cells = Cells::default();
        let recorded: Vec<(usize, u32)> = histogram
            .iter_recorded()
            .map(|v| {
                let count = u32::try_from(v.count_since_last_iteration()).unwrap_or(u32::MAX);
                (index_of(v.value_iterated_to()), count)
            })
            .collect();
        let (Some(&(first, _)), Some(&(last, _))) = (recorded.first(), recorded.last()) else {
            return cells;
        };
        let mut run = vec![0u32; last - first + 1];
        for (index, count) in recorded {
            run[index - first] = run[index - first].saturating_add(count);
        }
        cells.set(first, &run);
        cells
    }

    /// Forgets every count, keeping the allocation for the next use.
    pub fn clear(&mut self) {
        self.len = 0;
        self.encoded.clear();
    }

    /// Adds `other`'s counts, widening the run of cells as needed.
    pub fn add(&mut self, other: &Cells) {
        if other.len == 0 {
            return;
        }
        let (first, end) = if self.len == 0 {
            (other.first, other.end())
        } else {
            (self.first.min(other.first), self.end().max(other.end()))
        };
        let mut run = vec![0u32; end - first];
        for cells in [&*self, other].into_iter().filter(|c| c.len > 0) {
            let offset = cells.first - first;
            for (total, n) in run[offset..].iter_mut().zip(cells.counts()) {
                *total = total.saturating_add(n);
            }
        }
        self.set(first, &run);
    }

    /// Adds these counts into `histogram` (same cell layout).
    pub fn record_into(&self, histogram: &mut Histogram<u32>) {
        for (i, count) in self.counts().enumerate() {
            if count > 0 {
                histogram.saturating_record_n(lowest_value(self.first + i), count);
            }
        }
    }

    /// The value at quantile `q` (0 to 1) of these counts, in the middle of
    /// its cell: what `median_equivalent(value_at_quantile(q))` of a
    /// histogram holding them gives, read straight from the few hundred
    /// used cells rather than by filling a 12 KB histogram (which a series
    /// would do 60 times per backend). `None` when there are no counts.
    pub fn value_at_quantile(&self, q: f64) -> Option<u64> {
        let total: u64 = self.counts().map(u64::from).sum();
        if total == 0 {
            return None;
        }
        // HDR's rank: the first cell whose running count reaches it.
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        self.counts()
            .position(|n| {
                seen += u64::from(n);
                seen >= rank
            })
            .map(|i| median_value(self.first + i))
    }

    /// The counts of the cells `first..first + len`, in order.
    fn counts(&self) -> impl Iterator<Item = u32> + '_ {
        let mut bytes = self.encoded.iter();
        std::iter::from_fn(move || {
            let (mut value, mut shift) = (0u32, 0u32);
            loop {
                let byte = *bytes.next()?;
                value |= u32::from(byte & 0x7f) << shift;
                if byte < 0x80 {
                    return Some(value);
                }
                shift += 7;
            }
        })
    }

    fn end(&self) -> usize {
        self.first + self.len
    }

    /// Replaces the counts with `run`, starting at cell `first`. The buffer
    /// grows to the exact size (buckets live long, slack would add up) and
    /// keeps its capacity when the run is shorter.
    fn set(&mut self, first: usize, run: &[u32]) {
        let size: usize = run.iter().map(|&n| varint_len(n)).sum();
        self.encoded.clear();
        self.encoded.reserve_exact(size);
        for &n in run {
            let mut n = n;
            while n >= 0x80 {
                self.encoded.push((n as u8) | 0x80);
                n >>= 7;
            }
            self.encoded.push(n as u8);
        }
        self.first = first;
        self.len = run.len();
    }

    /// Bytes held, used or not (what the bucket costs in memory).
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.encoded.capacity()
    }
}

/// Bytes of `n` as a LEB128 varint.
fn varint_len(n: u32) -> usize {
    (32 - (n | 1).leading_zeros()).div_ceil(7) as usize
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_hdrs_own() {
        let mut h = Histogram::<u32>::new_with_bounds(1, 600_000_000, 2).unwrap();
        for value in (1..2_000u64).chain((2_000..600_000_000).step_by(99_991)) {
            h.reset();
            h.record(value).unwrap();
            let cells = Cells::from_histogram(&h);
            assert_eq!(cells.counts().collect::<Vec<_>>(), vec![1], "{value}");
            let low = lowest_value(cells.first);
            assert_eq!(low, h.lowest_equivalent(value), "{value}");
            assert_eq!(index_of(low), cells.first);
            assert_eq!(index_of(h.highest_equivalent(value)), cells.first);
        }
    }

    #[test]
    fn counts_round_trip_through_cells() {
        let mut h = Histogram::<u32>::new_with_bounds(1, 600_000_000, 2).unwrap();
        for v in [3, 3, 250, 257, 1_000, 1_013, 45_000, 45_001, 9_000_000] {
            h.record(v).unwrap();
        }
        let cells = Cells::from_histogram(&h);
        let mut back = Histogram::<u32>::new_with_bounds(1, 600_000_000, 2).unwrap();
        cells.record_into(&mut back);
        assert_eq!(back, h);
    }

    #[test]
    fn quantiles_match_hdrs_own() {
        let mut h = Histogram::<u32>::new_with_bounds(1, 600_000_000, 2).unwrap();
        assert_eq!(Cells::from_histogram(&h).value_at_quantile(0.5), None);
        // Spreads from one cell to many powers of two, repeated values too.
        let mut x = 12_345u64;
        for n in [1usize, 2, 3, 10, 99, 1_000] {
            h.reset();
            for _ in 0..n {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                h.record(1 + (x >> 33) % 2_000_000).unwrap();
                h.record(1 + (x >> 50)).unwrap();
            }
            let cells = Cells::from_histogram(&h);
            for q in [0.0, 0.01, 0.5, 0.9, 0.99, 0.999, 1.0] {
                let want = h.median_equivalent(h.value_at_quantile(q));
                assert_eq!(cells.value_at_quantile(q), Some(want), "n={n} q={q}");
            }
        }
        for index in [0, 1, 255, 256, 257, 383, 384, 2_900] {
            let low = lowest_value(index);
            assert_eq!(median_value(index), h.median_equivalent(low), "{index}");
        }
    }

    fn cell(first: usize, counts: &[u32]) -> Cells {
        let mut cells = Cells::default();
        cells.set(first, counts);
        cells
    }

    #[test]
    fn adding_widens_on_both_sides_and_sums() {
        let mut a = cell(10, &[1, 2]);
        a.add(&cell(8, &[5]));
        assert_eq!(a, cell(8, &[5, 0, 1, 2]));
        a.add(&cell(11, &[1, 1, 0, 7]));
        assert_eq!(a, cell(8, &[5, 0, 1, 3, 1, 0, 7]));
        assert_eq!(a.capacity(), 7);
        a.clear();
        a.add(&cell(3, &[4]));
        assert_eq!(a, cell(3, &[4]));
        a.add(&Cells::default());
        assert_eq!(a, cell(3, &[4]));
    }

    #[test]
    fn counts_of_every_size_round_trip_and_saturate() {
        let run = [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            2_097_152,
            u32::MAX - 1,
            u32::MAX,
        ];
        let mut a = cell(40, &run);
        assert_eq!(a.counts().collect::<Vec<_>>(), run);
        // One byte per count below 128, five for the largest.
        assert_eq!(a.encoded.len(), 1 + 1 + 1 + 2 + 2 + 3 + 4 + 5 + 5);
        a.add(&cell(47, &[1, 1]));
        let mut sums = run;
        sums[7] = u32::MAX;
        assert_eq!(a.counts().collect::<Vec<_>>(), sums);
        for n in [0, 1, 127, 128, 16_383, 16_384, u32::MAX] {
            assert_eq!(varint_len(n), cell(0, &[n]).encoded.len(), "{n}");
        }
    }
}
