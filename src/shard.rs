//! Sharding collector streams across replicas.
//!
//! Each replica owns the streams for which it has the highest rendezvous
//! score (hash of stream id and replica index). Every stream has exactly one
//! owner, every replica computes the same answer without talking to the
//! others, and going from N to N+1 replicas moves only the streams the new
//! replica wins — about 1/(N+1) of them — and moves nothing between the old
//! replicas.

use sha2::{Digest, Sha256};

/// This replica's place among `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This replica, from 0.
    pub index: u32,
    /// How many replicas share the work.
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl Shard {
    /// Parses `INDEX/COUNT`, e.g. `2/3`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not INDEX/COUNT, e.g. 0/3"))?;
        let index: u32 = i
            .trim()
            .parse()
            .map_err(|_| format!("`{i}` is not a shard index"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("`{n}` is not a shard count"))?;
        Shard::new(index, count)
    }

    /// A checked shard.
    pub fn new(index: u32, count: u32) -> Result<Self, String> {
        if count == 0 || index >= count {
            return Err(format!(
                "shard index {index} is not below the count {count}"
            ));
        }
        Ok(Shard { index, count })
    }

    /// The replica index from a StatefulSet pod name such as `exhibit-2`.
    pub fn index_from_hostname(hostname: &str) -> Result<u32, String> {
        hostname
            .rsplit_once('-')
            .and_then(|(_, n)| n.parse().ok())
            .ok_or_else(|| format!("host name `{hostname}` does not end in -<ordinal>"))
    }

    /// Whether this replica writes `stream`.
    pub fn owns(&self, stream: &str) -> bool {
        self.count <= 1 || owner(stream, self.count) == self.index
    }
}

/// The replica (of `count`) that owns `stream`.
pub fn owner(stream: &str, count: u32) -> u32 {
    (0..count)
        .max_by_key(|i| {
            let mut h = Sha256::new();
            h.update(stream.as_bytes());
            h.update([0]);
            h.update(i.to_be_bytes());
            let d = h.finalize();
            u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streams() -> Vec<String> {
        (0..3000)
            .map(|i| format!("aws-iam-users/{:012}", 100_000_000_000u64 + i))
            .collect()
    }

    #[test]
    fn every_stream_has_exactly_one_owner_and_shares_are_fair() {
        let n = 4;
        let mut counts = vec![0usize; n as usize];
        for s in streams() {
            let owners: Vec<u32> = (0..n)
                .filter(|&i| Shard::new(i, n).unwrap().owns(&s))
                .collect();
            assert_eq!(owners.len(), 1, "{s}");
            counts[owners[0] as usize] += 1;
        }
        for c in counts {
            assert!((600..900).contains(&c), "unfair share: {c} of 3000");
        }
    }

    #[test]
    fn adding_a_replica_moves_only_what_the_new_one_wins() {
        let all = streams();
        let moved: Vec<&String> = all.iter().filter(|s| owner(s, 3) != owner(s, 4)).collect();
        for s in &moved {
            assert_eq!(owner(s, 4), 3, "{s} moved between old replicas");
        }
        let share = moved.len() as f64 / all.len() as f64;
        assert!((0.2..0.3).contains(&share), "moved {share} of the streams");
    }

    #[test]
    fn parsing() {
        assert_eq!(Shard::parse("2/3").unwrap(), Shard { index: 2, count: 3 });
        assert!(Shard::parse("3/3").is_err());
        assert!(Shard::parse("x").is_err());
        assert_eq!(Shard::index_from_hostname("exhibit-12").unwrap(), 12);
        assert!(Shard::index_from_hostname("exhibit").is_err());
    }
}
