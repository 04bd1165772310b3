//! Splitting the training data among nodes: disjoint random shards that together hold every sample once.
//! A node is given a [`Dataset`] built from its shard alone, so it cannot read another node's samples.

use crate::data::Dataset;
use crate::error::{Error, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Splits sample indices `0..count` into `parts` disjoint shards of sizes differing by at most one, at random
/// (seeded). Each shard's indices are ascending.
pub fn shard_indices(count: usize, parts: usize, seed: u64) -> Result<Vec<Vec<usize>>> {
    if parts == 0 {
        return Err(Error::Distributed("no nodes to give the data to".into()));
    }
    if parts > count {
        return Err(Error::Distributed(format!(
            "{parts} shards but only {count} training samples: every node needs at least one \
             (use fewer nodes or more data)"
        )));
    }
    let mut order: Vec<usize> = (0..count).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x5348_4152_4453));
    let (base, extra) = (count / parts, count % parts);
    let mut shards = Vec::with_capacity(parts);
    let mut start = 0;
    for p in 0..parts {
        let len = base + usize::from(p < extra);
        let mut shard = order[start..start + len].to_vec();
        shard.sort_unstable();
        shards.push(shard);
        start += len;
    }
    Ok(shards)
}

/// The samples `indices` of `data`, as a dataset of their own.
pub fn subset(data: &Dataset, indices: &[usize]) -> Dataset {
    let mut pixels = Vec::with_capacity(indices.len() * data.image_len());
    let mut labels = Vec::with_capacity(indices.len());
    for &i in indices {
        pixels.extend_from_slice(data.image(i));
        labels.push(data.labels[i]);
    }
    Dataset {
        count: indices.len(),
        rows: data.rows,
        cols: data.cols,
        pixels,
        labels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_disjoint_complete_and_balanced() {
        for (count, parts) in [(10, 3), (60_000, 6), (7, 7), (1000, 1)] {
            let shards = shard_indices(count, parts, 42).unwrap();
            assert_eq!(shards.len(), parts);
            let mut seen = vec![0u8; count];
            for s in &shards {
                assert!(s.windows(2).all(|w| w[0] < w[1]));
                for &i in s {
                    seen[i] += 1;
                }
            }
            assert!(
                seen.iter().all(|&c| c == 1),
                "every sample in exactly one shard"
            );
            let (min, max) = (
                shards.iter().map(Vec::len).min().unwrap(),
                shards.iter().map(Vec::len).max().unwrap(),
            );
            assert!(max - min <= 1);
        }
        // Random, not contiguous: the first shard is not 0..n.
        let s = shard_indices(600, 6, 1).unwrap();
        assert_ne!(s[0], (0..100).collect::<Vec<_>>());
        assert_eq!(s, shard_indices(600, 6, 1).unwrap(), "seeded");
        assert_ne!(s, shard_indices(600, 6, 2).unwrap());
    }

    #[test]
    fn more_shards_than_samples_is_refused() {
        let e = shard_indices(5, 6, 1).unwrap_err().to_string();
        assert!(e.contains("6 shards but only 5 training samples"), "{e}");
        assert!(shard_indices(5, 0, 1).is_err());
    }

    #[test]
    fn a_subset_holds_exactly_its_samples() {
        let data = Dataset {
            count: 4,
            rows: 1,
            cols: 2,
            pixels: vec![0, 1, 10, 11, 20, 21, 30, 31],
            labels: vec![0, 1, 2, 3],
        };
        let s = subset(&data, &[1, 3]);
        assert_eq!(
            (s.count, s.pixels, s.labels),
            (2, vec![10, 11, 30, 31], vec![1, 3])
        );
    }
}
