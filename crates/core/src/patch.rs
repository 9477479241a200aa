//! JSON merge-patch (RFC 7396) fields: a member that is absent leaves the value alone, `null`
//! clears it, a value replaces it.

use serde::{Deserialize, Deserializer};

/// Deserializes a nullable patch member into `Some(None)` (clear) or `Some(Some(v))` (set);
/// use with `#[serde(default, deserialize_with = "dermis_core::patch::nullable")]` so an absent
/// member stays `None`.
pub fn nullable<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}
