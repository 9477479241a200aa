//! Words as the index reads them, and the vocabulary a query word is matched against: whole
//! words, the last query word as a prefix, and typos.
//!
//! A text is folded the way ingredient names are ([`dermis_ingredients::inci::key`]: lower case,
//! common accents), then decomposed (NFKD) with its combining marks dropped (so every accent folds,
//! `crème` = `creme`, and ligatures such as `ﬁ` open up), and cut into runs of letters and digits.
//! Query words go through the same steps, so a word matches a word, never a part of one: `c`
//! never matches inside `face`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use dermis_ingredients::inci::key;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// The longest word kept (longer runs are cut): bounds the typo search's work.
pub const MAX_WORD_CHARS: usize = 40;

/// Calls `f` with each search word of `text`, in order.
pub fn for_each_word(text: &str, mut f: impl FnMut(&str)) {
    let keyed = key(text);
    let mut word = String::with_capacity(16);
    let mut chars = 0;
    let push = |c: char, word: &mut String, chars: &mut usize| {
        if *chars < MAX_WORD_CHARS {
            word.push(c);
            *chars += 1;
        }
    };
    for c in keyed.nfkd() {
        if is_combining_mark(c) {
            continue;
        }
        let folded: &str = match c {
            'æ' | 'Æ' => "ae",
            'œ' | 'Œ' => "oe",
            'ß' => "ss",
            'ø' | 'Ø' => "o",
            'đ' | 'Đ' => "d",
            'ł' | 'Ł' => "l",
            'ı' => "i",
            _ => "",
        };
        if !folded.is_empty() {
            for c in folded.chars() {
                push(c, &mut word, &mut chars);
            }
        } else if c.is_alphanumeric() {
            for l in c.to_lowercase() {
                push(l, &mut word, &mut chars);
            }
        } else if !word.is_empty() {
            f(&word);
            word.clear();
            chars = 0;
        }
    }
    if !word.is_empty() {
        f(&word);
    }
}

/// The search words of `text`.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_word(text, |w| out.push(w.to_owned()));
    out
}

/// How a vocabulary word matched a query word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Match {
    /// The same word.
    Exact,
    /// The query word (the last one) starts it.
    Prefix,
    /// One edit away (or one edit away from a prefix of it).
    Typo1,
    /// Two edits away.
    Typo2,
}

impl Match {
    /// How much of a word's score a match of this kind keeps.
    pub fn weight(self) -> f32 {
        match self {
            Self::Exact => 1.0,
            Self::Prefix => 0.75,
            Self::Typo1 => 0.55,
            Self::Typo2 => 0.35,
        }
    }
}

/// Edits a query word of `chars` characters may contain: none under 5, one from 5, two from 9.
pub fn typo_budget(chars: usize) -> usize {
    match chars {
        0..=4 => 0,
        5..=8 => 1,
        _ => 2,
    }
}

/// Every word the index has seen, each with a number (its postings are kept under it). Words are
/// never forgotten while the index lives (a word whose products changed keeps an empty posting
/// list); a rebuild starts a new vocabulary.
#[derive(Debug, Default)]
pub struct Vocabulary {
    ids: HashMap<Arc<str>, u32>,
    /// Sorted, for prefixes.
    sorted: BTreeMap<Arc<str>, u32>,
    /// By first character and length in characters, for typos.
    buckets: HashMap<(char, usize), Vec<u32>>,
    words: Vec<Arc<str>>,
}

impl Vocabulary {
    /// The number of `word`, added if new.
    pub fn intern(&mut self, word: &str) -> u32 {
        if let Some(&id) = self.ids.get(word) {
            return id;
        }
        let id = self.words.len() as u32;
        let w: Arc<str> = Arc::from(word);
        self.ids.insert(w.clone(), id);
        self.sorted.insert(w.clone(), id);
        if let Some(first) = word.chars().next() {
            self.buckets.entry((first, word.chars().count())).or_default().push(id);
        }
        self.words.push(w);
        id
    }

    /// The number of `word`, if known.
    pub fn get(&self, word: &str) -> Option<u32> {
        self.ids.get(word).copied()
    }

    /// How many words.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The word numbered `id`.
    pub fn word(&self, id: u32) -> &str {
        &self.words[id as usize]
    }

    /// The vocabulary words `query` matches, each once with its best kind of match, pushed to
    /// `out`. `last` makes it a prefix too (from two characters: one letter as a prefix would
    /// match a large part of the vocabulary and say nothing). Typos need the first letter right
    /// (a first-letter typo is rare and matches too much) and a word of 5 characters or more.
    pub fn expand(&self, query: &str, last: bool, out: &mut Vec<(u32, Match)>) {
        let start = out.len();
        if let Some(id) = self.get(query) {
            out.push((id, Match::Exact));
        }
        let qchars = query.chars().count();
        if last && qchars >= 2 {
            for (w, &id) in self.sorted.range::<str, _>((std::ops::Bound::Excluded(query), std::ops::Bound::Unbounded))
            {
                if !w.starts_with(query) {
                    break;
                }
                out.push((id, Match::Prefix));
            }
        }
        let budget = typo_budget(qchars);
        let Some(first) = query.chars().next() else { return };
        if budget == 0 {
            return;
        }
        let q: Vec<char> = query.chars().collect();
        let mut scratch = Scratch::default();
        let longest = if last { MAX_WORD_CHARS } else { qchars + budget };
        for len in qchars.saturating_sub(budget).max(1)..=longest {
            let Some(ids) = self.buckets.get(&(first, len)) else { continue };
            for &id in ids {
                let w = &self.words[id as usize];
                let Some(d) = distance(&q, w, budget, last, &mut scratch) else { continue };
                if d == 0 {
                    continue; // exact or prefix, pushed above
                }
                let kind = if d == 1 { Match::Typo1 } else { Match::Typo2 };
                if !out[start..].iter().any(|(seen, _)| *seen == id) {
                    out.push((id, kind));
                }
            }
        }
    }
}

#[derive(Default)]
struct Scratch {
    word: Vec<char>,
    rows: [Vec<usize>; 3],
}

/// The optimal-string-alignment distance (a swap of neighbours counts as one edit) between
/// `query` and `word`, or with `prefix` between `query` and the closest prefix of `word`; `None`
/// when above `budget`.
fn distance(query: &[char], word: &str, budget: usize, prefix: bool, s: &mut Scratch) -> Option<usize> {
    s.word.clear();
    // A prefix within `budget` edits of the query is at most `budget` longer than it.
    let keep = if prefix { query.len() + budget } else { usize::MAX };
    s.word.extend(word.chars().take(keep));
    let (q, w) = (query, &s.word[..]);
    if !prefix && q.len().abs_diff(w.len()) > budget {
        return None;
    }
    // Rows over the query's characters; columns over the word's.
    let cols = w.len() + 1;
    for r in &mut s.rows {
        r.clear();
        r.resize(cols, 0);
    }
    let [prev2, prev, cur] = &mut s.rows;
    for (j, v) in prev.iter_mut().enumerate() {
        *v = j;
    }
    for i in 1..=q.len() {
        cur[0] = i;
        let mut row_min = cur[0];
        for j in 1..cols {
            let cost = usize::from(q[i - 1] != w[j - 1]);
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && q[i - 1] == w[j - 2] && q[i - 2] == w[j - 1] {
                v = v.min(prev2[j - 2] + 1);
            }
            cur[j] = v;
            row_min = row_min.min(v);
        }
        if row_min > budget {
            return None;
        }
        std::mem::swap(prev2, prev);
        std::mem::swap(prev, cur);
    }
    // `prev` holds the last row.
    let d = if prefix { prev.iter().copied().min().unwrap_or(usize::MAX) } else { prev[cols - 1] };
    (d <= budget).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_fold_accents_and_split_on_anything_else() {
        assert_eq!(words("Crème Brûlée Face-Cream"), ["creme", "brulee", "face", "cream"]);
        assert_eq!(words("Vitamin C+E Ferulic"), ["vitamin", "c", "e", "ferulic"]);
        assert_eq!(words("L'Oréal Kiehl's"), ["l", "oreal", "kiehl", "s"]);
        // `key` folds ß to s before the decomposition sees it.
        assert_eq!(words("ﬁrming Œil Straße Ōkina"), ["firming", "oeil", "strase", "okina"]);
        assert_eq!(words("  --  "), Vec::<String>::new());
        assert_eq!(words(&"a".repeat(100))[0].len(), MAX_WORD_CHARS);
    }

    fn vocab(words: &[&str]) -> Vocabulary {
        let mut v = Vocabulary::default();
        for w in words {
            v.intern(w);
        }
        v
    }

    fn found(v: &Vocabulary, q: &str, last: bool) -> Vec<(String, Match)> {
        let mut out = Vec::new();
        v.expand(q, last, &mut out);
        let mut named: Vec<_> = out.into_iter().map(|(id, m)| (v.word(id).to_owned(), m)).collect();
        named.sort();
        named
    }

    #[test]
    fn one_letter_words_match_only_themselves() {
        let v = vocab(&["c", "cream", "face", "vitamin"]);
        assert_eq!(found(&v, "c", true), [("c".to_owned(), Match::Exact)]);
        assert!(found(&v, "f", true).is_empty());
    }

    #[test]
    fn the_last_word_is_a_prefix() {
        let v = vocab(&["hyaluronic", "hydrating", "hydra", "cream"]);
        assert_eq!(
            found(&v, "hyd", true),
            [("hydra".to_owned(), Match::Prefix), ("hydrating".to_owned(), Match::Prefix)]
        );
        assert!(found(&v, "hyd", false).is_empty());
    }

    #[test]
    fn typos_within_budget() {
        let v = vocab(&["hyaluronic", "serum", "serums", "sebum", "niacinamide", "retinol"]);
        assert_eq!(found(&v, "hyaluronc", false), [("hyaluronic".to_owned(), Match::Typo1)]);
        // Two edits from nine characters: "niacinmde" (two deletions).
        assert_eq!(found(&v, "niacinmde", false), [("niacinamide".to_owned(), Match::Typo2)]);
        // A swap of neighbours is one edit.
        assert_eq!(found(&v, "retinlo", false), [("retinol".to_owned(), Match::Typo1)]);
        assert_eq!(
            found(&v, "serum", false),
            [
                ("sebum".to_owned(), Match::Typo1),
                ("serum".to_owned(), Match::Exact),
                ("serums".to_owned(), Match::Typo1)
            ]
        );
        // Four letters: no typo.
        assert!(found(&v, "srum", false).is_empty());
        // A prefix with a typo: "hyalr" is one edit from "hyalu".
        assert_eq!(found(&v, "hyalr", true), [("hyaluronic".to_owned(), Match::Typo1)]);
    }
}
