//! What is in a product, and what each ingredient means.
//!
//! # Layout
//! - [`inci`]: parsing real-world ingredient declarations (synonyms in parentheses, footnote
//!   markers and their explanations, "May Contain" sections, variant headers, marketing lines,
//!   percentages, CI numbers, wrapped lines, mixed case, non-ASCII) into ordered entries.
//! - [`kb`]: the knowledge base shipped in `data/` (reviewable CSV with a source for every fact):
//!   canonical ingredients, synonyms, functions, allergen lists, comedogenic ratings, pregnancy and
//!   photosensitivity flags, concerns with evidence strength; and ingredient families for search.
//! - [`resolve`]: resolution that survives real labels (registry numbers, isomer prefixes, glued
//!   names, typos, notes) and the conservative rule for what still does not resolve: an entry
//!   *may name* every ingredient whose name it writes as a whole word.
//! - [`facts`]: the attributes a product derives from its ingredients and category
//!   (fragrance-free, non-comedogenic, allergens, actives, routine step, AM/PM ...).
//!
//! This crate is pure: no storage, no I/O beyond its embedded data. Unknown ingredients are kept
//! and reported, never dropped.

pub mod facts;
pub mod inci;
pub mod kb;
pub mod resolve;

pub use facts::{ProductFacts, RoutineStep};
pub use inci::{Entry, IngredientList, Section};
pub use kb::{Ingredient, KnowledgeBase};
pub use resolve::{DifferentSubstance, EntryMatch};
