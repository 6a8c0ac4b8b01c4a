//! The sample method, held to what `sha256sum` and `sort` derive from the
//! population file alone.

use std::process::Command;

use serde_json::json;

use super::*;

fn prs(n: usize) -> Vec<Occurrence> {
    let start: DateTime<Utc> = "2025-01-01T00:00:00Z".parse().unwrap();
    (0..n)
        .map(|i| {
            let mut attributes = Map::new();
            attributes.insert("author".into(), json!(format!("dev{}", i % 7)));
            attributes.insert("approvers".into(), json!([format!("rev{}", i % 5)]));
            attributes.insert(
                "state".into(),
                json!(if i % 11 == 0 { "fail" } else { "pass" }),
            );
            Occurrence {
                // Reverse ids, so that time order and id order differ.
                id: format!("acme/api#{}", 10_000 - i),
                at: start + chrono::Duration::minutes(97 * i as i64),
                attributes,
            }
        })
        .collect()
}

fn sh(script: &str, dir: &std::path::Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn sha256sum_and_sort_redraw_the_same_sample() {
    let mut occ = prs(300);
    occ.reverse();
    let pop = Population::new(occ).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("population.json"), &pop.bytes).unwrap();

    // 1. The population hash.
    let hash = sh("sha256sum population.json | cut -c1-64", dir.path());
    assert_eq!(hash.trim(), pop.sha256);
    // 2. The seed.
    let seed_sh = sh(
        &format!(
            "printf '%s\\n%s\\n%s' 'FY2025 SOC 2' 'github-pr-approved' '{}' | sha256sum | cut -c1-64",
            pop.sha256
        ),
        dir.path(),
    );
    let s = seed("FY2025 SOC 2", "github-pr-approved", &pop.sha256);
    assert_eq!(seed_sh.trim(), s);
    // 3. Ids in population order, straight from the file (flat occurrences).
    let ids = sh(
        r#"grep -o '"id":"[^"]*"' population.json | cut -d'"' -f4"#,
        dir.path(),
    );
    let want: Vec<&str> = pop.occurrences.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids.lines().collect::<Vec<_>>(), want);
    std::fs::write(dir.path().join("ids.txt"), &ids).unwrap();
    // 4 and 5. Ranks, sorted; the 25 lowest.
    let sample = sh(
        &format!(
            r#"while IFS= read -r id; do
                 r=$(printf '%s\n%s' '{s}' "$id" | sha256sum | cut -c1-64)
                 printf '%s %s\n' "$r" "$id"
               done < ids.txt | sort | head -n 25 | cut -d' ' -f2-"#
        ),
        dir.path(),
    );
    let drawn = draw(&pop, &s, 25);
    let ours: Vec<&str> = drawn.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(sample.lines().collect::<Vec<_>>(), ours);
    assert_eq!(drawn.len(), 25);
    for d in &drawn {
        assert_eq!(pop.occurrences[d.index].id, d.id);
    }
}

#[test]
fn the_population_is_canonical_and_in_time_order() {
    let pop = Population::new(prs(3)).unwrap();
    let text = String::from_utf8(pop.bytes.clone()).unwrap();
    assert!(text.starts_with(r#"[{"approvers":["rev0"],"at":"2025-01-01T00:00:00Z","author":"dev0","id":"acme/api#10000","state":"fail"},"#), "{text}");
    assert!(!text.ends_with('\n'));
    let parsed: Value = serde_json::from_slice(&pop.bytes).unwrap();
    assert_eq!(canonical::to_vec(&parsed).unwrap(), pop.bytes);
    // The order does not depend on the order given.
    let mut rev = prs(3);
    rev.reverse();
    assert_eq!(Population::new(rev).unwrap().sha256, pop.sha256);
}

#[test]
fn same_seed_same_sample_changed_population_different_hash() {
    let a = Population::new(prs(200)).unwrap();
    let b = Population::new(prs(200)).unwrap();
    let sa = seed("eng", "c", &a.sha256);
    assert_eq!(
        draw(&a, &sa, 25),
        draw(&b, &seed("eng", "c", &b.sha256), 25)
    );

    let mut changed = prs(200);
    changed[22].attributes.insert("state".into(), json!("pass"));
    let c = Population::new(changed).unwrap();
    assert_ne!(c.sha256, a.sha256);
    assert_ne!(seed("eng", "c", &c.sha256), sa);
    // Another engagement draws another sample from the same population.
    assert_ne!(
        draw(&a, &seed("other", "c", &a.sha256), 25),
        draw(&a, &sa, 25)
    );
    // A given seed is used as is.
    assert_eq!(draw(&a, "given", 3), draw(&c, "given", 3));
    // Asking for more than there is gives everything.
    assert_eq!(draw(&a, &sa, 1000).len(), 200);
}

#[test]
fn ids_must_be_usable_and_unique() {
    let mut occ = prs(2);
    occ[1].id = occ[0].id.clone();
    assert!(matches!(
        Population::new(occ),
        Err(PopulationError::Duplicate(_))
    ));
    let mut occ = prs(1);
    occ[0].id = "a\"b".into();
    assert!(matches!(
        Population::new(occ),
        Err(PopulationError::BadId(_))
    ));
    assert!(!is_occurrence_id("a\nb"));
    assert!(!is_occurrence_id(""));
    assert!(is_occurrence_id("control/aws-console-mfa@12"));
}

#[test]
fn csv_lists_the_chosen_columns() {
    let pop = Population::new(prs(2)).unwrap();
    let csv = pop.to_csv(&["author", "approvers"]);
    assert_eq!(
        csv,
        "id,at,author,approvers\nacme/api#10000,2025-01-01T00:00:00Z,dev0,rev0\nacme/api#9999,2025-01-01T01:37:00Z,dev1,rev1\n"
    );
}
