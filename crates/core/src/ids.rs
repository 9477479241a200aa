//! Identifiers: a short type prefix and a ULID (`prd_01JD...`), so ids sort by creation time and a
//! stray id in a log says what it names.

use std::sync::Mutex;

/// One monotonic generator for the process: ids made in the same millisecond still sort in the
/// order they were made, which keeps outboxes and cursors in creation order.
static GENERATOR: Mutex<Option<ulid::Generator>> = Mutex::new(None);

/// A new identifier `"{prefix}_{ulid}"` in lower case.
pub fn new_id(prefix: &str) -> String {
    let ulid = {
        let mut g = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
        g.get_or_insert_with(ulid::Generator::new).generate().unwrap_or_else(|_| ulid::Ulid::new())
    };
    format!("{prefix}_{}", ulid.to_string().to_ascii_lowercase())
}

/// True when `id` has the shape of an id made by [`new_id`] with this prefix.
pub fn is_id(prefix: &str, id: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|u| u.len() == 26 && u.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_their_prefix_and_sort_by_time() {
        let ids: Vec<String> = (0..1000).map(|_| new_id("prd")).collect();
        assert!(is_id("prd", &ids[0]));
        assert!(!is_id("sku", &ids[0]));
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "same-millisecond ids keep their order");
    }
}
