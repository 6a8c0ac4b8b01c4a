//! The draw: which records of a stream's population are sampled. Each
//! record's rank is the SHA-256 of `<seed>\n<record key>`; the sample is
//! the `n` lowest ranks. Anyone can redraw it with `sha256sum` and `sort`
//! (the bundle's `verify.sh` does), and a record cannot be swapped in
//! without changing the seed, which the verdict prints.

use crate::evidence::sha256_hex;

/// A record's rank under `seed`: lower ranks are drawn first.
pub fn rank(seed: &str, key: &str) -> String {
    sha256_hex(format!("{seed}\n{key}").as_bytes())
}

/// The `n` record keys of `population` with the lowest ranks under
/// `seed`, in key order (which, with twelve-digit numbers, is stream
/// order).
pub fn draw<'a>(seed: &str, population: &[&'a str], n: usize) -> Vec<&'a str> {
    let mut ranked: Vec<(String, &str)> = population.iter().map(|k| (rank(seed, k), *k)).collect();
    ranked.sort_unstable();
    let mut picked: Vec<&str> = ranked.into_iter().take(n).map(|(_, k)| k).collect();
    picked.sort_unstable();
    picked
}

/// Why a seed cannot be used: it is written on one line of `period.txt`
/// and hashed by `printf '%s'` in `verify.sh`, so it must be one line of
/// printable text.
pub fn check_seed(seed: &str) -> Result<(), String> {
    if seed.trim().is_empty() {
        return Err("the seed is empty: pass --seed with a value of your own choosing".into());
    }
    if seed.chars().any(char::is_control) {
        return Err(
            "the seed holds a control character (a newline, a tab…): use printable text".into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_are_what_sha256sum_prints_and_the_draw_takes_the_lowest() {
        // printf 'audit\nrecords/iam/local/000000000001.json' | sha256sum
        assert_eq!(
            rank("audit", "records/iam/local/000000000001.json"),
            sha256_hex(b"audit\nrecords/iam/local/000000000001.json")
        );
        let keys: Vec<String> = (1..=30)
            .map(|i| crate::evidence::layout::record("iam/local", i))
            .collect();
        let pop: Vec<&str> = keys.iter().map(String::as_str).collect();
        let a = draw("audit", &pop, 5);
        assert_eq!(a, draw("audit", &pop, 5));
        assert_ne!(a, draw("audit-2", &pop, 5));
        assert_eq!(a.len(), 5);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        let lowest = pop.iter().map(|k| rank("audit", k)).min().unwrap();
        assert!(a.iter().any(|k| rank("audit", k) == lowest));
        assert_eq!(draw("audit", &pop[..3], 25).len(), 3);
    }

    #[test]
    fn seeds_are_one_line_of_text() {
        assert!(check_seed("FY2026 audit: ACME").is_ok());
        assert!(check_seed("").is_err());
        assert!(check_seed("a\nb").is_err());
    }
}
