//! Kits and gift sets: a SKU with no stock of its own, made of component SKUs. Reserving, selling
//! or returning a kit moves its components; a kit's availability is what its scarcest component
//! allows.

use crate::model::{Kit, Quantity, SkuId};

/// The plain SKUs one unit of `sku` takes: itself once for a plain SKU, the components for a kit.
pub(crate) fn components(sku: &SkuId, kit: Option<&Kit>) -> Vec<(SkuId, Quantity)> {
    match kit {
        Some(kit) => kit.components.iter().map(|c| (c.sku.clone(), c.quantity)).collect(),
        None => vec![(sku.clone(), 1)],
    }
}

/// Whole kits that component availabilities allow: the minimum over components of
/// `floor(available / units per kit)`. Each pair is (units available, units per kit).
pub fn kit_units(components: impl IntoIterator<Item = (Quantity, Quantity)>) -> Quantity {
    components.into_iter().map(|(available, per_kit)| (available.max(0)) / per_kit.max(1)).min().unwrap_or(0)
}

/// Why a kit definition is unusable, if it is.
pub(crate) fn kit_problem(kit: &Kit, is_plain: impl Fn(&SkuId) -> bool) -> Option<String> {
    if kit.components.is_empty() {
        return Some(format!("kit {} has no components", kit.sku));
    }
    for (i, component) in kit.components.iter().enumerate() {
        if component.quantity <= 0 {
            return Some(format!("kit {}: component {} needs a positive quantity", kit.sku, component.sku));
        }
        if !is_plain(&component.sku) {
            return Some(format!("kit {}: component {} is not a plain SKU of the setup", kit.sku, component.sku));
        }
        if kit.components[..i].iter().any(|earlier| earlier.sku == component.sku) {
            return Some(format!("kit {}: component {} is listed twice", kit.sku, component.sku));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::KitComponent;

    #[test]
    fn a_kit_is_as_available_as_its_scarcest_component() {
        assert_eq!(kit_units([(10, 1), (7, 2), (100, 3)]), 3);
        assert_eq!(kit_units([(10, 1), (1, 2)]), 0);
        assert_eq!(kit_units([(-4, 1)]), 0);
    }

    #[test]
    fn kits_are_checked() {
        let plain = |sku: &SkuId| sku.as_str().starts_with('p');
        let kit = |components: Vec<(&str, Quantity)>| Kit {
            sku: "kit".into(),
            components: components.into_iter().map(|(s, q)| KitComponent { sku: s.into(), quantity: q }).collect(),
        };
        assert_eq!(kit_problem(&kit(vec![("p1", 1), ("p2", 2)]), plain), None);
        assert!(kit_problem(&kit(vec![]), plain).is_some());
        assert!(kit_problem(&kit(vec![("p1", 0)]), plain).is_some());
        assert!(kit_problem(&kit(vec![("k1", 1)]), plain).is_some());
        assert!(kit_problem(&kit(vec![("p1", 1), ("p1", 1)]), plain).is_some());
    }
}
