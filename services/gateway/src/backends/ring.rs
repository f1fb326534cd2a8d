//! The consistent-hash ring the `hash` strategy picks from, built with each
//! membership change (never on the request path, and not on state changes:
//! those reuse the ring of the snapshot before).
//!
//! Every registered backend, whatever its state, gets points on a 64-bit
//! ring in proportion to its weight ([`POINTS_PER_WEIGHT`] per unit of
//! weight, scaled down past [`MAX_POINTS`] in all). A point's position is
//! the fixed-seed XXH3 hash of the backend's name and the point's number,
//! so every gateway replica builds the same ring. A key belongs to the
//! first point at or after its hash (wrapping round); when that point's
//! backend is not `up` (or refused for this attempt) the walk goes on to
//! the next point. Adding or removing a backend therefore moves only the
//! keys of the points it gains or loses, and a backend going down moves only
//! its own keys, spread over the backends that follow its points.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Seed of every hash the `hash` strategy computes (keys and ring points):
/// fixed, so all replicas agree.
pub const SEED: u64 = 0x6761_7465_7761_796c;

/// Points per unit of weight: with 100, each backend's share of the keys is
/// within about ±10% (one standard deviation) of its fair share.
pub const POINTS_PER_WEIGHT: u64 = 100;

/// Most points on the ring; past it each backend's count is scaled down
/// (at least one point each), bounding memory (10 bytes a point) and build
/// time.
pub const MAX_POINTS: u64 = 1 << 18;

/// Longest walk along the ring for one pick before giving up on it (the
/// caller then scans the `up` backends).
const MAX_WALK: usize = 4096;

/// The hash of a request's key, as the ring positions are computed.
pub fn hash_key(key: &[u8]) -> u64 {
    xxh3_64_with_seed(key, SEED)
}

/// A sorted ring of points, each owned by an index into the snapshot's
/// `backends`.
#[derive(Debug, Default)]
pub struct HashRing {
    points: Vec<u64>,
    owners: Vec<u16>,
}

impl HashRing {
    /// The ring over backends named `names` with weights `weights` (same
    /// length, at most `u16::MAX` backends).
    pub fn build(names: &[&str], weights: &[u32]) -> Self {
        debug_assert_eq!(names.len(), weights.len());
        let total: u64 = weights.iter().map(|&w| u64::from(w.max(1))).sum();
        let per_weight = if total * POINTS_PER_WEIGHT <= MAX_POINTS {
            POINTS_PER_WEIGHT as f64
        } else {
            MAX_POINTS as f64 / total as f64
        };
        let mut ring: Vec<(u64, u16)> = Vec::new();
        for (i, (name, &w)) in names.iter().zip(weights).enumerate() {
            let Ok(owner) = u16::try_from(i) else { break };
            let count = ((f64::from(w.max(1)) * per_weight).round() as u64).max(1);
            let mut buf = Vec::with_capacity(name.len() + 9);
            for point in 0..count {
                buf.clear();
                buf.extend_from_slice(name.as_bytes());
                buf.push(b'#');
                buf.extend_from_slice(&point.to_le_bytes());
                ring.push((xxh3_64_with_seed(&buf, SEED), owner));
            }
        }
        // Ties (vanishingly rare) are broken by the owner's name so the
        // order does not depend on registration order.
        ring.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| names[a.1 as usize].cmp(names[b.1 as usize]))
        });
        let (points, owners) = ring.into_iter().unzip();
        HashRing { points, owners }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the ring has no points (no backends).
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The owners of the points from `hash`'s place on, in ring order, for
    /// at most [`MAX_WALK`] points: the first is the key's backend, the
    /// next ones where it goes when that one is down or refused.
    pub fn walk(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let n = self.points.len();
        let start = if n == 0 {
            0
        } else {
            self.points.partition_point(|&p| p < hash) % n
        };
        (0..n.min(MAX_WALK)).map(move |i| self.owners[(start + i) % n] as usize)
    }

    /// The backend whose point comes first from `hash`, ignoring state.
    pub fn owner(&self, hash: u64) -> Option<usize> {
        self.walk(hash).next()
    }
}

#[cfg(test)]
#[path = "ring_tests.rs"]
mod tests;
