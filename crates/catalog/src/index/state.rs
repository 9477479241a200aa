//! The index itself: documents numbered in the order they arrived, one roaring bitmap per value
//! every filter and facet reads, and per-word postings for ranking. Pure and synchronous; the
//! caller holds the lock.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use roaring::RoaringBitmap;

use super::doc::{FLAGS, SearchDoc, flag_index};
use super::text::{Match, Vocabulary, for_each_word};
use crate::search::{FACETS, Facets, Listed, SearchFilter};

/// The text fields, in the order postings keep their counts.
const FIELDS: usize = 5;
const NAME: usize = 0;
const BRAND: usize = 1;
const CATEGORY: usize = 2;
const HIGHLIGHTS: usize = 3;
const INGREDIENTS: usize = 4;
/// How much a word found in each field counts (BM25F field weights).
const FIELD_WEIGHT: [f32; FIELDS] = [4.0, 2.5, 1.5, 1.0, 0.6];
/// How much each field's length normalizes (BM25 `b`).
const FIELD_B: [f32; FIELDS] = [0.5, 0.3, 0.3, 0.5, 0.75];
/// BM25 saturation.
const K1: f32 = 1.2;
/// Query words found next to each other in the name, in order, add this share of the weaker
/// word's score.
const ADJACENT: f32 = 0.5;
/// Most query words that take part (the API takes 10 words; splitting them may make more).
const MAX_QUERY_WORDS: usize = 32;
/// A word that is not in the name (positions are kept for the first 254 name words).
const NOT_IN_NAME: u8 = u8::MAX;

/// Brand and category facets keep their 50 largest values, as the SQL search does.
const TOP: usize = 50;
/// A missing value (category, routine step, skin types, knowledge-base version): NUL, which no
/// stored text holds (PostgreSQL refuses it, the API refuses it for both).
const NONE: &str = "\0";

#[derive(Debug, Clone, Copy)]
struct Posting {
    doc: u32,
    tf: [u8; FIELDS],
    name_pos: u8,
}

#[derive(Debug, Default)]
struct Postings {
    docs: RoaringBitmap,
    /// Sorted by document.
    entries: Vec<Posting>,
}

#[derive(Debug)]
struct Entry {
    doc: SearchDoc,
    /// Distinct words it holds.
    terms: Vec<u32>,
}

/// The value maps, one per filter that selects by an exact value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Status = 0,
    Brand,
    External,
    Step,
    Concern,
    Skin,
    Kb,
    Family,
    AnyId,
    CertainId,
    NameKey,
}
const KINDS: usize = 11;

enum Slot<'a> {
    Map(Kind, &'a str),
    Category(&'a str),
    Price(i64),
    Flag(usize, bool),
    FamiliesKnown,
}

/// Every bitmap a document is in.
fn slots<'a>(d: &'a SearchDoc, mut f: impl FnMut(Slot<'a>)) {
    f(Slot::Map(Kind::Status, &d.status));
    f(Slot::Map(Kind::Brand, &d.brand));
    if let Some(e) = &d.external_id {
        f(Slot::Map(Kind::External, e));
    }
    f(Slot::Map(Kind::Step, d.routine_step.as_deref().unwrap_or(NONE)));
    for c in &d.concerns {
        f(Slot::Map(Kind::Concern, c));
    }
    match &d.skin_types {
        Some(types) => types.iter().for_each(|t| f(Slot::Map(Kind::Skin, t))),
        None => f(Slot::Map(Kind::Skin, NONE)),
    }
    f(Slot::Map(Kind::Kb, d.kb_version.as_deref().unwrap_or(NONE)));
    if let Some(families) = &d.families {
        f(Slot::FamiliesKnown);
        families.iter().for_each(|x| f(Slot::Map(Kind::Family, x)));
    }
    for (id, certain) in &d.ingredient_ids {
        f(Slot::Map(Kind::AnyId, id));
        if *certain {
            f(Slot::Map(Kind::CertainId, id));
        }
    }
    for k in &d.name_keys {
        f(Slot::Map(Kind::NameKey, k));
    }
    f(Slot::Category(d.category.as_deref().unwrap_or(NONE)));
    if let Some(p) = d.min_price {
        f(Slot::Price(p));
    }
    for (i, v) in d.flags.iter().enumerate() {
        if let Some(v) = v {
            f(Slot::Flag(i, *v));
        }
    }
}

/// The words of each text field of a document.
fn fields(d: &SearchDoc, mut f: impl FnMut(usize, &str)) {
    f(NAME, &d.name);
    f(BRAND, &d.brand);
    if let Some(c) = &d.category {
        f(CATEGORY, c);
    }
    for h in &d.highlights {
        f(HIGHLIGHTS, h);
    }
    let kb = dermis_ingredients::KnowledgeBase::bundled();
    for (id, certain) in &d.ingredient_ids {
        if !certain {
            continue; // what a product may contain is no claim to find it by
        }
        if let Some(i) = kb.get(id) {
            f(INGREDIENTS, &i.inci);
            for s in &i.synonyms {
                f(INGREDIENTS, s);
            }
        }
    }
}

/// A search's place in its listing (what a cursor encodes).
#[derive(Debug, Clone, PartialEq)]
pub enum After {
    /// After this product id (listing order).
    Id(String),
    /// After this score, then this id (relevance order).
    Ranked(f32, String),
}

impl After {
    /// The cursor text.
    pub fn encode(&self) -> String {
        match self {
            Self::Id(id) => id.clone(),
            Self::Ranked(score, id) => format!("s:{:08x}:{id}", score.to_bits()),
        }
    }

    /// Reads a cursor for a ranked (`ranked`) or a plain listing; `None` when it is not one.
    pub fn decode(raw: &str, ranked: bool) -> Option<Self> {
        if !ranked {
            return Some(Self::Id(raw.to_owned()));
        }
        let rest = raw.strip_prefix("s:")?;
        let (bits, id) = rest.split_once(':')?;
        if bits.len() != 8 {
            return None;
        }
        let score = f32::from_bits(u32::from_str_radix(bits, 16).ok()?);
        score.is_finite().then(|| Self::Ranked(score, id.to_owned()))
    }
}

/// A page of results.
#[derive(Debug)]
pub struct Found {
    /// The products.
    pub items: Vec<Listed>,
    /// Where the next page starts, if there is one.
    pub next: Option<After>,
    /// Facet counts, when asked.
    pub facets: Option<Facets>,
    /// How many products matched.
    pub total: u64,
}

/// Per-thread buffers for scoring, as long as the document numbers; zero between queries.
#[derive(Default)]
struct Scratch {
    mark: Vec<bool>,
    best: Vec<f32>,
    pos: Vec<u8>,
    prev_best: Vec<f32>,
    prev_pos: Vec<u8>,
    total: Vec<f32>,
}

impl Scratch {
    fn fit(&mut self, n: usize) {
        if self.mark.len() < n {
            self.mark.resize(n, false);
            self.best.resize(n, 0.0);
            self.pos.resize(n, NOT_IN_NAME);
            self.prev_best.resize(n, 0.0);
            self.prev_pos.resize(n, NOT_IN_NAME);
            self.total.resize(n, 0.0);
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// The in-memory index.
#[derive(Debug, Default)]
pub struct State {
    entries: Vec<Option<Entry>>,
    by_id: HashMap<Arc<str>, u32>,
    /// Document numbers in product id order.
    order: Vec<u32>,
    /// Each document's place in `order`.
    rank: Vec<u32>,
    /// Whether document numbers follow product ids (then a bitmap iterates in listing order).
    monotone: bool,
    live: RoaringBitmap,
    maps: [HashMap<String, RoaringBitmap>; KINDS],
    categories: BTreeMap<String, RoaringBitmap>,
    prices: BTreeMap<i64, RoaringBitmap>,
    flags: [[RoaringBitmap; 2]; FLAGS.len()],
    families_known: RoaringBitmap,
    vocabulary: Vocabulary,
    postings: Vec<Postings>,
    /// Each document's field lengths in words.
    field_len: Vec<[u16; FIELDS]>,
    len_sum: [u64; FIELDS],
}

/// Sizes, for logs and benchmarks.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Stats {
    /// Products.
    pub products: u64,
    /// Distinct words.
    pub words: usize,
    /// (word, product) pairs.
    pub postings: usize,
    /// Bytes of the product listings kept serialized.
    pub listing_bytes: usize,
    /// Bytes of the bitmaps (serialized size, a close lower bound of their memory).
    pub bitmap_bytes: usize,
}

impl State {
    /// An empty index.
    pub fn new() -> Self {
        Self { monotone: true, ..Self::default() }
    }

    /// An index of `docs`.
    pub fn build(mut docs: Vec<SearchDoc>) -> Self {
        docs.sort_by(|a, b| a.id.cmp(&b.id));
        let mut s = Self::new();
        for d in docs {
            s.upsert(d);
        }
        s
    }

    /// How many products.
    pub fn len(&self) -> u64 {
        self.live.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Sizes.
    pub fn stats(&self) -> Stats {
        let bitmaps = self.maps.iter().flat_map(|m| m.values()).chain(self.categories.values()).chain(self.prices.values());
        let bitmap_bytes = bitmaps.map(|b| b.serialized_size()).sum::<usize>()
            + self.postings.iter().map(|p| p.docs.serialized_size()).sum::<usize>();
        Stats {
            products: self.live.len(),
            words: self.vocabulary.len(),
            postings: self.postings.iter().map(|p| p.entries.len()).sum(),
            listing_bytes: self.entries.iter().flatten().map(|e| e.doc.listing.json().len()).sum(),
            bitmap_bytes,
        }
    }

    fn bitmap_mut(&mut self, slot: &Slot<'_>) -> &mut RoaringBitmap {
        match slot {
            Slot::Map(kind, value) => {
                let map = &mut self.maps[*kind as usize];
                if !map.contains_key(*value) {
                    map.insert((*value).to_owned(), RoaringBitmap::new());
                }
                map.get_mut(*value).expect("inserted above")
            }
            Slot::Category(c) => self.categories.entry((*c).to_owned()).or_default(),
            Slot::Price(p) => self.prices.entry(*p).or_default(),
            Slot::Flag(i, v) => &mut self.flags[*i][usize::from(*v)],
            Slot::FamiliesKnown => &mut self.families_known,
        }
    }

    fn unset(&mut self, slot: &Slot<'_>, doc: u32) {
        let empty = {
            let b = self.bitmap_mut(slot);
            b.remove(doc);
            b.is_empty()
        };
        if empty {
            match slot {
                Slot::Map(kind, value) => {
                    self.maps[*kind as usize].remove(*value);
                }
                Slot::Category(c) => {
                    self.categories.remove(*c);
                }
                Slot::Price(p) => {
                    self.prices.remove(p);
                }
                Slot::Flag(..) | Slot::FamiliesKnown => {}
            }
        }
    }

    /// Adds a product, or replaces what the index held of it. Idempotent.
    pub fn upsert(&mut self, d: SearchDoc) {
        let doc = match self.by_id.get(d.id.as_str()) {
            Some(&n) => {
                self.take_out(n);
                n
            }
            None => self.number(&d.id),
        };
        let mut slot_list = Vec::new();
        slots(&d, |s| slot_list.push(s));
        for s in &slot_list {
            self.bitmap_mut(s).insert(doc);
        }
        drop(slot_list);
        // Words: (term, field, position in its field).
        let mut seen: Vec<(u32, usize, usize)> = Vec::new();
        let mut lens = [0u16; FIELDS];
        let vocabulary = &mut self.vocabulary;
        fields(&d, |field, text| {
            for_each_word(text, |w| {
                let t = vocabulary.intern(w);
                seen.push((t, field, lens[field] as usize));
                lens[field] = lens[field].saturating_add(1);
            });
        });
        seen.sort_unstable();
        let mut terms: Vec<u32> = Vec::new();
        let mut i = 0;
        while i < seen.len() {
            let t = seen[i].0;
            let mut p = Posting { doc, tf: [0; FIELDS], name_pos: NOT_IN_NAME };
            while i < seen.len() && seen[i].0 == t {
                let (_, field, pos) = seen[i];
                p.tf[field] = p.tf[field].saturating_add(1);
                if field == NAME && p.name_pos == NOT_IN_NAME {
                    p.name_pos = pos.min(usize::from(NOT_IN_NAME - 1)) as u8;
                }
                i += 1;
            }
            if self.postings.len() <= t as usize {
                self.postings.resize_with(t as usize + 1, Postings::default);
            }
            let list = &mut self.postings[t as usize];
            list.docs.insert(doc);
            let at = list.entries.partition_point(|e| e.doc < doc);
            list.entries.insert(at, p);
            terms.push(t);
        }
        for (f, l) in lens.iter().enumerate() {
            self.len_sum[f] += u64::from(*l);
        }
        self.field_len[doc as usize] = lens;
        self.live.insert(doc);
        self.entries[doc as usize] = Some(Entry { doc: d, terms });
    }

    /// Drops a product (no longer stored).
    pub fn remove(&mut self, id: &str) {
        let Some(n) = self.by_id.remove(id) else { return };
        self.take_out(n);
        let at = self.rank[n as usize] as usize;
        self.order.remove(at);
        for (r, &d) in self.order.iter().enumerate().skip(at) {
            self.rank[d as usize] = r as u32;
        }
        self.rank[n as usize] = u32::MAX;
    }

    /// Whether the index holds this product.
    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// A number for a product the index has not held.
    fn number(&mut self, id: &str) -> u32 {
        let n = self.entries.len() as u32;
        self.entries.push(None);
        self.field_len.push([0; FIELDS]);
        let key: Arc<str> = Arc::from(id);
        self.by_id.insert(key, n);
        let at = self.order.partition_point(|&d| self.id_of(d) < id);
        if at == self.order.len() {
            self.order.push(n);
            self.rank.push(at as u32);
        } else {
            // A product older than the newest one arrived (created on another node meanwhile):
            // numbers no longer follow ids.
            self.monotone = false;
            self.order.insert(at, n);
            self.rank.push(0);
            for (r, &d) in self.order.iter().enumerate().skip(at) {
                self.rank[d as usize] = r as u32;
            }
        }
        n
    }

    /// The product id of a document in `order` (every one of them is filled).
    fn id_of(&self, doc: u32) -> &str {
        self.entries[doc as usize].as_ref().map_or("", |e| e.doc.id.as_str())
    }

    /// The place in `order` of the first product whose id is above `id`.
    fn first_after(&self, id: &str) -> usize {
        self.order.partition_point(|&d| self.id_of(d) <= id)
    }

    /// Removes a document from every bitmap and posting list (keeps its number).
    fn take_out(&mut self, doc: u32) {
        let Some(entry) = self.entries[doc as usize].take() else { return };
        let mut slot_list = Vec::new();
        slots(&entry.doc, |s| slot_list.push(s));
        for s in &slot_list {
            self.unset(s, doc);
        }
        for t in &entry.terms {
            let list = &mut self.postings[*t as usize];
            list.docs.remove(doc);
            if let Ok(at) = list.entries.binary_search_by_key(&doc, |e| e.doc) {
                list.entries.remove(at);
            }
        }
        let lens = std::mem::take(&mut self.field_len[doc as usize]);
        for (f, l) in lens.iter().enumerate() {
            self.len_sum[f] -= u64::from(*l);
        }
        self.live.remove(doc);
    }

    fn map(&self, kind: Kind, value: &str) -> Option<&RoaringBitmap> {
        self.maps[kind as usize].get(value)
    }

    /// The products passing every filter of `f` except its words, with the SQL search's
    /// semantics (see [`crate::search`]).
    pub fn filter(&self, f: &SearchFilter) -> RoaringBitmap {
        let mut m = self.live.clone();
        fn and(m: &mut RoaringBitmap, b: Option<&RoaringBitmap>) {
            match b {
                Some(b) => *m &= b,
                None => m.clear(),
            }
        }
        if let Some(b) = &f.brand {
            and(&mut m, self.map(Kind::Brand, b));
        }
        if let Some(c) = &f.category {
            let mut within = self.categories.get(c).cloned().unwrap_or_default();
            let prefix = format!("{c}/");
            for (_, b) in self.categories.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)) {
                within |= b;
            }
            m &= within;
        }
        if let Some(s) = f.status {
            and(&mut m, self.map(Kind::Status, s.as_str()));
        }
        if let Some(e) = &f.external_id {
            and(&mut m, self.map(Kind::External, e));
        }
        if let Some(r) = f.routine_step {
            and(&mut m, self.map(Kind::Step, r.as_str()));
        }
        for c in &f.concerns {
            and(&mut m, self.map(Kind::Concern, c));
        }
        let flag = |column: &str, value: bool| flag_index(column).map(|i| &self.flags[i][usize::from(value)]);
        if let Some(t) = &f.skin_type {
            // Declared for it, or not declared at all; and the ingredients fit it.
            let mut fits = self.map(Kind::Skin, NONE).cloned().unwrap_or_default();
            if let Some(b) = self.map(Kind::Skin, t) {
                fits |= b;
            }
            m &= fits;
            let needs: &[&str] = match t.as_str() {
                "oily" | "combination" => &["non_comedogenic"],
                "dry" => &["drying_alcohol_free"],
                "sensitive" => &["fragrance_free", "contact_allergen_free", "drying_alcohol_free"],
                _ => &["has_ingredients"],
            };
            for column in needs {
                and(&mut m, flag(column, true));
            }
        }
        if f.price_min.is_some() || f.price_max.is_some() {
            let (lo, hi) = (f.price_min.unwrap_or(i64::MIN), f.price_max.unwrap_or(i64::MAX));
            let mut within = RoaringBitmap::new();
            if lo <= hi {
                for (_, b) in self.prices.range(lo..=hi) {
                    within |= b;
                }
            }
            m &= within;
        }
        for (column, value) in &f.flags {
            and(&mut m, flag(column, *value));
        }
        let free_of = !f.exclude.is_empty()
            || f.skin_type.is_some()
            || f.flags.iter().any(|(c, _)| !["vegan", "has_ingredients"].contains(c));
        if free_of {
            and(&mut m, self.map(Kind::Kb, &f.kb_version));
        }
        if !f.exclude.is_empty() {
            and(&mut m, flag("has_ingredients", true));
            for t in &f.exclude {
                if let Some(family) = &t.family {
                    // Through the family list (which counts what the product may contain); an
                    // unknown list has none and never passes.
                    m &= &self.families_known;
                    if let Some(b) = self.map(Kind::Family, family) {
                        m -= b;
                    }
                    continue;
                }
                if let Some(b) = self.map(Kind::NameKey, &t.name_key) {
                    m -= b;
                }
                for id in &t.ids {
                    if let Some(b) = self.map(Kind::AnyId, id) {
                        m -= b;
                    }
                }
            }
        }
        for t in &f.include {
            let mut any = self.map(Kind::NameKey, &t.name_key).cloned().unwrap_or_default();
            for id in &t.ids {
                if let Some(b) = self.map(Kind::CertainId, id) {
                    any |= b;
                }
            }
            m &= any;
        }
        m
    }

    /// The ids of the products passing `f`'s filters (its words aside), in no particular order.
    pub fn filter_ids(&self, f: &SearchFilter) -> Vec<String> {
        self.filter(f).iter().map(|d| self.id_of(d).to_owned()).collect()
    }

    /// The query's words and the vocabulary words each matches.
    fn expand(&self, f: &SearchFilter) -> Vec<Vec<(u32, Match)>> {
        let mut words: Vec<String> = Vec::new();
        for w in &f.words {
            for_each_word(w, |x| words.push(x.to_owned()));
        }
        words.truncate(MAX_QUERY_WORDS);
        let last = words.len().saturating_sub(1);
        words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let mut out = Vec::new();
                self.vocabulary.expand(w, i == last, &mut out);
                out
            })
            .collect()
    }

    /// Runs a search: the page after `after` of at most `limit` products, ranked by relevance
    /// when `f` has words (then by id), otherwise in id order; and facet counts over every match.
    pub fn search(&self, f: &SearchFilter, after: Option<&After>, limit: usize, facets: bool) -> Found {
        let mut m = self.filter(f);
        let expanded = self.expand(f);
        for matches in &expanded {
            if m.is_empty() {
                break;
            }
            let mut any = RoaringBitmap::new();
            for (t, _) in matches {
                any |= &self.postings[*t as usize].docs;
            }
            m &= any;
        }
        let facets = facets.then(|| self.facets(&m));
        let total = m.len();
        let (docs, next) = if expanded.is_empty() {
            let from = match after {
                Some(After::Id(id) | After::Ranked(_, id)) => self.first_after(id),
                None => 0,
            };
            let docs = self.page_by_id(&m, from, limit + 1);
            let next = (docs.len() > limit).then(|| After::Id(self.id_of(docs[limit - 1]).to_owned()));
            (docs.into_iter().take(limit).map(|d| (d, 0.0)).collect::<Vec<_>>(), next)
        } else {
            let cut = match after {
                Some(After::Ranked(score, id)) => Some((*score, self.first_after(id))),
                // A cursor of the listing order ([`After::decode`] never reads one for a ranked
                // search): nothing ranks after it.
                Some(After::Id(id)) => Some((f32::NEG_INFINITY, self.first_after(id))),
                None => None,
            };
            let scored = self.page_ranked(&m, &expanded, cut, limit + 1);
            let next = (scored.len() > limit).then(|| {
                let (d, s) = scored[limit - 1];
                After::Ranked(s, self.id_of(d).to_owned())
            });
            (scored.into_iter().take(limit).collect(), next)
        };
        let items = docs
            .iter()
            .filter_map(|(d, _)| self.entries[*d as usize].as_ref().map(|e| e.doc.listing.clone()))
            .collect();
        Found { items, next, facets, total }
    }

    /// The first `n` of `m` from place `from` of the id order.
    fn page_by_id(&self, m: &RoaringBitmap, from: usize, n: usize) -> Vec<u32> {
        if from >= self.order.len() {
            return Vec::new();
        }
        if self.monotone {
            return m.range(self.order[from]..).take(n).collect();
        }
        let mut ranks: Vec<u32> =
            m.iter().map(|d| self.rank[d as usize]).filter(|&r| r as usize >= from).collect();
        if ranks.len() > n {
            ranks.select_nth_unstable(n);
            ranks.truncate(n);
        }
        ranks.sort_unstable();
        ranks.into_iter().map(|r| self.order[r as usize]).collect()
    }

    /// Scores every match and returns the first `n` after `cut` (a score, and the place in the
    /// id order of the first product after the cursor's): best score first, then id.
    fn page_ranked(
        &self,
        m: &RoaringBitmap,
        expanded: &[Vec<(u32, Match)>],
        cut: Option<(f32, usize)>,
        n: usize,
    ) -> Vec<(u32, f32)> {
        SCRATCH.with(|cell| {
            let mut s = cell.borrow_mut();
            s.fit(self.entries.len());
            let s = &mut *s;
            self.score(m, expanded, s);
            let mut hits: Vec<(f32, u32, u32)> = Vec::with_capacity(m.len() as usize);
            for d in m {
                let score = s.total[d as usize];
                s.total[d as usize] = 0.0;
                let rank = self.rank[d as usize];
                let keep = match cut {
                    None => true,
                    Some((cs, from)) => score < cs || (score == cs && rank as usize >= from),
                };
                if keep {
                    hits.push((score, rank, d));
                }
            }
            let better = |a: &(f32, u32, u32), b: &(f32, u32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
            if hits.len() > n {
                hits.select_nth_unstable_by(n, better);
                hits.truncate(n);
            }
            hits.sort_unstable_by(better);
            hits.into_iter().map(|(score, _, d)| (d, score)).collect()
        })
    }

    /// Fills `s.total` for every document of `m` (BM25F per query word, the best of the words it
    /// matches, weighted by how it matched; plus a bonus for query words next to each other in
    /// the name, in order). Leaves the other buffers zero.
    fn score(&self, m: &RoaringBitmap, expanded: &[Vec<(u32, Match)>], s: &mut Scratch) {
        let n = self.live.len().max(1) as f32;
        let mut avg = [1.0f32; FIELDS];
        for (f, a) in avg.iter_mut().enumerate() {
            *a = (self.len_sum[f] as f32 / n).max(1.0);
        }
        for d in m {
            s.mark[d as usize] = true;
        }
        for (i, matches) in expanded.iter().enumerate() {
            for &(t, kind) in matches {
                let list = &self.postings[t as usize];
                let df = list.docs.len() as f32;
                let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
                let w = kind.weight() * idf;
                for p in &list.entries {
                    let d = p.doc as usize;
                    if !s.mark[d] {
                        continue;
                    }
                    let lens = &self.field_len[d];
                    let mut tf = 0.0f32;
                    for f in 0..FIELDS {
                        if p.tf[f] > 0 {
                            let norm = 1.0 - FIELD_B[f] + FIELD_B[f] * f32::from(lens[f]) / avg[f];
                            tf += FIELD_WEIGHT[f] * f32::from(p.tf[f]) / norm;
                        }
                    }
                    let score = w * tf * (K1 + 1.0) / (K1 + tf);
                    if score > s.best[d] {
                        s.best[d] = score;
                    }
                    if p.name_pos != NOT_IN_NAME && (s.pos[d] == NOT_IN_NAME || kind == Match::Exact) {
                        s.pos[d] = p.name_pos;
                    }
                }
            }
            for d in m {
                let d = d as usize;
                let (best, pos) = (s.best[d], s.pos[d]);
                s.total[d] += best;
                if i > 0 && pos != NOT_IN_NAME && s.prev_pos[d] != NOT_IN_NAME && pos == s.prev_pos[d].wrapping_add(1) {
                    s.total[d] += ADJACENT * best.min(s.prev_best[d]);
                }
                s.prev_best[d] = best;
                s.prev_pos[d] = pos;
                s.best[d] = 0.0;
                s.pos[d] = NOT_IN_NAME;
            }
        }
        for d in m {
            let d = d as usize;
            s.mark[d] = false;
            s.prev_best[d] = 0.0;
            s.prev_pos[d] = NOT_IN_NAME;
        }
    }

    /// Counts per facet value over `m`, as the SQL search counts them.
    fn facets(&self, m: &RoaringBitmap) -> Facets {
        let mut out = Facets::new();
        for facet in FACETS {
            let mut counts = BTreeMap::new();
            let mut put = |value: &str, n: u64| {
                if n > 0 {
                    let v = if value == NONE { "unknown" } else { value };
                    counts.insert(v.to_owned(), n as i64);
                }
            };
            match facet {
                "routine_step" => {
                    for (v, b) in &self.maps[Kind::Step as usize] {
                        put(v, m.intersection_len(b));
                    }
                }
                "concern" => {
                    for (v, b) in &self.maps[Kind::Concern as usize] {
                        put(v, m.intersection_len(b));
                    }
                }
                "brand" | "category" => {
                    let mut all: Vec<(u64, &str)> = if facet == "brand" {
                        self.maps[Kind::Brand as usize].iter().map(|(v, b)| (m.intersection_len(b), v.as_str())).collect()
                    } else {
                        self.categories.iter().map(|(v, b)| (m.intersection_len(b), v.as_str())).collect()
                    };
                    all.retain(|(n, _)| *n > 0);
                    all.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
                    for (n, v) in all.into_iter().take(TOP) {
                        put(v, n);
                    }
                }
                column => {
                    let i = flag_index(column).expect("facet flags are flag columns");
                    let yes = m.intersection_len(&self.flags[i][1]);
                    let no = m.intersection_len(&self.flags[i][0]);
                    put("true", yes);
                    put("false", no);
                    put("unknown", m.len() - yes - no);
                }
            }
            out.insert(facet.to_owned(), counts);
        }
        out
    }
}
