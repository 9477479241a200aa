//! Item-kNN: cosine similarity between items' columns of the user-item matrix, keeping each
//! item's closest neighbours; a customer's score for an item adds up the similarities of the
//! items they have to it.

use rayon::prelude::*;

use crate::RecommendError;
use crate::data::{History, Interactions};
use crate::model::{Fit, Model, Scored};

/// Settings of [`ItemKnn`].
#[derive(Debug, Clone)]
pub struct ItemKnnConfig {
    /// Neighbours kept per item.
    pub neighbours: usize,
    /// Added to the cosine's denominator: similarities resting on few shared customers shrink.
    pub shrink: f32,
}

impl Default for ItemKnnConfig {
    fn default() -> Self {
        ItemKnnConfig { neighbours: 100, shrink: 10.0 }
    }
}

/// Each item's nearest neighbours by cosine similarity.
#[derive(Debug, Clone)]
pub struct ItemKnn {
    /// `neighbours[i]`: the items closest to `i` with their similarity, best first.
    neighbours: Vec<Vec<Scored>>,
}

impl ItemKnn {
    /// The neighbours of `item`, most similar first.
    pub fn neighbours(&self, item: u32) -> &[Scored] {
        &self.neighbours[item as usize]
    }
}

impl Fit for ItemKnnConfig {
    type Model = ItemKnn;

    fn fit(&self, data: &Interactions) -> Result<ItemKnn, RecommendError> {
        let n = data.n_items();
        let norms: Vec<f32> = (0..n as u32)
            .map(|i| data.item_users(i).1.iter().map(|w| w.max(0.0).powi(2)).sum::<f32>().sqrt())
            .collect();
        let neighbours = (0..n as u32)
            .into_par_iter()
            .map_init(
                || vec![0.0f32; n],
                |acc, i| {
                    let (users, wi) = data.item_users(i);
                    let mut touched = Vec::new();
                    for (&u, &w) in users.iter().zip(wi) {
                        if w <= 0.0 {
                            continue;
                        }
                        let h = data.history(u);
                        for (&j, &wj) in h.items.iter().zip(h.weights) {
                            if j != i && wj > 0.0 {
                                if acc[j as usize] == 0.0 {
                                    touched.push(j);
                                }
                                acc[j as usize] += w * wj;
                            }
                        }
                    }
                    let mut sims: Vec<Scored> = touched
                        .iter()
                        .map(|&j| {
                            let score = acc[j as usize] / (norms[i as usize] * norms[j as usize] + self.shrink);
                            acc[j as usize] = 0.0;
                            Scored { item: j, score }
                        })
                        .filter(|s| s.score > 0.0)
                        .collect();
                    sims.sort_unstable_by(|a, b| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item)));
                    sims.truncate(self.neighbours);
                    sims
                },
            )
            .collect();
        Ok(ItemKnn { neighbours })
    }
}

impl Model for ItemKnn {
    fn name(&self) -> &'static str {
        "item-knn"
    }

    fn n_items(&self) -> usize {
        self.neighbours.len()
    }

    fn score(&self, history: History<'_>, out: &mut [f32]) {
        out.fill(0.0);
        for (&j, &w) in history.items.iter().zip(history.weights) {
            if w <= 0.0 {
                continue;
            }
            for s in &self.neighbours[j as usize] {
                out[s.item as usize] += w * s.score;
            }
        }
    }
}
