//! The phrase index resolution reads entries with (see [`crate::resolve`]): every ingredient
//! name, every phrase of the reviewed list of different substances
//! (`data/different_substances.csv`) and every generic family word, by its words; and the
//! tables that find a name one typo away. Built once with the knowledge base.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use utoipa::ToSchema;

use crate::inci::{fold_accent, is_invisible, key};
use crate::ingredient::Ingredient;

/// Generic words that name a whole family without naming one of its ingredients (`Natural
/// Essential Oils`): the entry may contain any member.
pub(crate) const FAMILY_WORDS: &[(&str, &[&str])] = &[
    ("essential oil", &["essential-oils", "fragrance"]),
    ("essential oils", &["essential-oils", "fragrance"]),
    ("huile essentielle", &["essential-oils", "fragrance"]),
    ("huiles essentielles", &["essential-oils", "fragrance"]),
];

/// Shortest name (in characters) a one-letter typo is corrected on.
pub(crate) const TYPO_MIN_CHARS: usize = 7;

/// A phrase that contains an ingredient's name but is another substance, from the reviewed list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DifferentSubstance {
    /// The phrase as labels write it (`Ethyl Linalool`).
    pub phrase: String,
    /// The ingredient it is not (`linalool`).
    pub not: String,
    /// Why it is another substance.
    pub why: String,
}

/// What a phrase found in a text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phrase {
    /// A name of the ingredient at this index.
    Name(usize),
    /// A reviewed different substance: not the ingredient at this index.
    Not(usize),
    /// A generic word for families (index into [`FAMILY_WORDS`]).
    Family(usize),
}

/// The indexes resolution needs, built with the knowledge base.
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Every name, reviewed phrase and family word, as its words joined by one space.
    phrases: HashMap<String, Vec<Phrase>>,
    /// Most words in one phrase.
    pub(crate) longest: usize,
    /// Names of at least [`TYPO_MIN_CHARS`] characters by key, and each with one character
    /// deleted: (the name's key, its ingredient).
    typo: HashMap<String, Vec<(u32, usize)>>,
    /// The keys `typo` refers to.
    typo_keys: Vec<String>,
    /// Every word of every name: a word that is one of them is a real word, not a typo.
    pub(crate) vocabulary: HashSet<String>,
    /// The reviewed list.
    pub(crate) different: Vec<DifferentSubstance>,
}

/// The words of a text for whole-word matching: lower case, accents folded, invisible characters
/// dropped, runs of letters or runs of digits; with `camel`, a lower-case letter followed by an
/// upper-case one also separates words (`TocopherolLimonene`).
pub fn words(text: &str, camel: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev: Option<char> = None;
    for c in text.chars() {
        if is_invisible(c) || c == '\u{00AD}' {
            continue;
        }
        let boundary = camel && prev.is_some_and(char::is_lowercase) && c.is_uppercase();
        prev = Some(c);
        let c = fold_accent(c);
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let kind_changes = cur.chars().last().is_some_and(|l| l.is_ascii_digit() != c.is_ascii_digit());
        if (boundary || kind_changes) && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Reads the reviewed list (`phrase,not,why`), checking every id.
pub(crate) fn read_different_substances(
    csv_text: &str,
    by_id: &HashMap<String, usize>,
) -> Result<Vec<DifferentSubstance>, String> {
    let mut out = Vec::new();
    for (line, rec) in csv::Reader::from_reader(csv_text.as_bytes()).records().enumerate() {
        let rec = rec.map_err(|e| format!("different_substances.csv: {e}"))?;
        let field = |i: usize| rec.get(i).unwrap_or_default().trim().to_owned();
        let (phrase, not, why) = (field(0), field(1), field(2));
        let bad = |what: &str| format!("different_substances.csv row {}: {what}", line + 2);
        if !by_id.contains_key(&not) {
            return Err(bad(&format!("unknown ingredient {not}")));
        }
        if words(&phrase, false).is_empty() || why.is_empty() {
            return Err(bad("a phrase and a reason are required"));
        }
        out.push(DifferentSubstance { phrase, not, why });
    }
    Ok(out)
}

impl Index {
    /// Builds the indexes over the ingredients and the reviewed list.
    pub(crate) fn new(
        ingredients: &[Ingredient],
        by_key: &HashMap<String, usize>,
        different: Vec<DifferentSubstance>,
    ) -> Self {
        let mut ix = Index { different, ..Index::default() };
        let add = |ix: &mut Index, text: &str, p: Phrase| {
            let w = words(text, false);
            if w.is_empty() {
                return;
            }
            ix.longest = ix.longest.max(w.len());
            let list = ix.phrases.entry(w.join(" ")).or_default();
            if !list.contains(&p) {
                list.push(p);
            }
        };
        for (i, ing) in ingredients.iter().enumerate() {
            for name in std::iter::once(&ing.inci).chain(&ing.synonyms).chain([&ing.id.replace('-', " ")]) {
                add(&mut ix, name, Phrase::Name(i));
            }
        }
        let by_id: HashMap<&str, usize> = ingredients.iter().enumerate().map(|(i, g)| (g.id.as_str(), i)).collect();
        for d in ix.different.clone() {
            add(&mut ix, &d.phrase, Phrase::Not(by_id[d.not.as_str()]));
        }
        for (f, (word, _)) in FAMILY_WORDS.iter().enumerate() {
            add(&mut ix, word, Phrase::Family(f));
        }
        let mut keys: Vec<(&String, &usize)> = by_key.iter().collect();
        keys.sort();
        for k in by_key.keys() {
            ix.vocabulary.extend(name_words(k).into_iter().map(str::to_owned));
        }
        for d in &ix.different {
            ix.vocabulary.extend(name_words(&key(&d.phrase)).into_iter().map(str::to_owned));
        }
        for (k, &i) in keys {
            if k.chars().count() < TYPO_MIN_CHARS {
                continue;
            }
            let n = ix.typo_keys.len() as u32;
            ix.typo_keys.push(k.clone());
            ix.typo.entry(k.clone()).or_default().push((n, i));
            for d in deletions(k) {
                let list = ix.typo.entry(d).or_default();
                if !list.contains(&(n, i)) {
                    list.push((n, i));
                }
            }
        }
        ix
    }

    /// Every phrase in a word list: (first word, word count, what).
    pub(crate) fn find(&self, w: &[String]) -> Vec<(usize, usize, Phrase)> {
        let mut out = Vec::new();
        for start in 0..w.len() {
            let mut joined = String::new();
            for len in 1..=self.longest.min(w.len() - start) {
                if len > 1 {
                    joined.push(' ');
                }
                joined.push_str(&w[start + len - 1]);
                if let Some(found) = self.phrases.get(&joined) {
                    out.extend(found.iter().map(|p| (start, len, *p)));
                }
            }
        }
        out
    }

    /// The names a key may be one typo away from, each once with its ingredient: the index holds
    /// every name and each of its one-character deletions, so a name one insertion, deletion,
    /// substitution or swap away shares a probe (the key, or the key with one character
    /// deleted) with it (a swap at i: the key without its i-th character is the name without its
    /// (i+1)-th). Whether one really is a typo away is for the caller to check.
    pub(crate) fn near(&self, k: &str) -> Vec<(&str, usize)> {
        let mut probes = vec![k.to_owned()];
        probes.extend(deletions(k));
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for p in probes {
            for &(n, i) in self.typo.get(&p).into_iter().flatten() {
                if seen.insert(n) {
                    out.push((self.typo_keys[n as usize].as_str(), i));
                }
            }
        }
        out
    }
}

/// The text with each one character removed.
fn deletions(k: &str) -> Vec<String> {
    k.char_indices()
        .map(|(i, c)| {
            let mut d = String::with_capacity(k.len());
            d.push_str(&k[..i]);
            d.push_str(&k[i + c.len_utf8()..]);
            d
        })
        .collect()
}

/// The words of a key, split at anything but letters and digits.
pub(crate) fn name_words(k: &str) -> Vec<&str> {
    k.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_letters_digits_and_camel_case() {
        assert_eq!(words("Linalool78-70-6", false), ["linalool", "78", "70", "6"]);
        assert_eq!(words("TocopherolLimonene", true), ["tocopherol", "limonene"]);
        assert_eq!(words("TocopherolLimonene", false), ["tocopherollimonene"]);
        assert_eq!(words("D'Limonene (Tocophérol)", false), ["d", "limonene", "tocopherol"]);
        assert_eq!(words("Lina\u{200B}lool", false), ["linalool"]);
    }
}
