//! The models by name ([`ModelKind`]) and every model's settings ([`Settings`]), for the command
//! line and the server: what picks a model and fits it. Apart from [`crate::model`] so that the
//! models, which implement its trait, do not import what names them all.

use std::time::{Duration, Instant};

use crate::RecommendError;
use crate::als::AlsConfig;
use crate::data::Interactions;
use crate::ease::EaseConfig;
use crate::hybrid::HybridConfig;
use crate::knn::ItemKnnConfig;
use crate::model::{Fit, Model};
use crate::popularity::PopularityConfig;

/// The models by name, for the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    Popularity,
    ItemKnn,
    Ease,
    Als,
    Hybrid,
}

impl ModelKind {
    /// Every model, baselines first.
    pub const ALL: [ModelKind; 5] =
        [ModelKind::Popularity, ModelKind::ItemKnn, ModelKind::Ease, ModelKind::Als, ModelKind::Hybrid];

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Popularity => "popularity",
            ModelKind::ItemKnn => "item-knn",
            ModelKind::Ease => "ease",
            ModelKind::Als => "als",
            ModelKind::Hybrid => "hybrid",
        }
    }

    /// A model by name.
    pub fn parse(name: &str) -> Result<Self, RecommendError> {
        Self::ALL.into_iter().find(|k| k.as_str() == name.trim().to_ascii_lowercase()).ok_or_else(|| {
            RecommendError::UnknownModel {
                name: name.to_owned(),
                known: Self::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "),
            }
        })
    }
}

/// Every model's settings.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub popularity: PopularityConfig,
    pub knn: ItemKnnConfig,
    pub ease: EaseConfig,
    pub als: AlsConfig,
    pub hybrid: HybridConfig,
}

impl Settings {
    /// Fits the model `kind` on `data`, returning it and the time the fit took.
    pub fn fit(&self, kind: ModelKind, data: &Interactions) -> Result<(Box<dyn Model>, Duration), RecommendError> {
        let start = Instant::now();
        let model: Box<dyn Model> = match kind {
            ModelKind::Popularity => Box::new(self.popularity.fit(data)?),
            ModelKind::ItemKnn => Box::new(self.knn.fit(data)?),
            ModelKind::Ease => Box::new(self.ease.fit(data)?),
            ModelKind::Als => Box::new(self.als.fit(data)?),
            ModelKind::Hybrid => Box::new(self.hybrid.fit(data)?),
        };
        Ok((model, start.elapsed()))
    }
}
