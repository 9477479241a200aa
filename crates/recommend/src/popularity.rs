//! Popularity: every customer gets the products most customers interacted with.

use crate::RecommendError;
use crate::data::{History, Interactions};
use crate::model::{Fit, Model};

/// Settings of [`Popularity`] (none yet: it counts customers with a positive signal).
#[derive(Debug, Clone, Default)]
pub struct PopularityConfig;

/// The number of customers with a positive signal on each item.
#[derive(Debug, Clone)]
pub struct Popularity {
    counts: Vec<f32>,
}

impl Popularity {
    /// The count for each item.
    pub fn counts(&self) -> &[f32] {
        &self.counts
    }
}

impl Fit for PopularityConfig {
    type Model = Popularity;

    fn fit(&self, data: &Interactions) -> Result<Popularity, RecommendError> {
        let counts = (0..data.n_items() as u32)
            .map(|i| data.item_users(i).1.iter().filter(|&&w| w > 0.0).count() as f32)
            .collect();
        Ok(Popularity { counts })
    }
}

impl Model for Popularity {
    fn name(&self) -> &'static str {
        "popularity"
    }

    fn n_items(&self) -> usize {
        self.counts.len()
    }

    fn score(&self, _history: History<'_>, out: &mut [f32]) {
        out.copy_from_slice(&self.counts);
    }
}
