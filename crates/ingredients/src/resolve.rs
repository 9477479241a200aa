//! Resolution that survives real labels, and the conservative rule for what still does not
//! resolve.
//!
//! [`KnowledgeBase::resolve_entry`] reads one declared entry the way labels really write it:
//!
//! 1. **Cleaning**: control and invisible characters, a `\r` read as a letter (`rLimonene`),
//!    CAS (`78-70-6`) and EC (`201-134-4`) numbers, strengths anywhere (`0.4272%`, `80% Vol`),
//!    a note after a footnote mark (`Limonene *antistatic agent`) and `Allergens:` / `Contains:`
//!    prefixes are taken off.
//! 2. **One name**: the whole text, the text outside parentheses, or a slash list whose parts all
//!    name the same ingredient; else the same after an isomer prefix (`d-`, `d'`, `dl-`, `l-`,
//!    `I-`).
//! 3. **Several names**: names glued together (`TocopherolLimonene`, `Limonene Linalool`,
//!    `Hexyl Cinnamal. Linalool`, `Limonene and Fragrance/Parfum`), when every piece is a name
//!    (a `PEG-n` prefix is never a piece of its own: `PEG-75 Lanolin` is one substance).
//! 4. **One typo**: edit distance 1 (a letter more or less, a letter for another, two swapped)
//!    to exactly one ingredient, on names of at least 7 characters and 4 words at most, never on a
//!    digit, never turning a word that is itself a word of some name into another (`Methyl
//!    Anthranilate` stays, it is not `Menthyl Anthranilate`), never on a word under 6 letters,
//!    never changing a first letter (`Bisulfite`/`Disulfite`), never `methyl`/`ethyl`. A vowel
//!    for a vowel (`Citronellal`/`Citronellol`) is only a guess: the entry *may name* it.
//!    Pieces of glued names may carry a typo too (`Courmarin Eugenol`).
//! 5. **Part of it**: otherwise the old rule, a name in the parentheses or one part of a slash
//!    list.
//!
//! Then, whatever was resolved, every knowledge-base name the entry's text writes as whole words
//! (any case, accents folded, runs of letters or of digits, `camelCase` joins split) names an
//! ingredient the entry *may* contain ([`EntryMatch::may_name`]), unless a longer name encloses it
//! (`Benzyl Alcohol` is not `Alcohol`) or the reviewed list of different substances
//! (`data/different_substances.csv`, [`DifferentSubstance`]) says that phrase is another
//! substance (`Ethyl Linalool` is not `Linalool`). That list is the only way out: unknown never
//! reads as "free of". A reviewed phrase also stops a typo correction or a split from declaring
//! the ingredient it is not. Generic family words (`Essential Oils`) name their families.
//!
//! The same rule reads what is not an entry ([`KnowledgeBase::may_name`]: notes, a list printed
//! without commas, a variant header such as `Leila Lou Eau de Parfum:`) and names split over two
//! entries by a stray comma ([`KnowledgeBase::may_name_across`]: `Alpha-Isomethyl, Ionone`).
//! [`KnowledgeBase::entry_ids`] and [`KnowledgeBase::entry_may_contain`] give the answer for one
//! entry, for a safety rule to stand on.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::inci::{FOOTNOTE_MARKS, candidate_keys, is_invisible, key, parse};
use crate::ingredient::{FAMILIES, Ingredient, in_family};
use crate::kb::KnowledgeBase;
pub use crate::phrases::{DifferentSubstance, words};
use crate::phrases::{FAMILY_WORDS, Phrase, TYPO_MIN_CHARS, name_words};

/// Words that join two names in one entry (`Limonene and Fragrance`).
const CONNECTORS: [&str; 4] = ["and", "&", "(and)", "+"];

/// Prefixes that announce what follows (`Allergens: Linalool`; the colon is gone by now).
const ANNOUNCEMENTS: [&str; 9] = [
    "fragrance allergens",
    "allergens in fragrance",
    "allergens",
    "allergen",
    "contains",
    "contain",
    "may contain",
    "ingredients",
    "ingredient",
];

/// Isomer and stereo prefixes that do not change which ingredient a label means (`d-Limonene`,
/// `D'Limonene`, `dl-Panthenol`, `l-Menthol`, `I-Limonene` for `l-`), lower case.
const ISOMER_PREFIXES: [&str; 10] = ["d,l-", "dl-", "d-", "l-", "i-", "d'", "l'", "(+)-", "(-)-", "(+/-)-"];

/// Most words in a name a typo is corrected in (a longer text is more likely another name).
const TYPO_MAX_WORDS: usize = 4;

/// Longest entry (in words) tried as names glued together.
const MAX_GLUED_WORDS: usize = 24;

/// What one declared entry declares and may name.
#[derive(Debug, Clone, Default)]
pub struct EntryMatch<'kb> {
    /// The ingredients the entry declares: one for most entries, several for names glued
    /// together, none when it does not resolve.
    pub declared: Vec<&'kb Ingredient>,
    /// Other ingredients whose names the entry writes as whole words: it may contain them.
    pub may_name: Vec<&'kb Ingredient>,
    /// Families the entry names by a generic word (`Essential Oils`): it may contain any member.
    pub families: Vec<&'static str>,
}

impl EntryMatch<'_> {
    /// Whether the entry declares ingredients and may name nothing else.
    pub fn is_resolved(&self) -> bool {
        !self.declared.is_empty() && self.may_name.is_empty() && self.families.is_empty()
    }

    /// The ids the entry declares or may name.
    pub fn ids(&self) -> BTreeSet<String> {
        self.declared.iter().chain(&self.may_name).map(|i| i.id.clone()).collect()
    }

    /// Every family the entry's ingredients belong to or that it names generically.
    pub fn family_names(&self) -> BTreeSet<&'static str> {
        let mut out: BTreeSet<&'static str> = self.families.iter().copied().collect();
        for (f, _) in FAMILIES {
            if self.declared.iter().chain(&self.may_name).any(|i| in_family(i, f)) {
                out.insert(f);
            }
        }
        out
    }
}

fn has_camel_join(text: &str) -> bool {
    let mut prev: Option<char> = None;
    text.chars().any(|c| {
        let join = prev.is_some_and(char::is_lowercase) && c.is_uppercase();
        prev = Some(c);
        join
    })
}

/// Phrases found in a text: (first word, word count, what).
type Found = Vec<(usize, usize, Phrase)>;

/// Ingredients a reviewed different-substance phrase in the text says it is not: never declared
/// by a correction or by splitting ("Ethyl Linalool" is not "Ethyl" + "Linalool").
fn reviewed_ids(phrases: &[Found]) -> HashSet<usize> {
    phrases
        .iter()
        .flatten()
        .filter_map(|(_, _, p)| match p {
            Phrase::Not(i) => Some(*i),
            _ => None,
        })
        .collect()
}

/// How a text is one typo away from a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Typo {
    /// A letter more, a letter less, two letters swapped, a consonant for another letter, or
    /// spacing: the name is what the label meant.
    Safe,
    /// A vowel for another vowel (`Citronellal` / `Citronellol`): often another substance, so the
    /// entry only *may* name it.
    Vowel,
}

/// Whether `a` is one edit (insertion, deletion, substitution, adjacent transposition) from `b`,
/// and which kind.
fn one_edit(a: &[char], b: &[char]) -> Option<Typo> {
    let vowel = |c: char| "aeiouy".contains(c);
    if a.len() == b.len() {
        let diff: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
        return match diff.as_slice() {
            [i] if vowel(a[*i]) && vowel(b[*i]) => Some(Typo::Vowel),
            [_] => Some(Typo::Safe),
            [i, j] if *j == i + 1 && a[*i] == b[*j] && a[*j] == b[*i] => Some(Typo::Safe),
            _ => None,
        };
    }
    let (short, long) = if a.len() < b.len() { (a, b) } else { (b, a) };
    if long.len() != short.len() + 1 {
        return None;
    }
    let i = (0..short.len()).find(|&i| short[i] != long[i]).unwrap_or(short.len());
    // "methyl"/"ethyl", "dimethyl"/"diethyl", "methoxy"/"ethoxy": another molecule, not a typo.
    let methyl = long[i] == 'm' && long[i + 1..].starts_with(&['e', 't', 'h']);
    (short[i..] == long[i + 1..] && !methyl).then_some(Typo::Safe)
}

/// Whether reading `typo` as `name` (one edit apart) is safe, given the words names use: the
/// digits are the same (`PEG-40` is not `PEG-60`, `CI 77491` not `CI 77492`); and unless only the
/// spacing differs, the changed word is not itself a word of some name (`Methyl Anthranilate` is
/// not `Menthyl Anthranilate`, `Sea Silt` not `Sea Salt`), is at least 6 letters long (`PPG` is
/// not `PEG`, `DNA` not `RNA`), and keeps its first letter unless one was added or dropped
/// (`Bisulfite` is not `Disulfite`; `Arnesol` is `Farnesol`).
fn safe_correction(typo: &str, name: &str, vocabulary: &HashSet<String>) -> bool {
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    if digits(typo) != digits(name) {
        return false;
    }
    let (wa, wb) = (name_words(typo), name_words(name));
    if wa.len() != wb.len() {
        // Only a space or a hyphen more or less ("Caprylylglycol", "Alphaisomethyl Ionone").
        return wa.concat() == wb.concat();
    }
    let changed: Vec<(&str, &str)> = wa.iter().zip(&wb).filter(|(a, b)| a != b).map(|(a, b)| (*a, *b)).collect();
    let [(a, b)] = changed.as_slice() else { return false };
    let (ca, cb): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    !vocabulary.contains(*a) && ca.len().max(cb.len()) >= 6 && (ca.len() != cb.len() || ca[0] == cb[0])
}

/// An entry's text, cleaned of what is never part of a name.
fn clean(text: &str) -> String {
    let mut s: String =
        text.chars().filter(|c| !is_invisible(*c)).map(|c| if c.is_control() { ' ' } else { c }).collect();
    s = collapse(&s);
    // A note after a footnote mark: "Limonene *antistatic agent/agent antistatique".
    if let Some(i) = s.char_indices().skip(1).find(|(_, c)| FOOTNOTE_MARKS.contains(c)).map(|(i, _)| i)
        && s[..i].chars().any(char::is_alphanumeric)
        && s[i..].chars().any(char::is_alphanumeric)
    {
        s.truncate(i);
    }
    s = strip_registry_numbers(&s);
    s = strip_percentages(&s);
    while let Some(p) = ANNOUNCEMENTS.iter().find(|p| {
        s.len() > p.len() + 1
            && s.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
            && matches!(s.as_bytes()[p.len()], b' ' | b':' | b'-')
    }) {
        s = s[p.len()..].trim_start_matches([' ', ':', '-']).to_owned();
    }
    let s = s.replace("()", " ").replace("[]", " ");
    collapse(&s).trim_matches(|c: char| c == ' ' || c == ',' || c == ';' || c == '-').to_owned()
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether a token is a CAS registry number (`78-70-6`: 2–7 digits, 2 digits, 1 check digit) or an
/// EC number (`201-134-4`).
fn is_registry_number(t: &str) -> bool {
    let parts: Vec<&str> = t.split('-').collect();
    let digits = |p: &str, lo: usize, hi: usize| (lo..=hi).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    parts.len() == 3
        && (digits(parts[0], 2, 7) && digits(parts[1], 2, 2) && digits(parts[2], 1, 1)
            || digits(parts[0], 3, 3) && digits(parts[1], 3, 3) && digits(parts[2], 1, 1))
}

/// Takes CAS and EC numbers off, with their labels (`CAS`, `CAS No.`, `EC`, `EINECS`).
fn strip_registry_numbers(s: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for raw in s.split(' ') {
        // The number may be glued to the name ("Linalool78-70-6") or sit in brackets.
        let t = raw.trim_matches(|c: char| "()[],;:#".contains(c));
        let start = t.find(|c: char| c.is_ascii_digit()).unwrap_or(t.len());
        if start < t.len() && is_registry_number(&t[start..]) {
            let head = &t[..start];
            while out.last().is_some_and(|w| {
                let l = w.to_lowercase();
                let l = l.trim_matches(|c: char| !c.is_alphanumeric());
                ["cas", "no", "n", "ec", "einecs", "number"].contains(&l)
            }) {
                out.pop();
            }
            if head.chars().any(char::is_alphabetic) {
                out.push(head.to_owned());
            }
            continue;
        }
        out.push(raw.to_owned());
    }
    out.join(" ")
}

/// Takes strengths off anywhere in the text (`0.4272%`, `80% Vol`, `2 %`, `2.0 Percent`).
fn strip_percentages(s: &str) -> String {
    let toks: Vec<&str> = s.split(' ').collect();
    let mut out: Vec<&str> = Vec::new();
    let is_num = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '.' || c == ',');
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i].trim_matches(|c: char| c == '(' || c == ')' || c == '[' || c == ']');
        let unit = |n: &str| {
            let n = n.trim_end_matches([')', ']', '.']).to_lowercase();
            n == "%" || n == "percent"
        };
        let strength =
            t.strip_suffix('%').is_some_and(is_num) || (is_num(t) && toks.get(i + 1).is_some_and(|n| unit(n)));
        if strength {
            i += if t.ends_with('%') { 1 } else { 2 };
            if toks.get(i).is_some_and(|n| ["vol", "vol.", "v/v", "w/w", "w/v"].contains(&n.to_lowercase().as_str())) {
                i += 1;
            }
            continue;
        }
        out.push(toks[i]);
        i += 1;
    }
    out.join(" ")
}

/// The text without an isomer prefix, if it has one.
fn strip_isomer(s: &str) -> Option<&str> {
    let lower = s.to_ascii_lowercase();
    let p = ISOMER_PREFIXES.iter().find(|p| lower.starts_with(*p))?;
    let rest = s.get(p.len()..)?.trim_start();
    rest.chars().next().is_some_and(char::is_alphabetic).then_some(rest)
}

/// The text without a control character read as a letter: `rLimonene` (a `\r` whose backslash
/// was lost), `nAqua`, `tGlycerin`.
fn strip_escape_artefact(s: &str) -> Option<&str> {
    let mut c = s.chars();
    let (a, b, d) = (c.next()?, c.next()?, c.next()?);
    (matches!(a, 'r' | 'n' | 't') && b.is_uppercase() && d.is_lowercase()).then(|| &s[1..])
}

/// The text outside parentheses and brackets.
fn outside_parens(s: &str) -> String {
    let mut depth = 0usize;
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' if depth > 0 => depth -= 1,
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Whether a name is only a polymer prefix (`PEG-75`, `PPG-12`), which labels put before the name
/// of what was polymerised (`PEG-75 Lanolin`).
fn is_polymer_prefix(text: &str) -> bool {
    let k = key(text);
    let rest = k.strip_prefix("peg").or_else(|| k.strip_prefix("ppg"));
    rest.is_some_and(|r| {
        let r = r.trim_start_matches(['-', ' ']);
        !r.is_empty() && r.chars().all(|c| c.is_ascii_digit())
    })
}

/// Splits an entry into the words names may be glued from: at spaces outside parentheses, at
/// `. ` between names, and inside a word at a `camelCase` join. Connector words (`and`) are kept.
fn glued_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        let next = chars.get(i + 1).copied();
        if depth == 0 && c == ' ' {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if depth == 0 && c == '.' && next == Some(' ') {
            // "Hexyl Cinnamal. Linalool"; "Alcohol Denat." keeps its period.
            if cur.to_lowercase() == "denat" {
                cur.push(c);
            }
            continue;
        }
        cur.push(c);
        if depth == 0 && c.is_lowercase() && next.is_some_and(char::is_uppercase) {
            // "TocopherolLimonene": a lower-case letter then an upper-case one, inside a word of
            // letters only (not "McDonald"-like brand noise: both halves must be names anyway).
            let after: String = chars[i + 1..].iter().take_while(|c| c.is_alphabetic()).collect();
            if cur.chars().count() >= 3 && after.chars().count() >= 3 {
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

impl KnowledgeBase {
    /// The ingredient a text names as a whole: by its full key, by the text outside
    /// parentheses, or as a slash list whose parts all name the same ingredient.
    fn whole(&self, text: &str) -> Option<usize> {
        let k = key(text);
        if let Some(&i) = self.by_key.get(&k) {
            return Some(i);
        }
        let outside = if text.contains(['(', '[']) { key(&outside_parens(text)) } else { k.clone() };
        if outside.is_empty() {
            return None;
        }
        if outside != k
            && let Some(&i) = self.by_key.get(&outside)
        {
            return Some(i);
        }
        let parts: Vec<&str> = outside.split('/').map(str::trim).filter(|p| !p.is_empty()).collect();
        if parts.len() > 1 {
            let ids: Vec<Option<usize>> = parts.iter().map(|p| self.by_key.get(*p).copied()).collect();
            if let Some(Some(first)) = ids.first()
                && ids.iter().all(|i| *i == Some(*first))
            {
                return Some(*first);
            }
        }
        None
    }

    /// The one ingredient a text names one typo away, if exactly one is, and how safe the reading
    /// is.
    fn typo(&self, text: &str, forbidden: &HashSet<usize>) -> Option<(usize, Typo)> {
        let k = key(&outside_parens(text));
        let chars: Vec<char> = k.chars().collect();
        if chars.len() < TYPO_MIN_CHARS || k.split(' ').count() > TYPO_MAX_WORDS {
            return None;
        }
        let mut found: Vec<(usize, Typo)> = Vec::new();
        for (name, i) in self.index.near(&k) {
            let nc: Vec<char> = name.chars().collect();
            if let Some(kind) = one_edit(&chars, &nc)
                && safe_correction(&k, name, &self.index.vocabulary)
                && !found.contains(&(i, kind))
            {
                found.push((i, kind));
            }
        }
        let ids: BTreeSet<usize> = found.iter().map(|(i, _)| *i).collect();
        match (ids.len(), found.first()) {
            (1, Some(&(i, _))) if !forbidden.contains(&i) => {
                let kind = if found.iter().any(|(_, k)| *k == Typo::Vowel) { Typo::Vowel } else { Typo::Safe };
                Some((i, kind))
            }
            _ => None,
        }
    }

    /// The ingredient one piece of an entry names: as a whole, or without an isomer prefix or an
    /// escape artefact.
    fn piece(&self, text: &str, forbidden: &HashSet<usize>) -> Option<usize> {
        std::iter::once(text)
            .chain(strip_isomer(text))
            .chain(strip_escape_artefact(text))
            .find_map(|t| self.whole(t).filter(|i| !forbidden.contains(i)))
    }

    /// The ingredient one piece of an entry names one typo away (also after an isomer prefix or
    /// an escape artefact), and how safe the reading is; a safe reading first.
    fn piece_typo(&self, text: &str, forbidden: &HashSet<usize>) -> Option<(usize, Typo)> {
        let mut vowel = None;
        for t in std::iter::once(text).chain(strip_isomer(text)).chain(strip_escape_artefact(text)) {
            match self.typo(t, forbidden) {
                Some((i, Typo::Safe)) => return Some((i, Typo::Safe)),
                Some(v) => vowel = vowel.or(Some(v)),
                None => {}
            }
        }
        vowel
    }

    /// Names glued together: the fewest pieces, each a name, covering every word but connectors.
    /// With `typos`, a piece of up to three words may also be a name one typo away. `memo` keeps
    /// the pieces already read, by word range.
    fn glued(
        &self,
        w: &[String],
        typos: bool,
        forbidden: &HashSet<usize>,
        memo: &mut HashMap<(usize, usize), Option<usize>>,
    ) -> Option<Vec<usize>> {
        if w.len() < 2 || w.len() > MAX_GLUED_WORDS {
            return None;
        }
        let connector = |s: &str| CONNECTORS.contains(&s.to_lowercase().as_str());
        let max_len = self.index.longest.max(1) + 2;
        // best[i]: fewest names covering w[..i], and where the last one starts.
        let mut best: Vec<Option<(usize, usize, Option<usize>)>> = vec![None; w.len() + 1];
        best[0] = Some((0, 0, None));
        for end in 1..=w.len() {
            if connector(&w[end - 1]) && end > 1 && end < w.len() {
                if let Some((n, _, _)) = best[end - 1] {
                    best[end] = Some((n, end - 1, None));
                }
                continue;
            }
            for start in end.saturating_sub(max_len)..end {
                let Some((n, _, _)) = best[start] else { continue };
                if w[start..end].iter().any(|x| connector(x)) {
                    continue;
                }
                if best[end].is_some_and(|(m, _, _)| m <= n + 1) {
                    continue;
                }
                let text = w[start..end].join(" ");
                if is_polymer_prefix(&text) && end < w.len() {
                    // "PEG-75 Lanolin" is one substance (an ethoxylated lanolin), not PEG-75 and
                    // lanolin.
                    continue;
                }
                let plain = *memo.entry((start, end)).or_insert_with(|| self.piece(&text, forbidden));
                let found =
                    plain.or_else(|| match (typos && end - start <= 3).then(|| self.piece_typo(&text, forbidden)) {
                        Some(Some((i, Typo::Safe))) => Some(i),
                        _ => None,
                    });
                if let Some(i) = found {
                    best[end] = Some((n + 1, start, Some(i)));
                }
            }
        }
        let (count, _, _) = best[w.len()]?;
        if count < 2 {
            return None;
        }
        let mut out = Vec::new();
        let mut at = w.len();
        while at > 0 {
            let (_, start, id) = best[at]?;
            out.extend(id);
            at = start;
        }
        out.reverse();
        Some(out)
    }

    /// Resolves one ingredient written any way a label writes it: any name or synonym, with its
    /// alternatives in parentheses or after slashes (`Water (Aqua)`, `Aqua/Water/Eau`), a footnote
    /// marker (`Glycerin*`) or a declared strength (`Niacinamide 5%`, `Salicylic Acid 2% (BHA)`).
    /// Text that parses as several ingredients is not one ingredient. Failing the exact names, the
    /// label forms of [`KnowledgeBase::resolve_entry`] are read (`Linalool 78-70-6`, `d-Limonene`,
    /// `Linalooll`) when they give one ingredient and name nothing else.
    pub fn resolve_label(&self, text: &str) -> Option<&Ingredient> {
        if let Some(i) = self.lookup(text) {
            return Some(i);
        }
        // Cleaned as a declared entry first, so that a strength or a marker does not hide the name
        // ("Salicylic Acid 2% (BHA)" is salicylic acid, not the BHA in its note).
        let parsed = parse(text);
        let mut entries = parsed.entries();
        let one = match (entries.next(), entries.next()) {
            (Some(only), None) => only.text.clone(),
            (Some(_), Some(_)) => return None,
            (None, _) => text.to_owned(),
        };
        self.resolve(&one).or_else(|| self.resolve(text)).or_else(|| {
            let m = self.resolve_entry(&one);
            match m.declared.as_slice() {
                [only] if m.may_name.is_empty() => Some(*only),
                _ => None,
            }
        })
    }

    /// The ids a search term stands for: a family name, or one ingredient by any of its names or
    /// label forms ([`KnowledgeBase::resolve_label`]). `None` when the term is neither.
    pub fn expand(&self, term: &str) -> Option<BTreeSet<String>> {
        let t = key(term).replace(' ', "-");
        if FAMILIES.iter().any(|(f, _)| *f == t) {
            return Some(self.ingredients.iter().filter(|i| in_family(i, &t)).map(|i| i.id.clone()).collect());
        }
        self.resolve_label(term).map(|i| BTreeSet::from([i.id.clone()]))
    }

    /// Resolves one declared entry as labels really write it, and reads what else it may name
    /// (see the [module documentation](crate::resolve)).
    pub fn resolve_entry(&self, text: &str) -> EntryMatch<'_> {
        let k = key(text);
        if let Some(&i) = self.by_key.get(&k) {
            // A text that is exactly one name names nothing else, except a family word in it
            // ("Essential Oil Blend"); most entries end here.
            let families = if FAMILY_WORDS.iter().any(|(w, _)| k.contains(w.split(' ').next().unwrap_or(w))) {
                self.scan(&self.phrases_in(text), &[i], true).1
            } else {
                Vec::new()
            };
            return EntryMatch { declared: vec![&self.ingredients[i]], may_name: Vec::new(), families };
        }
        let phrases = self.phrases_in(text);
        let forbidden = reviewed_ids(&phrases);
        let cleaned = clean(text);
        let w = glued_words(&cleaned);
        let mut memo = HashMap::new();
        // A vowel for a vowel may be a typo or another substance: the entry may name it.
        let mut guessed = None;
        let found = self
            .piece(&cleaned, &forbidden)
            .map(|i| vec![i])
            .or_else(|| self.glued(&w, false, &forbidden, &mut memo))
            .or_else(|| match self.piece_typo(&cleaned, &forbidden) {
                Some((i, Typo::Safe)) => Some(vec![i]),
                vowel => {
                    guessed = vowel.map(|(i, _)| i);
                    None
                }
            })
            .or_else(|| self.glued(&w, true, &forbidden, &mut memo))
            .or_else(|| candidate_keys(text).iter().find_map(|k| self.by_key.get(k)).map(|&i| vec![i]));
        let mut declared: Vec<usize> = Vec::new();
        for i in found.unwrap_or_default() {
            if !declared.contains(&i) {
                declared.push(i);
            }
        }
        let (mut may, families) = self.scan(&phrases, &declared, false);
        if let Some(i) = guessed.filter(|i| declared.is_empty() && !may.contains(i)) {
            may.push(i);
        }
        EntryMatch {
            declared: declared.into_iter().map(|i| &self.ingredients[i]).collect(),
            may_name: may.into_iter().map(|i| &self.ingredients[i]).collect(),
            families,
        }
    }

    /// What a text that is not an ingredient entry (a note, a list printed without separators)
    /// may name: every ingredient whose name it writes as a whole word, by the same rule as
    /// [`EntryMatch::may_name`], and families named generically.
    pub fn may_name(&self, text: &str) -> EntryMatch<'_> {
        let (may, families) = self.scan(&self.phrases_in(text), &[], false);
        EntryMatch { declared: Vec::new(), may_name: may.into_iter().map(|i| &self.ingredients[i]).collect(), families }
    }

    /// Names split over consecutive entries by a stray separator (`Benzyl, Alcohol`,
    /// `Alpha-Isomethyl, Ionone`, `Eucalyptus, Globulus Leaf Oil`): every ingredient whose name
    /// runs, as whole words, from one entry into the next where one of the entries it spans does
    /// not resolve (`resolved[i]` is false), by the rule of [`EntryMatch::may_name`]. Returns
    /// each with the index of the entry it starts in.
    pub fn may_name_across<'a>(&'a self, entries: &[&str], resolved: &[bool]) -> Vec<(usize, &'a Ingredient)> {
        let mut out: Vec<(usize, &Ingredient)> = Vec::new();
        let unresolved = |n: usize| !resolved.get(n).copied().unwrap_or(true);
        // Only around entries that do not resolve: each with its neighbours, runs merged.
        let mut n = 0;
        while n < entries.len() {
            if !unresolved(n) {
                n += 1;
                continue;
            }
            let from = n.saturating_sub(1);
            let mut to = n + 1;
            while to + 1 < entries.len() && unresolved(to + 1) {
                to += 1;
            }
            let to = to.min(entries.len() - 1);
            n = to + 1;
            let mut w: Vec<String> = Vec::new();
            let mut owner: Vec<usize> = Vec::new();
            for (e, text) in entries.iter().enumerate().take(to + 1).skip(from) {
                let ew = words(text, false);
                owner.extend(std::iter::repeat_n(e, ew.len()));
                w.extend(ew);
            }
            let found = self.index.find(&w);
            for &(start, len, p) in &found {
                let Phrase::Name(i) = p else { continue };
                let (first, last) = (owner[start], owner[start + len - 1]);
                if first == last || !(first..=last).any(unresolved) {
                    continue;
                }
                if !enclosed(&found, start, len, i) && !out.iter().any(|(_, g)| g.id == self.ingredients[i].id) {
                    out.push((first, &self.ingredients[i]));
                }
            }
        }
        out
    }

    /// The ids one declared entry resolves to or may name: what a safety rule must assume the
    /// product contains because of this entry.
    pub fn entry_ids(&self, text: &str) -> BTreeSet<String> {
        self.resolve_entry(text).ids()
    }

    /// Whether one declared entry resolves to or may name `term`: an ingredient by any of its
    /// names or label forms, or a family (`fragrance`, `fragrance-allergens`, ...). An unknown
    /// term is matched as a whole-word phrase of the entry.
    pub fn entry_may_contain(&self, text: &str, term: &str) -> bool {
        let m = self.resolve_entry(text);
        let family = key(term).replace(' ', "-");
        if FAMILIES.iter().any(|(f, _)| *f == family) {
            return m.family_names().contains(family.as_str());
        }
        match self.expand(term) {
            Some(ids) => m.declared.iter().chain(&m.may_name).any(|i| ids.contains(&i.id)),
            None => {
                let t = words(term, false);
                let w = words(text, false);
                !t.is_empty() && w.windows(t.len()).any(|x| x == t.as_slice())
            }
        }
    }

    /// The phrases of a text, read once as written and once more with `camelCase` joins split
    /// when it has any.
    fn phrases_in(&self, text: &str) -> Vec<Found> {
        let mut out = vec![self.index.find(&words(text, false))];
        if has_camel_join(text) {
            out.push(self.index.find(&words(text, true)));
        }
        out
    }

    /// The ingredients (other than `declared`) and families the phrases of a text name as whole
    /// words. With `families_only`, only generic family words are read.
    fn scan(&self, phrases: &[Found], declared: &[usize], families_only: bool) -> (Vec<usize>, Vec<&'static str>) {
        let mut may: Vec<usize> = Vec::new();
        let mut families: Vec<&'static str> = Vec::new();
        for found in phrases {
            for &(start, len, p) in found {
                match p {
                    Phrase::Family(f) => {
                        for fam in FAMILY_WORDS[f].1 {
                            if !families.contains(fam) {
                                families.push(fam);
                            }
                        }
                    }
                    Phrase::Name(i)
                        if !families_only
                            && !enclosed(found, start, len, i)
                            && !declared.contains(&i)
                            && !may.contains(&i) =>
                    {
                        may.push(i);
                    }
                    _ => {}
                }
            }
        }
        (may, families)
    }
}

/// Whether the name `i` found at `start..start + len` sits inside a longer phrase: another
/// ingredient's name (`Benzyl Alcohol` encloses `Alcohol`) or a reviewed different substance
/// for `i` (`Ethyl Linalool` encloses `Linalool`).
fn enclosed(found: &[(usize, usize, Phrase)], start: usize, len: usize, i: usize) -> bool {
    found.iter().any(|&(s, l, q)| {
        s <= start
            && s + l >= start + len
            && l > len
            && match q {
                Phrase::Name(_) => true,
                Phrase::Not(j) => j == i,
                Phrase::Family(_) => false,
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_numbers_and_strengths_come_off() {
        assert_eq!(clean("Linalool 78-70-6"), "Linalool");
        assert_eq!(clean("Linalool (CAS 78-70-6)"), "Linalool");
        assert_eq!(clean("Limonene CAS No. 5989-27-5"), "Limonene");
        assert_eq!(clean("Linalool EC 201-134-4"), "Linalool");
        assert_eq!(clean("Linalool78-70-6"), "Linalool");
        assert_eq!(clean("Limonene 0.4272%"), "Limonene");
        assert_eq!(clean("Linalool. 80% Vol"), "Linalool.");
        assert_eq!(clean("Limonene *antistatic agent/agent antistatique"), "Limonene");
        assert_eq!(clean("Allergens Linalool"), "Linalool");
        assert_eq!(clean("Contains: Limonene"), "Limonene");
        assert_eq!(clean("Lim\u{200B}onene\r"), "Limonene");
        // Numbers that are part of a name stay.
        assert_eq!(clean("1,2-Hexanediol"), "1,2-Hexanediol");
        assert_eq!(clean("C12-15 Alkyl Benzoate"), "C12-15 Alkyl Benzoate");
        assert_eq!(clean("CI 77891"), "CI 77891");
    }

    #[test]
    fn typos_are_corrected_only_when_safe() {
        let edit = |a: &str, b: &str| one_edit(&a.chars().collect::<Vec<_>>(), &b.chars().collect::<Vec<_>>());
        assert_eq!(edit("linalooll", "linalool"), Some(Typo::Safe));
        assert_eq!(edit("limonen", "limonene"), Some(Typo::Safe));
        assert_eq!(edit("lianlool", "linalool"), Some(Typo::Safe));
        assert_eq!(edit("citronellal", "citronellol"), Some(Typo::Vowel));
        assert_eq!(edit("linlol", "linalool"), None);
        let vocabulary: HashSet<String> =
            ["methyl", "ethyl", "salicylate", "salt", "silt", "sea"].map(String::from).into();
        let safe = |a: &str, b: &str| safe_correction(a, b, &vocabulary);
        assert!(safe("benzl benzoate", "benzyl benzoate"));
        assert!(safe("arnesol", "farnesol"));
        assert!(safe("caprylylglycol", "caprylyl glycol"));
        assert!(!safe("peg 60 hydrogenated castor oil", "peg 40 hydrogenated castor oil"));
        assert!(!safe("ethyl salicylate", "methyl salicylate"));
        assert!(!safe("sea silt", "sea salt"));
        assert!(!safe("ppg 12 dimethicone", "peg 12 dimethicone"));
        assert!(!safe("sodium bisulfite", "sodium disulfite"));
    }

    #[test]
    fn glued_words_split_where_names_may_join() {
        assert_eq!(glued_words("TocopherolLimonene"), ["Tocopherol", "Limonene"]);
        assert_eq!(glued_words("Hexyl Cinnamal. Linalool"), ["Hexyl", "Cinnamal", "Linalool"]);
        assert_eq!(glued_words("Alcohol Denat. Parfum"), ["Alcohol", "Denat.", "Parfum"]);
        assert_eq!(glued_words("Parfum (Fragrance) D-Limonene"), ["Parfum", "(Fragrance)", "D-Limonene"]);
        assert_eq!(glued_words("Water (Aqua Eau)"), ["Water", "(Aqua Eau)"]);
    }

    #[test]
    fn families_expand_to_their_members() {
        let kb = KnowledgeBase::bundled();
        let eu26 = kb.all().iter().filter(|i| i.allergen_lists.iter().any(|l| l == "eu-2003")).count();
        assert!(eu26 >= 26, "the 26 allergens of 2003/15/EC: {eu26}");
        let fragrance = kb.expand("fragrance").unwrap();
        assert!(fragrance.contains("linalool") && fragrance.contains("fragrance"));
        assert!(!fragrance.contains("benzyl-alcohol"), "a preservative is not fragrance");
        assert!(kb.expand("fragrance-allergens").unwrap().contains("benzyl-alcohol"));
        assert_eq!(kb.expand("aqua").unwrap().into_iter().collect::<Vec<_>>(), ["water"]);
        assert!(kb.expand("unobtainium").is_none());
    }

    #[test]
    fn any_label_form_resolves() {
        let kb = KnowledgeBase::bundled();
        let id = |t: &str| kb.resolve_label(t).map(|i| i.id.as_str());
        for (text, want) in [
            ("Water (Aqua)", "water"),
            ("Water (Aqua, Eau)", "water"),
            ("Aqua/Water/Eau", "water"),
            ("WATER/EAU", "water"),
            ("water", "water"),
            ("Glycerin*", "glycerin"),
            ("Niacinamide 5%", "niacinamide"),
            ("10% Glycolic Acid", "glycolic-acid"),
            ("Salicylic Acid 2% (BHA)", "salicylic-acid"),
            ("Zinc Oxide (20%)", "zinc-oxide"),
            ("Titanium Dioxide (CI 77891)", "titanium-dioxide"),
            ("Helianthus Annuus (Sunflower) Seed Oil", "helianthus-annuus-seed-oil"),
            ("Tocophérol", "tocopherol"),
            ("1,2-Hexanediol", "1-2-hexanediol"),
            ("alcohol-denat", "alcohol-denat"),
        ] {
            assert_eq!(id(text), Some(want), "{text}");
        }
        assert_eq!(id("Water, Glycerin"), None, "two ingredients are not one");
        assert_eq!(id("unobtainium (aqua-free)"), None);
    }
}
