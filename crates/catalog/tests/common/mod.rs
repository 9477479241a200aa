//! What the catalog's integration tests share.

use std::path::PathBuf;

/// The real Sephora catalog in `../shared/data`, or `None` (with a message) where that folder is
/// absent, as on a user's machine; `.ci/run` sets `DERMIS_REQUIRE_SHARED_DATA=1` so it fails there
/// instead.
pub fn product_info() -> Option<PathBuf> {
    // Cargo sets CARGO_MANIFEST_DIR when it runs the test; the compile-time value is the fallback.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    let path =
        PathBuf::from(manifest).join("../../../shared/data/sephora-products-and-skincare-reviews/product_info.csv.gz");
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("DERMIS_REQUIRE_SHARED_DATA").is_err(),
        "DERMIS_REQUIRE_SHARED_DATA is set but {} is missing",
        path.display()
    );
    eprintln!("skipped: {} not found (the shared data set is not part of the repository)", path.display());
    None
}
