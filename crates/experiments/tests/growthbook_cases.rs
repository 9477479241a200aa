//! GrowthBook's own language-independent SDK cases (`../shared/data/growthbook-sdk-cases/
//! cases.json`, spec 0.5.0; see its SOURCE.md): every case of `hash`, `getBucketRange`,
//! `chooseVariation`, `inNamespace` and `getEqualWeights`, and the `run` cases that use only what
//! [`dermis_experiments::growthbook::assign`] implements. Skipped with a message where the shared
//! data folder is absent, unless `DERMIS_REQUIRE_SHARED_DATA` is set.

use std::path::PathBuf;

use dermis_experiments::growthbook::{
    BucketRange, Experiment, Namespace, assign, bucket_ranges, choose_variation, equal_weights, hash, in_namespace,
};
use serde_json::Value;

/// The cases file, or `None` (with a message) where the shared data folder is absent;
/// `.ci/run` sets `DERMIS_REQUIRE_SHARED_DATA=1` so it fails there instead.
fn cases() -> Option<Value> {
    // Cargo sets CARGO_MANIFEST_DIR when it runs the test; the compile-time value is the fallback.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    let path = PathBuf::from(manifest).join("../../../shared/data/growthbook-sdk-cases/cases.json");
    if !path.exists() {
        assert!(
            std::env::var("DERMIS_REQUIRE_SHARED_DATA").is_err(),
            "DERMIS_REQUIRE_SHARED_DATA is set but {} is missing",
            path.display()
        );
        eprintln!("skipped: {} not found (the shared data set is not part of the repository)", path.display());
        return None;
    }
    let text = std::fs::read_to_string(&path).expect("read cases.json");
    Some(serde_json::from_str(&text).expect("parse cases.json"))
}

fn section<'a>(cases: &'a Value, name: &str) -> &'a [Value] {
    cases[name].as_array().unwrap_or_else(|| panic!("section {name} missing")).as_slice()
}

/// The reference runner floors numbers to 8 decimals before comparing.
fn floor8(x: f64) -> f64 {
    (x * 1e8).floor() / 1e8
}

fn ranges(v: &Value) -> Vec<BucketRange> {
    v.as_array().unwrap().iter().map(|r| BucketRange::new(r[0].as_f64().unwrap(), r[1].as_f64().unwrap())).collect()
}

#[test]
fn hash_cases() {
    let Some(c) = cases() else { return };
    let cases = section(&c, "hash");
    for case in cases {
        let (seed, value) = (case[0].as_str().unwrap(), case[1].as_str().unwrap());
        let version = case[2].as_u64().unwrap() as u32;
        let got = hash(seed, value, version);
        assert_eq!(got, case[3].as_f64(), "hash({seed:?}, {value:?}, {version})");
    }
    assert_eq!(cases.len(), 15);
}

#[test]
fn bucket_range_cases() {
    let Some(c) = cases() else { return };
    let cases = section(&c, "getBucketRange");
    for case in cases {
        let name = case[0].as_str().unwrap();
        let args = &case[1];
        let n = args[0].as_u64().unwrap() as usize;
        let coverage = args[1].as_f64().unwrap();
        let weights: Option<Vec<f64>> = args[2].as_array().map(|w| w.iter().map(|x| x.as_f64().unwrap()).collect());
        let got: Vec<(f64, f64)> =
            bucket_ranges(n, coverage, weights.as_deref()).iter().map(|r| (floor8(r.start), floor8(r.end))).collect();
        let want: Vec<(f64, f64)> = ranges(&case[2]).iter().map(|r| (floor8(r.start), floor8(r.end))).collect();
        assert_eq!(got, want, "{name}");
    }
    assert_eq!(cases.len(), 13);
}

#[test]
fn choose_variation_cases() {
    let Some(c) = cases() else { return };
    let cases = section(&c, "chooseVariation");
    for case in cases {
        let name = case[0].as_str().unwrap();
        let got = choose_variation(case[1].as_f64().unwrap(), &ranges(&case[2]));
        let want = case[3].as_i64().unwrap();
        assert_eq!(got.map_or(-1, |i| i as i64), want, "{name}");
    }
    assert_eq!(cases.len(), 13);
}

#[test]
fn in_namespace_cases() {
    let Some(c) = cases() else { return };
    let cases = section(&c, "inNamespace");
    for case in cases {
        let name = case[0].as_str().unwrap();
        let ns = &case[2];
        let namespace = Namespace::new(ns[0].as_str().unwrap(), ns[1].as_f64().unwrap(), ns[2].as_f64().unwrap());
        assert_eq!(in_namespace(case[1].as_str().unwrap(), &namespace), case[3].as_bool().unwrap(), "{name}");
    }
    assert_eq!(cases.len(), 16);
}

#[test]
fn equal_weights_cases() {
    let Some(c) = cases() else { return };
    let cases = section(&c, "getEqualWeights");
    for case in cases {
        // GrowthBook takes any number; a negative count is an empty list, as 0.
        let n = usize::try_from(case[0].as_i64().unwrap()).unwrap_or(0);
        let got: Vec<f64> = equal_weights(n).into_iter().map(floor8).collect();
        let want: Vec<f64> = case[1].as_array().unwrap().iter().map(|x| floor8(x.as_f64().unwrap())).collect();
        assert_eq!(got, want, "getEqualWeights({})", case[0]);
    }
    assert_eq!(cases.len(), 6);
}

/// Context fields beyond `attributes`, and experiment fields beyond these, need parts of
/// GrowthBook `assign` does not implement (conditions, forced variations, URL overrides, QA
/// mode, filters): such cases are skipped.
const SUPPORTED_EXPERIMENT_FIELDS: &[&str] = &[
    "key",
    "variations",
    "weights",
    "coverage",
    "namespace",
    "hashVersion",
    "seed",
    "ranges",
    "active",
    "hashAttribute",
];

#[test]
fn run_cases_of_the_basic_experiment() {
    let Some(c) = cases() else { return };
    let cases = section(&c, "run");
    let mut checked = 0;
    for case in cases {
        let name = case[0].as_str().unwrap();
        let (context, exp) = (case[1].as_object().unwrap(), case[2].as_object().unwrap());
        if context.keys().any(|k| k != "attributes") || exp.keys().any(|k| !SUPPORTED_EXPERIMENT_FIELDS.contains(&&**k))
        {
            continue;
        }
        let variations = exp["variations"].as_array().unwrap();
        let experiment = Experiment {
            key: exp["key"].as_str().unwrap().to_owned(),
            seed: exp.get("seed").and_then(Value::as_str).map(str::to_owned),
            // GrowthBook's default for an experiment that does not say is version 1.
            hash_version: exp.get("hashVersion").and_then(Value::as_u64).unwrap_or(1) as u32,
            variations: variations.len(),
            weights: exp.get("weights").map(|w| w.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()),
            coverage: exp.get("coverage").and_then(Value::as_f64).unwrap_or(1.0),
            namespace: exp
                .get("namespace")
                .map(|ns| Namespace::new(ns[0].as_str().unwrap(), ns[1].as_f64().unwrap(), ns[2].as_f64().unwrap())),
            ranges: exp.get("ranges").map(ranges),
            active: exp.get("active").and_then(Value::as_bool).unwrap_or(true),
        };
        let attribute = exp.get("hashAttribute").and_then(Value::as_str).unwrap_or("id");
        let id = match context.get("attributes").and_then(|a| a.get(attribute)) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        let assigned = assign(&experiment, &id);
        let value = &variations[assigned.unwrap_or(0)];
        assert_eq!(value, &case[3], "{name}: value");
        assert_eq!(assigned.is_some(), case[4].as_bool().unwrap(), "{name}: inExperiment");
        assert_eq!(assigned.is_some(), case[5].as_bool().unwrap(), "{name}: hashUsed");
        checked += 1;
    }
    eprintln!("run: checked {checked} of {} cases", cases.len());
    assert_eq!(checked, 55, "the basic-experiment subset of `run`");
}
