//! The weighted order of a snapshot's `up` backends, computed once per
//! change of the backend set so that `weighted_round_robin` picks with one
//! atomic increment.
//!
//! Depends on nothing else in the crate.

use std::collections::BinaryHeap;

/// Smooth weighted round robin as a precomputed schedule of indices.
///
/// Stride scheduling: backend `i`'s `k`-th turn is due at `(k + 1/2) / w_i`
/// of the cycle, and turns are taken in due order (ties to the lower index).
/// Every backend gets exactly `w_i` turns per cycle, evenly spread, which is
/// the property NGINX's smooth algorithm has, but each step costs O(log n)
/// with a heap instead of a scan of all backends. Weights are first divided
/// by their greatest common divisor, so the cycle is as short as possible.
pub fn smooth_weighted_schedule(weights: &[u32]) -> Vec<u32> {
    if weights.is_empty() {
        return Vec::new();
    }
    let divisor = weights.iter().copied().fold(0, gcd).max(1);
    let weights: Vec<u64> = weights
        .iter()
        .map(|&w| u64::from(w.max(1) / divisor))
        .collect();
    let total: u64 = weights.iter().sum();
    let mut heap: BinaryHeap<Turn> = weights
        .iter()
        .enumerate()
        .map(|(index, &weight)| Turn {
            index,
            turn: 0,
            weight,
        })
        .collect();
    let mut schedule = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    while let Some(mut next) = heap.pop() {
        schedule.push(u32::try_from(next.index).unwrap_or(0));
        next.turn += 1;
        if next.turn < next.weight {
            heap.push(next);
        }
    }
    schedule
}

/// A backend's next turn in the weighted cycle, ordered so that the
/// max-heap pops the earliest due time first.
#[derive(Debug, PartialEq, Eq)]
struct Turn {
    index: usize,
    turn: u64,
    weight: u64,
}

impl Turn {
    /// Due time `(2k + 1) / (2w)`, compared by cross-multiplication.
    fn earlier_than(&self, other: &Turn) -> std::cmp::Ordering {
        let mine = (2 * self.turn + 1) * other.weight;
        let theirs = (2 * other.turn + 1) * self.weight;
        mine.cmp(&theirs).then(self.index.cmp(&other.index))
    }
}

impl Ord for Turn {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.earlier_than(other).reverse()
    }
}

impl PartialOrd for Turn {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_schedule_divides_by_the_gcd_and_scales() {
        assert_eq!(smooth_weighted_schedule(&[100, 200]).len(), 3);
        assert_eq!(smooth_weighted_schedule(&[2, 2, 2]), vec![0, 1, 2]);
        let big: Vec<u32> = (0..1000).map(|i| 1 + (i % 1000)).collect();
        let schedule = smooth_weighted_schedule(&big);
        assert_eq!(
            schedule.len() as u64,
            big.iter().map(|&w| u64::from(w)).sum::<u64>()
        );
        assert_eq!(schedule.iter().filter(|&&i| i == 999).count(), 1000);
    }
}
