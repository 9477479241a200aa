//! The label as written: which knowledge-base ingredients a raw declaration names as whole words,
//! read without the INCI parser or the resolver, so that a product whose parse missed an
//! ingredient is still judged by what its label says.
//!
//! The words are those of [`dermis_ingredients::resolve::words`] (any case, accents folded, runs
//! of letters or of digits), read once as written and once with `camelCase` joins split
//! (`TocopherolLimonene`). An ingredient is named where any of its names (INCI, synonyms, id)
//! appears as consecutive words, except where that occurrence lies inside a longer name of another
//! ingredient (`Cetyl Alcohol` is not `Alcohol`) or inside a phrase of the reviewed list of
//! different substances for it (`Ethyl Linalool` is not `Linalool`): the same two ways out as the
//! catalog's own exclusion check (`crates/catalog/tests/exclusion_safety.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use dermis_ingredients::KnowledgeBase;
use dermis_ingredients::resolve::words;

#[derive(Debug, Clone, Copy)]
enum Phrase {
    Name(u32),
    Not(u32),
}

/// Every name and reviewed phrase of a knowledge base, by its words joined with one space.
#[derive(Debug, Clone)]
pub(crate) struct LabelIndex {
    phrases: HashMap<String, Vec<Phrase>>,
    /// Every phrase's proper prefixes (whole words): a scan stops extending past anything else.
    prefixes: HashSet<String>,
    longest: usize,
    by_id: HashMap<String, u32>,
}

/// What a raw declaration says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LabelRead {
    /// Knowledge-base indexes of the ingredients named, ascending, each once.
    pub ids: Vec<u32>,
    /// The words as written.
    pub words: Vec<String>,
    /// The words with `camelCase` joins split, when that differs.
    pub camel_words: Option<Vec<String>>,
    /// A signature of every word above (both readings): a phrase whose words are not all in it
    /// cannot match, so most phrases are ruled out without comparing a string.
    pub sig: WordSig,
}

/// A Bloom-style set of words: 1,024 bits, two per word. [`WordSig::may_contain`] is never wrong
/// when it says no (a filter in front of the exact word comparison, never a substitute for it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WordSig([u64; 16]);

impl WordSig {
    /// The signature of these words.
    pub fn of<'a>(words: impl IntoIterator<Item = &'a String>) -> Self {
        let mut sig = Self::default();
        for w in words {
            // FNV-1a 64, then two bit positions from its halves.
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in w.bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
            for bit in [h & 1023, (h >> 32) & 1023] {
                sig.0[(bit / 64) as usize] |= 1 << (bit % 64);
            }
        }
        sig
    }

    /// Whether every word of `phrase` (its signature) may be among these words.
    pub fn may_contain(&self, phrase: &WordSig) -> bool {
        self.0.iter().zip(&phrase.0).all(|(have, want)| have & want == *want)
    }
}

impl LabelIndex {
    /// The index of `kb` (built once for the bundled knowledge base).
    pub fn of(kb: &KnowledgeBase) -> std::borrow::Cow<'static, LabelIndex> {
        static BUNDLED: OnceLock<LabelIndex> = OnceLock::new();
        if std::ptr::eq(kb, KnowledgeBase::bundled()) {
            std::borrow::Cow::Borrowed(BUNDLED.get_or_init(|| Self::new(kb)))
        } else {
            std::borrow::Cow::Owned(Self::new(kb))
        }
    }

    fn new(kb: &KnowledgeBase) -> Self {
        let mut phrases: HashMap<String, Vec<Phrase>> = HashMap::new();
        let mut by_id: HashMap<String, u32> = HashMap::new();
        for (i, g) in kb.all().iter().enumerate() {
            let i = u32::try_from(i).expect("fewer than 2^32 ingredients");
            by_id.insert(g.id.clone(), i);
            for name in std::iter::once(&g.inci).chain(&g.synonyms).chain([&g.id.replace('-', " ")]) {
                let w = words(name, false);
                if !w.is_empty() {
                    let at = phrases.entry(w.join(" ")).or_default();
                    if !at.iter().any(|p| matches!(p, Phrase::Name(j) if *j == i)) {
                        at.push(Phrase::Name(i));
                    }
                }
            }
        }
        for d in kb.different_substances() {
            if let Some(&i) = by_id.get(d.not.as_str()) {
                let w = words(&d.phrase, false);
                if !w.is_empty() {
                    phrases.entry(w.join(" ")).or_default().push(Phrase::Not(i));
                }
            }
        }
        let longest = phrases.keys().map(|k| k.split(' ').count()).max().unwrap_or(1);
        let mut prefixes = HashSet::new();
        for k in phrases.keys() {
            let mut at = 0;
            while let Some(space) = k[at..].find(' ') {
                prefixes.insert(k[..at + space].to_owned());
                at += space + 1;
            }
        }
        Self { phrases, prefixes, longest, by_id }
    }

    /// Reads a raw declaration.
    pub fn read(&self, raw: &str) -> LabelRead {
        let plain = words(raw, false);
        let camel = words(raw, true);
        let mut ids = self.named(&plain);
        let camel_words = (camel != plain).then(|| {
            ids.extend(self.named(&camel));
            camel
        });
        ids.sort_unstable();
        ids.dedup();
        let sig = WordSig::of(plain.iter().chain(camel_words.iter().flatten()));
        LabelRead { ids, words: plain, camel_words, sig }
    }

    /// The index of an ingredient id in the knowledge base's list.
    pub fn index_of(&self, id: &str) -> Option<u32> {
        self.by_id.get(id).copied()
    }

    /// The ingredients a sequence of words names, by the rule of the module.
    fn named(&self, w: &[String]) -> Vec<u32> {
        let mut found: Vec<(usize, usize, Phrase)> = Vec::new();
        let mut key = String::new();
        for start in 0..w.len() {
            key.clear();
            for len in 1..=self.longest.min(w.len() - start) {
                if len > 1 {
                    key.push(' ');
                }
                key.push_str(&w[start + len - 1]);
                if let Some(ps) = self.phrases.get(key.as_str()) {
                    found.extend(ps.iter().map(|p| (start, len, *p)));
                }
                if !self.prefixes.contains(key.as_str()) {
                    break;
                }
            }
        }
        let mut out = Vec::new();
        for &(start, len, p) in &found {
            let Phrase::Name(i) = p else { continue };
            let excused = found.iter().any(|&(s, l, q)| {
                s <= start
                    && s + l >= start + len
                    && l > len
                    && match q {
                        Phrase::Name(j) => j != i,
                        Phrase::Not(j) => j == i,
                    }
            });
            if !excused {
                out.push(i);
            }
        }
        out
    }
}

/// Whether the label's words (either reading) hold `phrase` as consecutive whole words; `sig` is
/// the phrase's [`WordSig`].
pub(crate) fn label_has(label: &LabelRead, phrase: &[String], sig: &WordSig) -> bool {
    label.sig.may_contain(sig)
        && (contains_words(&label.words, phrase)
            || label.camel_words.as_ref().is_some_and(|c| contains_words(c, phrase)))
}

/// Whether `phrase` (as words) appears in `w` as consecutive whole words.
pub(crate) fn contains_words(w: &[String], phrase: &[String]) -> bool {
    !phrase.is_empty() && w.windows(phrase.len()).any(|x| x == phrase)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(raw: &str) -> Vec<&'static str> {
        let kb = KnowledgeBase::bundled();
        let index = LabelIndex::of(kb);
        index.read(raw).ids.iter().map(|&i| kb.all()[i as usize].id.as_str()).collect()
    }

    #[test]
    fn names_are_whole_words_outside_longer_names() {
        let found = names("Aqua, Cetyl Alcohol, LINALOOL, Parfum");
        assert!(found.contains(&"linalool") && found.contains(&"fragrance"), "{found:?}");
        assert!(found.contains(&"cetyl-alcohol") && !found.contains(&"alcohol"), "{found:?}");
        // Glued names and accents.
        let found = names("TocopherolLimonene, Géraniol");
        assert!(found.contains(&"limonene") && found.contains(&"geraniol"), "{found:?}");
        // A reviewed different substance is not the ingredient it contains.
        let found = names("Ethyl Linalool");
        assert!(!found.contains(&"linalool"), "{found:?}");
        // Not a word of another word.
        assert!(!names("Linaloolish").contains(&"linalool"));
    }

    #[test]
    fn the_signature_never_rules_out_a_phrase_the_label_holds() {
        let index = LabelIndex::of(KnowledgeBase::bundled());
        let label = index.read("Aqua, Cetyl Alcohol, Citrus Aurantium Dulcis (Orange) Peel Oil, TocopherolLimonene");
        // Every run of consecutive words of either reading is found, through the signature.
        for words in std::iter::once(&label.words).chain(label.camel_words.iter()) {
            for start in 0..words.len() {
                for end in start + 1..=words.len().min(start + 4) {
                    let phrase = &words[start..end];
                    assert!(label_has(&label, phrase, &WordSig::of(phrase)), "{phrase:?}");
                }
            }
        }
        // And what is not there is not found (the exact comparison decides).
        for absent in [&["linalool"][..], &["orange", "aqua"], &["alcohol", "cetyl"]] {
            let phrase: Vec<String> = absent.iter().map(|w| (*w).to_owned()).collect();
            assert!(!label_has(&label, &phrase, &WordSig::of(&phrase)), "{phrase:?}");
        }
    }
}
