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

/// An id below every id [`new_id`] makes with this prefix at or after `ms` (the time part of a
/// ULID comes first, so ids compare by time): the start of a scan "since `ms`".
pub fn floor_at(prefix: &str, ms: i64) -> String {
    let time = ulid::Ulid::from_parts(ms.max(0) as u64, 0).to_string().to_ascii_lowercase();
    format!("{prefix}_{}", &time[..10])
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
    fn the_floor_of_a_time_sorts_between_earlier_and_later_ids() {
        let before = new_id("evt");
        std::thread::sleep(std::time::Duration::from_millis(3));
        let t = crate::clock::now_ms();
        std::thread::sleep(std::time::Duration::from_millis(3));
        let after = new_id("evt");
        let floor = floor_at("evt", t);
        assert!(before < floor && floor < after, "{before} < {floor} < {after}");
    }

    #[test]
    fn ids_have_their_prefix_and_sort_by_time() {
        let ids: Vec<String> = (0..1000).map(|_| new_id("prd")).collect();
        assert!(is_id("prd", &ids[0]));
        assert!(!is_id("sku", &ids[0]));
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "same-millisecond ids keep their order");
    }
}
