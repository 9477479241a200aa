//! Event keys and ids. On PostgreSQL an event's key is its text id (`evt_<ULID>`). On SQLite it
//! is an integer, `milliseconds << 20 | counter`, issued by the writer thread ([`Keys`]) and
//! shown through the API as `evt_<ULID>` with the key's milliseconds as the ULID's time and its
//! counter as the ULID's low bits, so ids sort and page alike on both backends.

use dermis_store::StoreError;
use dermis_store::db::Backend;
use dermis_store::sqlx::{self, Row};

/// Bits of an event key below the millisecond.
pub(super) const COUNTER_BITS: u32 = 20;

/// The key generator: strictly increasing (a clock that steps back does not reorder events),
/// `ms << COUNTER_BITS` at least.
pub(super) struct Keys {
    pub(super) last: i64,
}

impl Keys {
    /// The next key at `now_ms`.
    pub(super) fn next(&mut self, now_ms: i64) -> i64 {
        let key = (now_ms.max(0) << COUNTER_BITS).max(self.last + 1);
        self.last = key;
        key
    }
}

/// An id below every event stored at or after `ms`: `since(db, &id_floor(t), ..)` starts at
/// time `t`.
pub fn id_floor(ms: i64) -> String {
    dermis_core::ids::floor_at("evt", ms)
}

/// How a SQLite key shows through the API.
fn key_to_id(key: i64) -> String {
    let ms = (key >> COUNTER_BITS) as u64;
    let counter = (key & ((1 << COUNTER_BITS) - 1)) as u128;
    format!("evt_{}", ulid::Ulid::from_parts(ms, counter).to_string().to_ascii_lowercase())
}

/// The largest SQLite key that sorts at or before the id (or id prefix, as [`id_floor`] makes)
/// `after`: keys greater than it are the events after `after`.
fn key_after(after: &str) -> Result<i64, StoreError> {
    let bad = || StoreError::InvalidInput(format!("{after:?} is not an event id"));
    let Some(rest) = after.strip_prefix("evt_") else {
        return if after.is_empty() { Ok(-1) } else { Err(bad()) };
    };
    if rest.len() > 26 || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(bad());
    }
    let padded = format!("{:0<26}", rest.to_ascii_uppercase());
    let u = ulid::Ulid::from_string(&padded).map_err(|_| bad())?;
    let ms = u.timestamp_ms();
    if ms >= 1 << (63 - COUNTER_BITS) {
        return Ok(i64::MAX);
    }
    let counter = u.random().min((1 << COUNTER_BITS) - 1) as i64;
    let key = ((ms as i64) << COUNTER_BITS) | counter;
    // A prefix sorts before every id that starts with it, the zero-padded one included.
    Ok(if rest.len() < 26 { key - 1 } else { key })
}

/// Binds the "after this id" bound of a scan in the backend's key type.
pub(super) fn bind_after<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    backend: Backend,
    after: Option<&str>,
) -> Result<sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>, StoreError> {
    Ok(match backend {
        Backend::Sqlite => q.bind(key_after(after.unwrap_or(""))?),
        Backend::Postgres => q.bind(after.unwrap_or("").to_owned()),
    })
}

/// Reads column `i`, an event key, as the event's id.
pub(super) fn read_id(r: &sqlx::any::AnyRow, i: usize, backend: Backend) -> Result<String, StoreError> {
    Ok(match backend {
        Backend::Sqlite => key_to_id(r.try_get(i)?),
        Backend::Postgres => r.try_get(i)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_keys_show_as_ids_that_sort_like_the_keys_and_read_back() {
        let ms = 1_764_000_000_123_i64;
        let keys =
            [ms << COUNTER_BITS, (ms << COUNTER_BITS) + 1, (ms << COUNTER_BITS) + 70_000, (ms + 1) << COUNTER_BITS];
        let ids: Vec<String> = keys.iter().map(|k| key_to_id(*k)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert!(ids.iter().all(|id| dermis_core::ids::is_id("evt", id)), "{ids:?}");
        for (k, id) in keys.iter().zip(&ids) {
            assert_eq!(key_after(id).unwrap(), *k, "the events after {id} start after its key");
        }
    }

    #[test]
    fn a_time_floor_starts_at_the_first_event_of_that_millisecond() {
        let ms = 1_764_000_000_123_i64;
        let first = ms << COUNTER_BITS;
        let after = key_after(&id_floor(ms)).unwrap();
        assert!(after < first, "the first key of {ms} ({first}) is after the floor ({after})");
        assert!(after >= ((ms - 1) << COUNTER_BITS), "events of the millisecond before are not replayed");
        assert_eq!(key_after("").unwrap(), -1, "no cursor: from the start");
    }

    #[test]
    fn a_cursor_that_is_not_an_event_id_is_refused_as_bad_input() {
        for bad in ["prd_01jd0000000000000000000000", "evt_!!", "evt_zzzzzzzzzzzzzzzzzzzzzzzzzzzz"] {
            assert!(matches!(key_after(bad), Err(StoreError::InvalidInput(_))), "{bad}");
        }
    }

    #[test]
    fn keys_increase_even_when_the_clock_steps_back() {
        let mut keys = Keys { last: 0 };
        let a = keys.next(1_000);
        let b = keys.next(1_000);
        let c = keys.next(900);
        let d = keys.next(1_001);
        assert!(a < b && b < c && c < d, "{a} {b} {c} {d}");
        assert_eq!(a >> COUNTER_BITS, 1_000);
        assert_eq!(d, 1_001 << COUNTER_BITS);
    }
}
