//! The broad corpus's manifest (`corpus/manifest.json`, written by `scripts/build_corpus.sh`):
//! every source names its package, version and licence, none is reserved for held-out
//! evaluation, and the sizes are what the default bank and training need.

use serde_json::Value;

fn manifest() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/manifest.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn every_source_has_a_package_a_version_and_a_licence() {
    let m = manifest();
    let sources = m["sources"].as_array().unwrap();
    assert!(sources.len() >= 8, "{} sources", sources.len());
    let mut total = 0;
    for s in sources {
        let name = s["name"].as_str().unwrap();
        assert!(!s["licence"].as_str().unwrap().is_empty(), "{name}");
        assert!(!s["kind"].as_str().unwrap().is_empty(), "{name}");
        let packages = s["packages"].as_array().unwrap();
        assert!(!packages.is_empty(), "{name}");
        for p in packages {
            for field in ["package", "registry", "version", "sha256"] {
                assert!(
                    !p[field].as_str().unwrap_or("").is_empty(),
                    "{name}: {field}"
                );
            }
        }
        total += s["sentences"].as_u64().unwrap();
    }
    assert_eq!(total, m["totals"]["sentences"].as_u64().unwrap());
}

#[test]
fn no_reserved_source_is_in_the_corpus() {
    let m = manifest();
    for s in m["sources"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap().to_lowercase();
        let kind = s["kind"].as_str().unwrap().to_lowercase();
        assert!(!name.contains("fortune"), "{name}");
        assert!(!kind.contains("description"), "{name}: {kind}");
        assert!(!kind.contains("docstring"), "{name}: {kind}");
        assert!(
            !name.contains("wordnet"),
            "{name}: WordNet is banked separately"
        );
        for p in s["packages"].as_array().unwrap() {
            let package = p["package"].as_str().unwrap().to_lowercase();
            assert!(!package.starts_with("fortune"), "{name}: {package}");
        }
    }
}

#[test]
fn the_splits_are_large_enough_and_held_out_sources_stay_out() {
    let m = manifest();
    let totals = &m["totals"];
    assert!(totals["train_plus_validation"].as_u64().unwrap() >= 500_000);
    let held_out: Vec<&Value> = m["sources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["split"] == "ood")
        .collect();
    assert!(held_out.len() >= 2, "at least two whole sources held out");
    for s in held_out {
        assert_eq!(s["by_split"]["train"], 0, "{}", s["name"]);
        assert_eq!(s["by_split"]["validation"], 0, "{}", s["name"]);
    }
}
