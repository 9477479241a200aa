//! What is in a product, and what each ingredient means.
//!
//! # Layout
//! - [`inci`]: parsing real-world ingredient declarations (synonyms in parentheses, footnote
//!   markers and their explanations, "May Contain" sections, variant headers, marketing lines,
//!   percentages, CI numbers, wrapped lines, mixed case, non-ASCII) into ordered entries.
//! - `ingredient` (its items re-exported by [`kb`]): one ingredient and what is known about it
//!   (functions, allergen lists, comedogenic ratings, pregnancy and photosensitivity flags,
//!   concerns with evidence strength), and the ingredient families for search.
//! - `phrases`: the phrase index resolution reads with (every name, the reviewed list of
//!   different substances, generic family words; the tables that find a name one typo away),
//!   built with the knowledge base. [`resolve::DifferentSubstance`] and [`resolve::words`] are
//!   re-exported from it.
//! - [`kb`]: the knowledge base shipped in `data/` (reviewable CSV with a source for every fact),
//!   loaded and checked: lookups by id and by any exact name.
//! - [`resolve`]: resolution that survives real labels (registry numbers, isomer prefixes, glued
//!   names, typos, notes) and the conservative rule for what still does not resolve: an entry
//!   *may name* every ingredient whose name it writes as a whole word; label forms and family
//!   names as search terms ([`KnowledgeBase::expand`]).
//!
//! Each module uses only those listed above it (and `inci`): `ingredient` ← `phrases` ← `kb` ←
//! `resolve` ← `facts`.
//! - [`facts`]: the attributes a product derives from its ingredients and category
//!   (fragrance-free, non-comedogenic, allergens, actives, routine step, AM/PM ...).
//!
//! This crate is pure: no storage, no I/O beyond its embedded data. Unknown ingredients are kept
//! and reported, never dropped.

pub mod facts;
pub mod inci;
mod ingredient;
pub mod kb;
mod phrases;
pub mod resolve;

pub use facts::{ProductFacts, RoutineStep};
pub use inci::{Entry, IngredientList, Section};
pub use kb::{Ingredient, KnowledgeBase};
pub use resolve::{DifferentSubstance, EntryMatch};
