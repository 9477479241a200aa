//! A request's own reordering of the list the safety layer and the business rules produced (an
//! experiment variant's rules, a contextual bandit ordering the top): it is shown the safe list
//! and answers with an order of it, so it can move products and change their scores but never
//! add one, drop one, or bring back one the safety layer excluded.

use super::products::ProductEntry;

/// Given the ranked safe list (each product with its score), the new order: `(index into the
/// list, score)`, best first. Indices out of range or repeated are ignored, and products it
/// leaves out follow in their order, with their scores.
pub type Rerank<'a> = dyn Fn(&[(&ProductEntry, f32)]) -> Vec<(usize, f32)> + Send + Sync + 'a;

/// Puts `items` in the `order` a [`Rerank`] answered (only their order and scores change).
pub(crate) fn reorder<T>(items: &mut Vec<T>, order: Vec<(usize, f32)>, mut set_score: impl FnMut(&mut T, f32)) {
    let mut slots: Vec<Option<T>> = std::mem::take(items).into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(slots.len());
    for (i, score) in order {
        if let Some(mut item) = slots.get_mut(i).and_then(Option::take) {
            if score.is_finite() {
                set_score(&mut item, score);
            }
            out.push(item);
        }
    }
    out.extend(slots.into_iter().flatten());
    *items = out;
}

#[cfg(test)]
mod tests {
    use super::reorder;

    #[test]
    fn a_rerank_only_reorders() {
        let mut items: Vec<(usize, f32)> = (0..4).map(|i| (i, 1.0 - i as f32 / 10.0)).collect();
        // Repeats, an index beyond the list and a NaN score are ignored; the rest follow.
        reorder(&mut items, vec![(2, 5.0), (2, 6.0), (9, 1.0), (0, f32::NAN)], |t, s| t.1 = s);
        assert_eq!(items.iter().map(|t| t.0).collect::<Vec<_>>(), vec![2, 0, 1, 3]);
        assert_eq!(items[0].1, 5.0);
        assert_eq!(items[1].1, 1.0, "a NaN score leaves the item's own");
    }
}
