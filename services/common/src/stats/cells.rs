//! Compact latency distributions for finished time buckets.
//!
//! A bucket keeps the counts of the HDR histogram cells its latencies fell
//! in, but only the run from the lowest used cell to the highest: a full
//! histogram over 1 µs to 10 minutes at two significant digits has about
//! 3,000 cells (12 KB), while a second of real traffic spans a few hundred
//! contiguous ones. The cell layout is HDR's own (lowest value 1, 256
//! cells for the first 256 values, then 128 per power of two), so counts go
//! back into a histogram cell for cell, with no loss of precision.

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

/// Counts for the cells `first..first + counts.len()`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cells {
    first: usize,
    counts: Vec<u32>,
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
        cells.first = first;
        cells.counts = vec![0; last - first + 1];
        for (index, count) in recorded {
            cells.counts[index - first] = cells.counts[index - first].saturating_add(count);
        }
        cells
    }

    /// Forgets every count, keeping the allocation for the next use.
    pub fn clear(&mut self) {
        self.counts.clear();
    }

    /// Adds `other`'s counts, widening the run of cells as needed (to the
    /// exact size: buckets live long, slack would add up).
    pub fn add(&mut self, other: &Cells) {
        if other.counts.is_empty() {
            return;
        }
        if self.counts.is_empty() {
            self.first = other.first;
            self.counts.reserve_exact(other.counts.len());
            self.counts.extend_from_slice(&other.counts);
            return;
        }
        if other.first < self.first {
            let grow = self.first - other.first;
            self.counts.reserve_exact(grow);
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.first = other.first;
        }
        let end = other.first + other.counts.len();
        if end > self.first + self.counts.len() {
            let len = end - self.first;
            self.counts.reserve_exact(len - self.counts.len());
            self.counts.resize(len, 0);
        }
        let offset = other.first - self.first;
        for (total, &n) in self.counts[offset..].iter_mut().zip(&other.counts) {
            *total = total.saturating_add(n);
        }
    }

    /// Adds these counts into `histogram` (same cell layout).
    pub fn record_into(&self, histogram: &mut Histogram<u32>) {
        for (i, &count) in self.counts.iter().enumerate() {
            if count > 0 {
                histogram.saturating_record_n(lowest_value(self.first + i), count);
            }
        }
    }

    /// Cells held, used or not (what the bucket costs in memory, / 4 bytes).
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.counts.capacity()
    }
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
            assert_eq!(cells.counts, vec![1], "{value}");
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
    fn adding_widens_on_both_sides_and_sums() {
        let cell = |first: usize, counts: &[u32]| Cells {
            first,
            counts: counts.to_vec(),
        };
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
}
