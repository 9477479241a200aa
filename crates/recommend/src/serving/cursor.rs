//! The cursor of an endless feed: what earlier pages showed, so no product repeats. It holds a
//! 32-bit hash of each product id shown (FNV-1a), base64url, at most [`MAX_SHOWN`]: a client
//! that forges one can only hide products from itself.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Most products a cursor remembers (the oldest are forgotten first).
pub const MAX_SHOWN: usize = 1000;

/// Products already shown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shown(Vec<u32>);

fn fnv1a(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

impl Shown {
    /// Reads a cursor.
    pub fn decode(cursor: &str) -> Result<Self, String> {
        let bad = || "cursor: not a cursor this API returned".to_owned();
        if cursor.len() > MAX_SHOWN * 6 {
            return Err(bad());
        }
        let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| bad())?;
        if bytes.len() % 4 != 0 {
            return Err(bad());
        }
        Ok(Shown(bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()))
    }

    /// The cursor text.
    pub fn encode(&self) -> String {
        let bytes: Vec<u8> = self.0.iter().flat_map(|h| h.to_le_bytes()).collect();
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Whether this product was shown.
    pub fn contains(&self, product_id: &str) -> bool {
        !self.0.is_empty() && self.0.contains(&fnv1a(product_id))
    }

    /// Remembers a product.
    pub fn push(&mut self, product_id: &str) {
        self.0.push(fnv1a(product_id));
        if self.0.len() > MAX_SHOWN {
            self.0.remove(0);
        }
    }

    /// How many it remembers.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it remembers none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_cursors() {
        let mut s = Shown::default();
        s.push("prd_1");
        s.push("prd_2");
        let back = Shown::decode(&s.encode()).unwrap();
        assert!(back.contains("prd_1") && back.contains("prd_2") && !back.contains("prd_3"));
        assert!(Shown::decode("not base64 !").is_err());
        assert!(Shown::decode("AAA").is_err(), "not a whole number of ids");
        assert!(Shown::decode(&"A".repeat(MAX_SHOWN * 7)).is_err());
        for i in 0..MAX_SHOWN + 5 {
            s.push(&format!("p{i}"));
        }
        assert_eq!(s.len(), MAX_SHOWN);
    }
}
