//! The routine builder: a morning routine (cleanser → toner → serum → eye → moisturizer →
//! sunscreen) and an evening one (cleanser → toner → serum/treatment → eye → moisturizer) for the
//! customer's goals and budget, each product safe for them, suited to its time of day, with no
//! clashing actives in one routine ([`CLASHES`]), each step explained.

use std::collections::HashSet;

use dermis_ingredients::RoutineStep;
use dermis_ingredients::kb::in_family;
use serde::Serialize;

use super::engine::{Context, Engine, Item, Reason, Request, Subject, TimeOfDay, words_list};
use super::products::ProductEntry;
use crate::safety::Excluded;

/// Classes of actives that clash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActiveClass {
    Retinoid,
    Aha,
    Bha,
    BenzoylPeroxide,
    VitaminC,
}

impl ActiveClass {
    fn words(self) -> &'static str {
        match self {
            ActiveClass::Retinoid => "a retinoid",
            ActiveClass::Aha => "an AHA",
            ActiveClass::Bha => "a BHA",
            ActiveClass::BenzoylPeroxide => "benzoyl peroxide",
            ActiveClass::VitaminC => "vitamin C",
        }
    }
}

/// Pairs never put in one routine: a retinoid with AHA/BHA exfoliants or benzoyl peroxide
/// (irritation; benzoyl peroxide also oxidizes retinol), vitamin C with benzoyl peroxide
/// (oxidized).
pub const CLASHES: [(ActiveClass, ActiveClass); 4] = [
    (ActiveClass::Retinoid, ActiveClass::Aha),
    (ActiveClass::Retinoid, ActiveClass::Bha),
    (ActiveClass::Retinoid, ActiveClass::BenzoylPeroxide),
    (ActiveClass::VitaminC, ActiveClass::BenzoylPeroxide),
];

/// The steps of each routine, in order.
pub const AM_STEPS: [RoutineStep; 6] = [
    RoutineStep::Cleanser,
    RoutineStep::Toner,
    RoutineStep::Serum,
    RoutineStep::Eye,
    RoutineStep::Moisturizer,
    RoutineStep::Sunscreen,
];
/// The evening steps.
pub const PM_STEPS: [RoutineStep; 5] =
    [RoutineStep::Cleanser, RoutineStep::Toner, RoutineStep::Serum, RoutineStep::Eye, RoutineStep::Moisturizer];

/// The order steps are filled in when a budget is short: what protects and cleans first.
const PRIORITY: [RoutineStep; 6] = [
    RoutineStep::Sunscreen,
    RoutineStep::Cleanser,
    RoutineStep::Moisturizer,
    RoutineStep::Serum,
    RoutineStep::Toner,
    RoutineStep::Eye,
];

/// One step of a routine.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub step: RoutineStep,
    pub product: Item,
}

/// A routine for a customer.
#[derive(Debug, Clone, Serialize)]
pub struct Routine {
    pub recommendation_id: String,
    pub am: Vec<Step>,
    pub pm: Vec<Step>,
    /// Sum of the distinct products' prices.
    pub total_price: f64,
    /// Steps left empty and why, choices made, in words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub personalized: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excluded: Option<Vec<Excluded>>,
}

/// The clashing classes of actives a product contains.
pub fn classes(e: &ProductEntry, engine: &Engine) -> Vec<ActiveClass> {
    let kb = engine.safety().kb();
    let mut out = HashSet::new();
    for id in e.safety.ingredient_ids(kb) {
        let Some(g) = kb.get(id) else { continue };
        if in_family(g, "retinoids") {
            out.insert(ActiveClass::Retinoid);
        }
        if in_family(g, "ahas") {
            out.insert(ActiveClass::Aha);
        }
        if in_family(g, "bhas") {
            out.insert(ActiveClass::Bha);
        }
        if id == "benzoyl-peroxide" {
            out.insert(ActiveClass::BenzoylPeroxide);
        }
        if id.contains("ascorb") {
            out.insert(ActiveClass::VitaminC);
        }
    }
    let mut v: Vec<_> = out.into_iter().collect();
    v.sort_by_key(|c| *c as u8);
    v
}

/// The clash between a product's classes and a routine's, if any.
fn clash(have: &[ActiveClass], with: &[ActiveClass]) -> Option<(ActiveClass, ActiveClass)> {
    CLASHES
        .iter()
        .copied()
        .find(|&(a, b)| (have.contains(&a) && with.contains(&b)) || (have.contains(&b) && with.contains(&a)))
}

fn fits(e: &ProductEntry, when: TimeOfDay) -> bool {
    let f = e.facts.as_ref();
    match when {
        TimeOfDay::Am => f.and_then(|f| f.am) != Some(false),
        TimeOfDay::Pm => f.and_then(|f| f.pm) != Some(false),
    }
}

impl Engine {
    /// Builds the morning and evening routines; `goals` (concerns) replace the profile's when
    /// given; `budget_minor` bounds the sum of the distinct products' prices.
    pub fn routine(
        &self,
        subject: &Subject,
        goals: &[String],
        budget_minor: Option<i64>,
        ctx: Context,
        explain: bool,
    ) -> Routine {
        let mut subject = subject.clone();
        if !goals.is_empty() {
            subject.content.concerns = goals.to_vec();
        }
        // First with a sunscreen in the routine (the builder puts one in the morning, so a
        // photosensitizer is flagged, not excluded); if none could be chosen, again as the
        // customer's routine is.
        let mut with_sunscreen = subject.clone();
        with_sunscreen.safety.routine_has_sunscreen = Some(true);
        let first = self.build_routine(&with_sunscreen, budget_minor, ctx.clone(), explain);
        if first.am.iter().any(|s| s.step == RoutineStep::Sunscreen) {
            return first;
        }
        let mut r = self.build_routine(&subject, budget_minor, ctx, explain);
        r.notes
            .push("no sunscreen could be chosen, so products that make skin sensitive to the sun are left out".into());
        r
    }

    fn build_routine(&self, subject: &Subject, budget_minor: Option<i64>, ctx: Context, explain: bool) -> Routine {
        let table = self.catalog().table();
        let in_routine = |e: &ProductEntry| e.routine_step().is_some_and(|s| AM_STEPS.contains(&s));
        let req = Request {
            k: 300,
            placement: Some(super::engine::ROUTINE_PLACEMENT.into()),
            explain,
            filter: Some(&in_routine),
            exclude: Vec::new(),
            shown: Default::default(),
            context: Context { time_of_day: None, ..ctx },
            blend: None,
            rerank: None,
        };
        let ranked = self.recommend(subject, &req);
        let mut notes = Vec::new();
        notes.extend(ranked.notices.iter().cloned());
        let by_id = |id: &str| table.find(id).map(|t| table.get(t));
        let mut picked_am: Vec<(RoutineStep, Item, Vec<ActiveClass>)> = Vec::new();
        let mut picked_pm: Vec<(RoutineStep, Item, Vec<ActiveClass>)> = Vec::new();
        let mut spent: i64 = 0;
        let mut bought: HashSet<String> = HashSet::new();
        // The cheapest product of each step, to keep money for the steps still to fill.
        let cheapest = |step: RoutineStep| {
            ranked
                .items
                .iter()
                .filter(|i| i.routine_step == Some(step))
                .filter_map(|i| by_id(&i.product_id).and_then(|e| e.price_minor))
                .min()
                .unwrap_or(0)
        };
        for when in [TimeOfDay::Am, TimeOfDay::Pm] {
            let steps: &[RoutineStep] = if when == TimeOfDay::Am { &AM_STEPS } else { &PM_STEPS };
            for (n, &step) in PRIORITY.iter().filter(|s| steps.contains(s)).enumerate() {
                let reserve: i64 =
                    PRIORITY.iter().filter(|s| steps.contains(s)).skip(n + 1).map(|&s| cheapest(s)).sum();
                let picked = if when == TimeOfDay::Am { &picked_am } else { &picked_pm };
                let have: Vec<ActiveClass> = picked.iter().flat_map(|p| p.2.iter().copied()).collect();
                let mut skipped_clash = None;
                let choice = ranked.items.iter().find(|i| {
                    if i.routine_step != Some(step) {
                        return false;
                    }
                    let Some(e) = by_id(&i.product_id) else { return false };
                    if !fits(e, when) {
                        return false;
                    }
                    let cls = classes(e, self);
                    if let Some(c) = clash(&cls, &have) {
                        skipped_clash.get_or_insert(c);
                        return false;
                    }
                    let cost = if bought.contains(&e.id) { 0 } else { e.price_minor.unwrap_or(0) };
                    budget_minor.is_none_or(|b| spent + cost + reserve <= b || (spent + cost <= b && reserve == 0))
                });
                let label = if when == TimeOfDay::Am { "morning" } else { "evening" };
                match choice {
                    Some(item) => {
                        let e = by_id(&item.product_id).expect("ranked products are in the table");
                        let cls = classes(e, self);
                        if bought.insert(e.id.clone()) {
                            spent += e.price_minor.unwrap_or(0);
                        }
                        let mut item = item.clone();
                        if let Some((a, b)) = skipped_clash {
                            item.reasons.push(Reason {
                                kind: "no_clash",
                                text: format!(
                                    "chosen so that {} and {} are not in the same {label} routine",
                                    a.words(),
                                    b.words()
                                ),
                            });
                        }
                        if !cls.is_empty() {
                            let names: Vec<String> = cls.iter().map(|c| c.words().to_owned()).collect();
                            item.reasons.push(Reason {
                                kind: "routine_fit",
                                text: format!("its {} suits the {label} routine", words_list(&names)),
                            });
                        }
                        let list = if when == TimeOfDay::Am { &mut picked_am } else { &mut picked_pm };
                        list.push((step, item, cls));
                    }
                    None => notes.push(format!(
                        "no {} for the {label} routine{}",
                        step_words(step),
                        if budget_minor.is_some() {
                            " within the budget and your profile"
                        } else {
                            " that is safe for your profile"
                        }
                    )),
                }
            }
        }
        let order = |v: Vec<(RoutineStep, Item, Vec<ActiveClass>)>, steps: &[RoutineStep]| {
            let mut v: Vec<Step> = v.into_iter().map(|(step, product, _)| Step { step, product }).collect();
            v.sort_by_key(|s| steps.iter().position(|x| *x == s.step));
            v
        };
        Routine {
            recommendation_id: ranked.recommendation_id,
            am: order(picked_am, &AM_STEPS),
            pm: order(picked_pm, &PM_STEPS),
            total_price: spent as f64 / 100.0,
            notes,
            personalized: ranked.personalized,
            excluded: ranked.excluded,
        }
    }
}

fn step_words(s: RoutineStep) -> &'static str {
    match s {
        RoutineStep::Cleanser => "cleanser",
        RoutineStep::Toner => "toner",
        RoutineStep::Serum => "serum",
        RoutineStep::Eye => "eye cream",
        RoutineStep::Moisturizer => "moisturizer",
        RoutineStep::Sunscreen => "sunscreen",
        RoutineStep::Mask => "mask",
        RoutineStep::Exfoliant => "exfoliant",
    }
}
