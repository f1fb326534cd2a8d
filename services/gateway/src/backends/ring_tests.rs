use super::*;

const KEYS: u64 = 100_000;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("backend-{i}")).collect()
}

/// The owner's name of each of `KEYS` keys ("user-0", "user-1", ...).
fn owners(names: &[String], weights: &[u32]) -> Vec<String> {
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let ring = HashRing::build(&refs, weights);
    (0..KEYS)
        .map(|k| {
            let i = ring
                .owner(hash_key(format!("user-{k}").as_bytes()))
                .unwrap();
            names[i].clone()
        })
        .collect()
}

/// Fraction of keys whose owner changed, after checking that every moved
/// key either left a backend that is gone or went to one that is new.
fn moved(before: &[String], after: &[String], old: &[String], new: &[String]) -> f64 {
    let mut moved = 0;
    for (b, a) in before.iter().zip(after) {
        if b != a {
            moved += 1;
            let left_removed = !new.contains(b);
            let went_to_added = !old.contains(a);
            assert!(
                left_removed || went_to_added,
                "a key moved from {b} to {a}, both of which stayed"
            );
        }
    }
    f64::from(moved) / KEYS as f64
}

#[test]
fn adding_one_of_ten_moves_about_a_tenth_of_the_keys() {
    let old = names(10);
    let new = names(11);
    let before = owners(&old, &[1; 10]);
    let after = owners(&new, &[1; 11]);
    let share = moved(&before, &after, &old, &new);
    // Fair share of the new backend: 1/11 ≈ 9.1%.
    assert!((0.05..0.15).contains(&share), "moved {share}");
}

#[test]
fn removing_one_of_ten_moves_about_a_tenth_of_the_keys() {
    let old = names(10);
    let mut new = names(10);
    new.remove(3);
    let before = owners(&old, &[1; 10]);
    let after = owners(&new, &[1; 9]);
    let share = moved(&before, &after, &old, &new);
    assert!((0.05..0.15).contains(&share), "moved {share}");
    // Exactly the removed backend's keys moved.
    let had = before.iter().filter(|o| *o == "backend-3").count();
    assert_eq!(share, had as f64 / KEYS as f64);
}

#[test]
fn keys_spread_evenly_and_follow_weights() {
    let n = names(3);
    let counts = |owners: &[String]| -> Vec<usize> {
        n.iter()
            .map(|name| owners.iter().filter(|o| *o == name).count())
            .collect()
    };
    let even = counts(&owners(&n, &[1, 1, 1]));
    for c in &even {
        let share = *c as f64 / KEYS as f64;
        assert!((0.25..0.42).contains(&share), "shares {even:?}");
    }
    let weighted = counts(&owners(&n, &[2, 1, 1]));
    let ratio = weighted[0] as f64 / ((weighted[1] + weighted[2]) as f64 / 2.0);
    assert!(
        (1.6..2.5).contains(&ratio),
        "weight 2 got {ratio}× ({weighted:?})"
    );
}

#[test]
fn registration_order_does_not_change_the_ring() {
    let a = names(5);
    let mut b = a.clone();
    b.reverse();
    let oa = owners(&a, &[1; 5]);
    let ob = owners(&b, &[1; 5]);
    assert_eq!(oa, ob);
}

#[test]
fn points_are_capped_and_every_backend_keeps_one() {
    let n = names(1024);
    let refs: Vec<&str> = n.iter().map(String::as_str).collect();
    let ring = HashRing::build(&refs, &[1000; 1024]);
    assert!(ring.len() as u64 <= MAX_POINTS + 1024);
    let mut seen = vec![false; 1024];
    for owner in &ring.owners {
        seen[*owner as usize] = true;
    }
    assert!(seen.iter().all(|s| *s));
}

#[test]
fn the_walk_starts_at_the_owner_and_wraps() {
    let ring = HashRing::build(&["a", "b"], &[1, 1]);
    assert_eq!(ring.owner(u64::MAX), Some(ring.owners[0] as usize));
    assert_eq!(ring.walk(0).count(), ring.len());
    assert!(HashRing::default().owner(7).is_none());
}
