//! Identifiers: a short type prefix and a ULID (`prd_01JD...`), so ids sort by creation time and a
//! stray id in a log says what it names.

/// A new identifier `"{prefix}_{ulid}"` in lower case.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::new().to_string().to_ascii_lowercase())
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
        let a = new_id("prd");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id("prd");
        assert!(is_id("prd", &a));
        assert!(!is_id("sku", &a));
        assert!(a < b);
    }
}
