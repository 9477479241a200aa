//! The index itself: documents numbered in the order they arrived, one roaring bitmap per value
//! every filter and facet reads, and per-word postings for ranking. Pure and synchronous; the
//! caller holds the lock.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

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
/// The fields a query word must be found in: what the product is (name, brand, category) and
/// what the merchant claims for it (highlights, curated: `Vitamin C`, `Hyaluronic Acid`); the
/// names of its ingredients only rank what matched. A search for `vitamin c` finds products
/// named or tagged for it, ranked by BM25F (name first); it does not list every product with
/// ascorbic acid somewhere in its list. (On the judged queries: NDCG@10 0.826 with name, brand
/// and category only, 0.851 with highlights, 0.863 with ingredient names too.)
const MATCHED: [bool; FIELDS] = [true, true, true, true, false];
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
    /// The documents holding the word in a field a query word must match in ([`MATCHED`]).
    docs: RoaringBitmap,
    /// Every document holding it, sorted by document.
    entries: Vec<Posting>,
}

/// The filters that select by an exact value, each with its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Status = 0,
    Brand,
    Category,
    /// A category and every category above it (`Skincare`, `Skincare/Moisturizers`): what a
    /// category filter selects.
    CategoryTree,
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
const KINDS: usize = 13;

/// The values of one kind, numbered, each with the documents holding it. A value is kept (with
/// an empty bitmap) once no document holds it; a rebuild forgets it.
#[derive(Debug, Default)]
struct Values {
    ids: HashMap<String, u32>,
    names: Vec<String>,
    docs: Vec<RoaringBitmap>,
}

impl Values {
    fn insert(&mut self, value: &str, doc: u32) -> u32 {
        let id = match self.ids.get(value) {
            Some(&id) => id,
            None => {
                let id = self.names.len() as u32;
                self.ids.insert(value.to_owned(), id);
                self.names.push(value.to_owned());
                self.docs.push(RoaringBitmap::new());
                id
            }
        };
        self.docs[id as usize].insert(doc);
        id
    }

    fn get(&self, value: &str) -> Option<&RoaringBitmap> {
        self.ids.get(value).map(|&id| &self.docs[id as usize])
    }
}

/// What the index keeps of a document: its listing, and where it is (to take it out again).
#[derive(Debug)]
struct Entry {
    listing: Listed,
    slots: Vec<(Kind, u32)>,
    price: Option<i64>,
    flags: [Option<bool>; FLAGS.len()],
    families_known: bool,
    /// Distinct words it holds.
    terms: Vec<u32>,
}

/// The words of every ingredient of the knowledge base (its INCI name and synonyms), by id.
fn ingredient_words(id: &str) -> &'static [String] {
    static WORDS: OnceLock<HashMap<String, Vec<String>>> = OnceLock::new();
    let all = WORDS.get_or_init(|| {
        dermis_ingredients::KnowledgeBase::bundled()
            .all()
            .iter()
            .map(|i| {
                let mut w = Vec::new();
                for name in std::iter::once(&i.inci).chain(&i.synonyms) {
                    for_each_word(name, |x| w.push(x.to_owned()));
                }
                (i.id.clone(), w)
            })
            .collect()
    });
    all.get(id).map_or(&[], Vec::as_slice)
}

/// Calls `f` with each word of each text field of a document, and its position in the field.
fn fields(d: &SearchDoc, mut f: impl FnMut(usize, &str)) {
    for_each_word(&d.name, |w| f(NAME, w));
    for_each_word(&d.brand, |w| f(BRAND, w));
    if let Some(c) = &d.category {
        for_each_word(c, |w| f(CATEGORY, w));
    }
    for h in &d.highlights {
        for_each_word(h, |w| f(HIGHLIGHTS, w));
    }
    for (id, certain) in &d.ingredient_ids {
        // What a product may contain is no claim to find it by.
        if *certain {
            for w in ingredient_words(id) {
                f(INGREDIENTS, w);
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

/// A document's facet values: brand, category and routine step (value numbers), concerns (a
/// bit per concern value number below 16), and its flags (two bits each: 0 unknown, 1 false, 2
/// true).
#[derive(Debug, Clone, Copy, Default)]
struct FacetRow {
    brand: u32,
    category: u32,
    step: u32,
    concerns: u16,
    flags: u32,
}

/// A query word and what it matches.
struct Word {
    /// Vocabulary words it matches, each with how.
    matches: Vec<(u32, Match)>,
    /// The documents holding any of them.
    docs: RoaringBitmap,
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
    values: [Values; KINDS],
    /// Each document's facet values, for counting them in one pass over the matches.
    facet_of: Vec<FacetRow>,
    prices: BTreeMap<i64, RoaringBitmap>,
    flags: [[RoaringBitmap; 2]; FLAGS.len()],
    families_known: RoaringBitmap,
    vocabulary: Vocabulary,
    postings: Vec<Postings>,
    /// Each document's field lengths in words.
    field_len: Vec<[u16; FIELDS]>,
    len_sum: [u64; FIELDS],
    /// The facets of every product (a shop's first page), counted once per change.
    all_facets: OnceLock<Facets>,
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
    /// Bytes of the bitmaps (their serialized size, close to their memory).
    pub bitmap_bytes: usize,
    /// An estimate of the whole index's memory (listings, bitmaps, postings, bookkeeping).
    pub approx_bytes: usize,
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
        let value_bitmaps = self.values.iter().flat_map(|v| v.docs.iter()).chain(self.prices.values());
        let bitmap_bytes = value_bitmaps.chain(self.flags.iter().flatten()).map(|b| b.serialized_size()).sum::<usize>()
            + self.postings.iter().map(|p| p.docs.serialized_size()).sum::<usize>();
        let postings: usize = self.postings.iter().map(|p| p.entries.len()).sum();
        let listing_bytes: usize =
            self.entries.iter().flatten().map(|e| e.listing.json().len() + e.listing.id.len()).sum();
        let entries: usize = self
            .entries
            .iter()
            .flatten()
            .map(|e| std::mem::size_of::<Entry>() + e.slots.len() * 8 + e.terms.len() * 4)
            .sum();
        let names: usize = self.values.iter().flat_map(|v| v.names.iter()).map(|n| 2 * n.len() + 64).sum();
        let words: usize = (0..self.vocabulary.len()).map(|i| self.vocabulary.word(i as u32).len() * 2 + 96).sum();
        Stats {
            products: self.live.len(),
            words: self.vocabulary.len(),
            postings,
            listing_bytes,
            bitmap_bytes,
            approx_bytes: listing_bytes
                + bitmap_bytes
                + postings * std::mem::size_of::<Posting>()
                + entries
                + names
                + words
                + self.entries.len() * (4 * 3 + 4 + 2 * FIELDS + 48),
        }
    }

    /// Adds a product, or replaces what the index held of it. Idempotent.
    pub fn upsert(&mut self, d: SearchDoc) {
        self.all_facets = OnceLock::new();
        let doc = match self.by_id.get(d.id.as_str()) {
            Some(&n) => {
                self.take_out(n);
                n
            }
            None => self.number(&d.id),
        };
        let mut slots = Vec::with_capacity(16 + d.ingredient_ids.len() * 2 + d.name_keys.len());
        let values = &mut self.values;
        let mut put = |kind: Kind, value: &str| {
            let id = values[kind as usize].insert(value, doc);
            slots.push((kind, id));
            id
        };
        put(Kind::Status, &d.status);
        let brand = put(Kind::Brand, &d.brand);
        let category = put(Kind::Category, d.category.as_deref().unwrap_or(NONE));
        if let Some(c) = &d.category {
            for (at, _) in c.match_indices('/') {
                put(Kind::CategoryTree, &c[..at]);
            }
            put(Kind::CategoryTree, c);
        }
        let step = put(Kind::Step, d.routine_step.as_deref().unwrap_or(NONE));
        if let Some(e) = &d.external_id {
            put(Kind::External, e);
        }
        for c in &d.concerns {
            put(Kind::Concern, c);
        }
        match &d.skin_types {
            Some(types) => types.iter().for_each(|t| {
                put(Kind::Skin, t);
            }),
            None => {
                put(Kind::Skin, NONE);
            }
        }
        put(Kind::Kb, d.kb_version.as_deref().unwrap_or(NONE));
        for family in d.families.iter().flatten() {
            put(Kind::Family, family);
        }
        for (id, certain) in &d.ingredient_ids {
            put(Kind::AnyId, id);
            if *certain {
                put(Kind::CertainId, id);
            }
        }
        for k in &d.name_keys {
            put(Kind::NameKey, k);
        }
        let concern_ids = &self.values[Kind::Concern as usize];
        let concerns = d
            .concerns
            .iter()
            .filter_map(|c| concern_ids.ids.get(c.as_str()))
            .filter(|&&id| id < 16)
            .fold(0u16, |mask, &id| mask | (1 << id));
        let flags =
            d.flags.iter().enumerate().fold(0u32, |bits, (i, v)| bits | (v.map_or(0, |v| 1 + u32::from(v)) << (2 * i)));
        self.facet_of[doc as usize] = FacetRow { brand, category, step, concerns, flags };
        if let Some(p) = d.min_price {
            self.prices.entry(p).or_default().insert(doc);
        }
        for (i, v) in d.flags.iter().enumerate() {
            if let Some(v) = v {
                self.flags[i][usize::from(*v)].insert(doc);
            }
        }
        if d.families.is_some() {
            self.families_known.insert(doc);
        }
        // Words: (term, field, position in its field).
        let mut seen: Vec<(u32, usize, u16)> = Vec::new();
        let mut lens = [0u16; FIELDS];
        let vocabulary = &mut self.vocabulary;
        fields(&d, |field, w| {
            seen.push((vocabulary.intern(w), field, lens[field]));
            lens[field] = lens[field].saturating_add(1);
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
                    p.name_pos = pos.min(u16::from(NOT_IN_NAME - 1)) as u8;
                }
                i += 1;
            }
            if self.postings.len() <= t as usize {
                self.postings.resize_with(t as usize + 1, Postings::default);
            }
            let list = &mut self.postings[t as usize];
            if (0..FIELDS).any(|f| MATCHED[f] && p.tf[f] > 0) {
                list.docs.insert(doc);
            }
            let at = list.entries.partition_point(|e| e.doc < doc);
            list.entries.insert(at, p);
            terms.push(t);
        }
        for (f, l) in lens.iter().enumerate() {
            self.len_sum[f] += u64::from(*l);
        }
        self.field_len[doc as usize] = lens;
        self.live.insert(doc);
        terms.shrink_to_fit();
        slots.shrink_to_fit();
        self.entries[doc as usize] = Some(Entry {
            listing: d.listing,
            slots,
            price: d.min_price,
            flags: d.flags,
            families_known: d.families.is_some(),
            terms,
        });
    }

    /// Drops a product (no longer stored).
    pub fn remove(&mut self, id: &str) {
        let Some(n) = self.by_id.remove(id) else { return };
        self.all_facets = OnceLock::new();
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
        let at = self.order.partition_point(|&d| self.id_of(d) < id);
        self.entries.push(None);
        self.field_len.push([0; FIELDS]);
        self.facet_of.push(FacetRow::default());
        self.by_id.insert(Arc::from(id), n);
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
        self.entries[doc as usize].as_ref().map_or("", |e| e.listing.id.as_str())
    }

    /// The place in `order` of the first product whose id is above `id`.
    fn first_after(&self, id: &str) -> usize {
        self.order.partition_point(|&d| self.id_of(d) <= id)
    }

    /// Removes a document from every bitmap and posting list (keeps its number).
    fn take_out(&mut self, doc: u32) {
        let Some(entry) = self.entries[doc as usize].take() else { return };
        for (kind, id) in &entry.slots {
            self.values[*kind as usize].docs[*id as usize].remove(doc);
        }
        if let Some(p) = entry.price
            && let Some(b) = self.prices.get_mut(&p)
        {
            b.remove(doc);
            if b.is_empty() {
                self.prices.remove(&p);
            }
        }
        for (i, v) in entry.flags.iter().enumerate() {
            if let Some(v) = v {
                self.flags[i][usize::from(*v)].remove(doc);
            }
        }
        if entry.families_known {
            self.families_known.remove(doc);
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

    fn value(&self, kind: Kind, value: &str) -> Option<&RoaringBitmap> {
        self.values[kind as usize].get(value)
    }

    fn flag(&self, column: &str, value: bool) -> Option<&RoaringBitmap> {
        flag_index(column).map(|i| &self.flags[i][usize::from(value)])
    }

    /// The products passing every filter of `f` except its words, with the SQL search's
    /// semantics (see [`crate::search`]).
    pub fn filter(&self, f: &SearchFilter) -> RoaringBitmap {
        fn and(m: &mut RoaringBitmap, b: Option<&RoaringBitmap>) {
            match b {
                Some(b) => *m &= b,
                None => m.clear(),
            }
        }
        let mut m = self.live.clone();
        if let Some(b) = &f.brand {
            and(&mut m, self.value(Kind::Brand, b));
        }
        if let Some(c) = &f.category {
            // The category or any below it.
            and(&mut m, self.value(Kind::CategoryTree, c));
        }
        if let Some(s) = f.status {
            and(&mut m, self.value(Kind::Status, s.as_str()));
        }
        if let Some(e) = &f.external_id {
            and(&mut m, self.value(Kind::External, e));
        }
        if let Some(r) = f.routine_step {
            and(&mut m, self.value(Kind::Step, r.as_str()));
        }
        for c in &f.concerns {
            and(&mut m, self.value(Kind::Concern, c));
        }
        if let Some(t) = &f.skin_type {
            // Declared for it, or not declared at all; and the ingredients fit it.
            let mut fits = self.value(Kind::Skin, NONE).cloned().unwrap_or_default();
            if let Some(b) = self.value(Kind::Skin, t) {
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
                and(&mut m, self.flag(column, true));
            }
        }
        if f.price_min.is_some() || f.price_max.is_some() {
            let (lo, hi) = (f.price_min.unwrap_or(i64::MIN), f.price_max.unwrap_or(i64::MAX));
            let mut within = RoaringBitmap::new();
            if lo <= hi {
                for b in self.prices.range(lo..=hi).map(|(_, b)| b) {
                    within |= b;
                }
            }
            m &= within;
        }
        for (column, value) in &f.flags {
            and(&mut m, self.flag(column, *value));
        }
        let free_of = !f.exclude.is_empty()
            || f.skin_type.is_some()
            || f.flags.iter().any(|(c, _)| !["vegan", "has_ingredients"].contains(c));
        if free_of {
            // Facts derived under other rules are not trusted to say "free of".
            and(&mut m, self.value(Kind::Kb, &f.kb_version));
        }
        if !f.exclude.is_empty() {
            // An unknown ingredient list never passes an exclusion.
            and(&mut m, self.flag("has_ingredients", true));
            for t in &f.exclude {
                if let Some(family) = &t.family {
                    // Through the family list, which counts what the product may contain.
                    m &= &self.families_known;
                    if let Some(b) = self.value(Kind::Family, family) {
                        m -= b;
                    }
                    continue;
                }
                if let Some(b) = self.value(Kind::NameKey, &t.name_key) {
                    m -= b;
                }
                // Declared or possibly contained alike.
                for id in &t.ids {
                    if let Some(b) = self.value(Kind::AnyId, id) {
                        m -= b;
                    }
                }
            }
        }
        for t in &f.include {
            // Only what the product declares.
            let mut any = self.value(Kind::NameKey, &t.name_key).cloned().unwrap_or_default();
            for id in &t.ids {
                if let Some(b) = self.value(Kind::CertainId, id) {
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

    /// The query's words and what each matches.
    fn words(&self, f: &SearchFilter) -> Vec<Word> {
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
                let mut matches = Vec::new();
                self.vocabulary.expand(w, i == last, &mut matches);
                let mut docs = RoaringBitmap::new();
                for (t, _) in &matches {
                    docs |= &self.postings[*t as usize].docs;
                }
                Word { matches, docs }
            })
            .collect()
    }

    /// Runs a search: the page after `after` of at most `limit` products, ranked by relevance
    /// when `f` has words (then by id), otherwise in id order; and facet counts over every match.
    pub fn search(&self, f: &SearchFilter, after: Option<&After>, limit: usize, facets: bool) -> Found {
        let mut m = self.filter(f);
        let words = self.words(f);
        for w in &words {
            m &= &w.docs;
        }
        let facets = facets.then(|| self.facets(&m));
        let total = m.len();
        let limit = limit.max(1);
        let (docs, next): (Vec<u32>, Option<After>) = if words.is_empty() {
            let from = match after {
                Some(After::Id(id) | After::Ranked(_, id)) => self.first_after(id),
                None => 0,
            };
            let mut docs = self.page_by_id(&m, from, limit + 1);
            let next = (docs.len() > limit).then(|| After::Id(self.id_of(docs[limit - 1]).to_owned()));
            docs.truncate(limit);
            (docs, next)
        } else {
            let cut = match after {
                Some(After::Ranked(score, id)) => Some((*score, self.first_after(id))),
                // A cursor of the listing order ([`After::decode`] never reads one for a ranked
                // search): nothing ranks after it.
                Some(After::Id(id)) => Some((f32::NEG_INFINITY, self.first_after(id))),
                None => None,
            };
            let mut scored = self.page_ranked(&m, &words, cut, limit + 1);
            let next = (scored.len() > limit).then(|| {
                let (d, s) = scored[limit - 1];
                After::Ranked(s, self.id_of(d).to_owned())
            });
            scored.truncate(limit);
            (scored.into_iter().map(|(d, _)| d).collect(), next)
        };
        let items = docs.iter().filter_map(|d| self.entries[*d as usize].as_ref().map(|e| e.listing.clone())).collect();
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
        let mut ranks: Vec<u32> = m.iter().map(|d| self.rank[d as usize]).filter(|&r| r as usize >= from).collect();
        if ranks.len() > n {
            ranks.select_nth_unstable(n);
            ranks.truncate(n);
        }
        ranks.sort_unstable();
        ranks.into_iter().map(|r| self.order[r as usize]).collect()
    }

    /// Scores every match and returns the first `n` after `cut` (a score, and the place in the
    /// id order of the first product after the cursor's): best score first, then id.
    fn page_ranked(&self, m: &RoaringBitmap, words: &[Word], cut: Option<(f32, usize)>, n: usize) -> Vec<(u32, f32)> {
        SCRATCH.with(|cell| {
            let mut s = cell.borrow_mut();
            s.fit(self.entries.len());
            let s = &mut *s;
            self.score(m, words, s);
            let mut hits: Vec<(f32, u32, u32)> = Vec::with_capacity(m.len() as usize);
            for d in m {
                let score = std::mem::take(&mut s.total[d as usize]);
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

    /// Fills `s.total` for every document of `m`: per query word, the best of the vocabulary
    /// words it matches (BM25F over the fields, with the query word's own rarity, weighted by how
    /// it matched: exact, prefix, typo), summed over the query words; plus a share for query
    /// words found next to each other in the name, in order. Leaves the other buffers zero.
    fn score(&self, m: &RoaringBitmap, words: &[Word], s: &mut Scratch) {
        let n = self.live.len().max(1) as f32;
        let mut avg = [1.0f32; FIELDS];
        for (f, a) in avg.iter_mut().enumerate() {
            *a = (self.len_sum[f] as f32 / n).max(1.0);
        }
        for d in m {
            s.mark[d as usize] = true;
        }
        let matches = m.len() as usize;
        for (i, word) in words.iter().enumerate() {
            let df = word.docs.len() as f32;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(t, kind) in &word.matches {
                let w = kind.weight() * idf;
                let list = &self.postings[t as usize].entries;
                let mut take = |p: &Posting| {
                    let d = p.doc as usize;
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
                };
                // Few matches against a long list: look each match up; otherwise walk the list.
                if matches * ((usize::BITS - list.len().leading_zeros()) as usize) < list.len() {
                    for d in m {
                        if let Ok(at) = list.binary_search_by_key(&d, |e| e.doc) {
                            take(&list[at]);
                        }
                    }
                } else {
                    for p in list {
                        if s.mark[p.doc as usize] {
                            take(p);
                        }
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
        if m.len() == self.live.len() {
            // Every product (`m` is a part of `live`).
            return self.all_facets.get_or_init(|| self.count_facets(m)).clone();
        }
        self.count_facets(m)
    }

    /// Counts per facet value over `m`, in one pass over the matches.
    fn count_facets(&self, m: &RoaringBitmap) -> Facets {
        let values = |kind: Kind| &self.values[kind as usize];
        let mut brands = vec![0u64; values(Kind::Brand).names.len()];
        let mut categories = vec![0u64; values(Kind::Category).names.len()];
        let mut steps = vec![0u64; values(Kind::Step).names.len()];
        let mut concerns = [0u64; 16];
        let flag_at: Vec<usize> = FACETS.iter().filter_map(|c| flag_index(c)).collect();
        let mut flags = vec![[0u64; 3]; flag_at.len()];
        for d in m {
            let row = &self.facet_of[d as usize];
            brands[row.brand as usize] += 1;
            categories[row.category as usize] += 1;
            steps[row.step as usize] += 1;
            let mut bits = row.concerns;
            while bits != 0 {
                concerns[bits.trailing_zeros() as usize] += 1;
                bits &= bits - 1;
            }
            for (counts, at) in flags.iter_mut().zip(&flag_at) {
                counts[((row.flags >> (2 * at)) & 3) as usize] += 1;
            }
        }
        let name = |kind: Kind, i: usize| {
            let v = values(kind).names[i].as_str();
            if v == NONE { "unknown".to_owned() } else { v.to_owned() }
        };
        let all = |kind: Kind, counts: &[u64]| {
            counts.iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, n)| (name(kind, i), *n as i64)).collect()
        };
        // The 50 largest, ties by value (as `ORDER BY COUNT(*) DESC, value`, a missing value first).
        let top = |kind: Kind, counts: &[u64]| {
            let mut all: Vec<(u64, usize)> =
                counts.iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, n)| (*n, i)).collect();
            let names = &values(kind).names;
            all.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| names[a.1].cmp(&names[b.1])));
            all.into_iter().take(TOP).map(|(n, i)| (name(kind, i), n as i64)).collect::<BTreeMap<_, _>>()
        };
        let mut out = Facets::new();
        for facet in FACETS {
            let counts: BTreeMap<String, i64> = match facet {
                "routine_step" => all(Kind::Step, &steps),
                "brand" => top(Kind::Brand, &brands),
                "category" => top(Kind::Category, &categories),
                "concern" => {
                    let concern_values = values(Kind::Concern);
                    let mut counts: Vec<u64> = concerns[..concern_values.names.len().min(16)].to_vec();
                    // Beyond 16 concern values (none today), by intersection.
                    counts.extend(concern_values.docs.iter().skip(16).map(|b| m.intersection_len(b)));
                    all(Kind::Concern, &counts)
                }
                column => {
                    let at = flag_index(column).and_then(|i| flag_at.iter().position(|a| *a == i));
                    let [unknown, no, yes] = at.map_or([0; 3], |at| flags[at]);
                    [("true", yes), ("false", no), ("unknown", unknown)]
                        .into_iter()
                        .filter(|(_, n)| *n > 0)
                        .map(|(v, n)| (v.to_owned(), n as i64))
                        .collect()
                }
            };
            out.insert(facet.to_owned(), counts);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::ListProducts;
    use crate::model::{Product, ProductStatus};

    fn doc(id: &str, name: &str, brand: &str) -> SearchDoc {
        let product = Product {
            id: id.into(),
            external_id: None,
            name: name.into(),
            brand: brand.into(),
            category: Some("Skincare/Moisturizers".into()),
            description: None,
            ingredients: None,
            highlights: Vec::new(),
            attributes: None,
            status: ProductStatus::Active,
            version: 1,
            created_at: "2025-01-01T00:00:00Z".into(),
            updated_at: "2025-01-01T00:00:00Z".into(),
        };
        SearchDoc {
            id: id.into(),
            external_id: None,
            status: "active".into(),
            brand: brand.into(),
            category: product.category.clone(),
            routine_step: Some("moisturizer".into()),
            skin_types: None,
            families: None,
            flags: [Some(false), None, None, None, None, None, None, None, Some(false)],
            min_price: None,
            kb_version: None,
            concerns: Vec::new(),
            ingredient_ids: Vec::new(),
            name_keys: Vec::new(),
            name: name.into(),
            highlights: Vec::new(),
            listing: Listed::new(&product).unwrap(),
        }
    }

    fn filter(q: ListProducts) -> SearchFilter {
        SearchFilter::parse(&q).unwrap()
    }

    fn ids(found: &Found) -> Vec<&str> {
        found.items.iter().map(|l| l.id.as_str()).collect()
    }

    /// Every page of a search, following the cursors.
    fn pages(s: &State, f: &SearchFilter, limit: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut after: Option<After> = None;
        loop {
            let found = s.search(f, after.as_ref(), limit, false);
            out.extend(found.items.iter().map(|l| l.id.clone()));
            match found.next {
                // Through the cursor's text, as a client sends it back.
                Some(next) => after = Some(After::decode(&next.encode(), !f.words.is_empty()).unwrap()),
                None => return out,
            }
        }
    }

    #[test]
    fn products_arriving_out_of_id_order_are_listed_in_id_order() {
        let mut s = State::new();
        for id in ["prd_c", "prd_e", "prd_a", "prd_d", "prd_b"] {
            s.upsert(doc(id, &format!("Cream {id}"), "Brand"));
        }
        assert!(!s.monotone);
        let all = filter(ListProducts::default());
        assert_eq!(pages(&s, &all, 2), ["prd_a", "prd_b", "prd_c", "prd_d", "prd_e"]);
        assert_eq!(ids(&s.search(&all, Some(&After::Id("prd_b".into())), 2, false)), ["prd_c", "prd_d"]);
        // Replacing one keeps its place; removing one closes the gap.
        s.upsert(doc("prd_d", "Cream again", "Other"));
        s.remove("prd_b");
        assert!(!s.contains("prd_b"));
        assert_eq!(pages(&s, &all, 3), ["prd_a", "prd_c", "prd_d", "prd_e"]);
        let other = filter(ListProducts { brand: Some("Other".into()), ..ListProducts::default() });
        assert_eq!(pages(&s, &other, 3), ["prd_d"]);
        // Ranked pages, ties by id, through cursors of one item.
        let cream = filter(ListProducts { q: Some("cream".into()), ..ListProducts::default() });
        let ranked = pages(&s, &cream, 1);
        let mut sorted = ranked.clone();
        sorted.sort();
        assert_eq!(sorted, ["prd_a", "prd_c", "prd_d", "prd_e"], "each once");
        assert_eq!(ranked, pages(&s, &cream, 10));
    }

    #[test]
    fn cursors_round_trip_and_refuse_strangers() {
        let a = After::Ranked(1.25, "prd_x".into());
        assert_eq!(After::decode(&a.encode(), true), Some(a));
        assert_eq!(After::decode("prd_x", false), Some(After::Id("prd_x".into())));
        assert_eq!(After::decode("prd_x", true), None);
        assert_eq!(After::decode("s:zz:prd_x", true), None);
        assert_eq!(After::decode(&format!("s:{:08x}:prd_x", f32::NAN.to_bits()), true), None);
    }

    #[test]
    fn removed_words_and_values_leave_no_trace_in_counts() {
        let mut s = State::new();
        s.upsert(doc("prd_a", "Velvet Cream", "Brand"));
        s.upsert(doc("prd_a", "Silk Lotion", "Other"));
        let velvet = filter(ListProducts { q: Some("velvet".into()), facets: Some(true), ..ListProducts::default() });
        let found = s.search(&velvet, None, 10, true);
        assert!(found.items.is_empty());
        let everything = s.search(&filter(ListProducts::default()), None, 10, true);
        let facets = everything.facets.unwrap();
        assert_eq!(facets["brand"].len(), 1, "{facets:?}");
        assert_eq!(facets["brand"]["Other"], 1);
        assert_eq!(facets["fragrance_free"]["unknown"], 1);
        assert_eq!(facets["vegan"]["false"], 1);
        assert_eq!(s.len(), 1);
        // The counts of every product are kept between searches, and forgotten at a change.
        s.upsert(doc("prd_b", "Rich Balm", "Third"));
        let facets = s.search(&filter(ListProducts::default()), None, 10, true).facets.unwrap();
        assert_eq!(facets["brand"].keys().collect::<Vec<_>>(), ["Other", "Third"]);
        s.remove("prd_a");
        let facets = s.search(&filter(ListProducts::default()), None, 10, true).facets.unwrap();
        assert_eq!(facets["brand"].keys().collect::<Vec<_>>(), ["Third"]);
    }
}
