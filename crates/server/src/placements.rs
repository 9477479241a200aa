//! Experiments on recommendation placements: the recommendation routes ask through their own
//! trait ([`PlacementExperiments`]); the experiments domain answers. Wired here because the
//! server is where both sides meet.

use dermis_feedback::Experiments;
use dermis_feedback::model::Attributes;
use dermis_recommend::routes::{PlacementExperiments, PlacementVariant};

/// The experiments domain as the recommendation routes see it.
pub struct Placements(pub Experiments);

impl PlacementExperiments for Placements {
    fn variant(
        &self,
        placement: &str,
        unit: &str,
        channel: Option<&str>,
        skin_type: Option<&str>,
    ) -> Option<PlacementVariant> {
        let attributes = Attributes {
            skin_type: skin_type.map(str::to_owned),
            channel: channel.map(str::to_owned),
            ..Attributes::default()
        };
        let (experiment, variant, config) = self.0.placement_variant(placement, unit, &attributes)?;
        Some(PlacementVariant { experiment, variant, config })
    }
}
