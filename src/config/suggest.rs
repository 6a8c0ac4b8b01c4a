//! "Did you mean": the nearest of the names valid at a place, for a name
//! the file misspelt, and the message for an unknown key that names it,
//! suggests the nearest valid one and lists every key valid there, so that
//! a user fixes a typo from the message alone.

/// The candidate nearest to `word`, when one is near enough to be what
/// was meant (Jaro-Winkler similarity, which favours a shared prefix:
/// `schedul` → `schedule`, `timout` → `timeout`, `dayly` → `daily`).
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// "unknown field `key`; did you mean `…`? Valid keys here: …", with the
/// valid keys in groups (label, keys), e.g. the keys of every collector
/// and those of its kind.
pub fn unknown_key(key: &str, groups: &[(&str, &[String])]) -> String {
    let all = groups
        .iter()
        .flat_map(|(_, keys)| keys.iter().map(String::as_str));
    let mut m = format!("unknown field `{key}`");
    if let Some(n) = nearest(key, all) {
        m.push_str(&format!("; did you mean `{n}`?"));
    }
    let listed: Vec<String> = groups
        .iter()
        .filter(|(_, keys)| !keys.is_empty())
        .map(|(label, keys)| {
            if label.is_empty() {
                keys.join(", ")
            } else {
                format!("{} ({label})", keys.join(", "))
            }
        })
        .collect();
    if listed.is_empty() {
        m.push_str(" (no keys are valid here)");
    } else {
        m.push_str(&format!(" Valid keys here: {}", listed.join("; ")));
    }
    m
}

/// Rewrites serde's "unknown field `x`, expected one of `a`, `b`" (or
/// "expected `a`", or "there are no fields") into [`unknown_key`]'s form;
/// other messages are returned unchanged.
pub fn rewrite_serde(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_string();
    };
    let Some((key, tail)) = rest.split_once('`') else {
        return message.to_string();
    };
    let valid = expected_names(tail);
    unknown_key(key, &[("", valid.as_slice())])
}

/// The keys an [`unknown_key`] message (or serde's own) lists as valid:
/// how a kind's settings struct is asked which keys it accepts. `None`
/// when the message is about something else.
pub fn valid_keys_in(message: &str) -> Option<Vec<String>> {
    if !message.starts_with("unknown field `") {
        return None;
    }
    if message.ends_with("(no keys are valid here)") || message.contains("there are no fields") {
        return Some(Vec::new());
    }
    if let Some((_, list)) = message.split_once(" Valid keys here: ") {
        return Some(
            list.split([',', ';'])
                .map(|k| k.trim().to_string())
                .collect(),
        );
    }
    let (_, tail) = message.split_once("` ")?;
    Some(expected_names(tail)).filter(|v| !v.is_empty())
}

/// The backquoted names after "expected" in a serde unknown-field message.
pub fn expected_names(tail: &str) -> Vec<String> {
    let Some((_, list)) = tail.split_once("expected") else {
        return Vec::new();
    };
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_are_suggested_and_strangers_are_not() {
        let keys = ["name", "kind", "schedule", "timeout", "retries"];
        assert_eq!(nearest("schedul", keys), Some("schedule"));
        assert_eq!(nearest("timout", keys), Some("timeout"));
        assert_eq!(nearest("repository", keys), None);
        assert_eq!(
            nearest("dayly", ["hourly", "daily", "weekly"]),
            Some("daily")
        );
    }

    #[test]
    fn serde_messages_are_rewritten_with_every_key() {
        let m = rewrite_serde("unknown field `concurrence`, expected one of `id`, `concurrency`");
        assert_eq!(
            m,
            "unknown field `concurrence`; did you mean `concurrency`? Valid keys here: id, concurrency"
        );
        assert_eq!(rewrite_serde("missing field `x`"), "missing field `x`");
        assert_eq!(
            rewrite_serde("unknown field `z`, there are no fields"),
            "unknown field `z` (no keys are valid here)"
        );
        assert_eq!(
            valid_keys_in(&rewrite_serde(
                "unknown field `p`, expected one of `a`, `b_c`"
            )),
            Some(vec!["a".to_string(), "b_c".to_string()])
        );
        assert_eq!(valid_keys_in("missing field `x`"), None);
    }
}
