//! Random draws the bandits need, written on [`rand::Rng`] alone (no distribution crate):
//! standard normal (Box–Muller), Gamma (Marsaglia and Tsang 2000, with the `U^(1/a)` boost for
//! shapes below 1) and Beta (`X / (X + Y)` of two Gamma draws).

use rand::Rng;

/// A standard normal draw (Box–Muller; one of the pair is discarded for simplicity).
pub fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    // 1 - u lies in (0, 1], so the logarithm is finite.
    let u1: f64 = 1.0 - rng.r#gen::<f64>();
    let u2: f64 = rng.r#gen::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A Gamma(`shape`, 1) draw for `shape > 0` (Marsaglia–Tsang squeeze and rejection); NaN for a
/// shape that is not positive and finite.
pub fn gamma<R: Rng + ?Sized>(shape: f64, rng: &mut R) -> f64 {
    if !(shape > 0.0 && shape.is_finite()) {
        return f64::NAN;
    }
    if shape < 1.0 {
        // Gamma(a) = Gamma(a + 1) · U^(1/a).
        let u: f64 = 1.0 - rng.r#gen::<f64>();
        return gamma(shape + 1.0, rng) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = standard_normal(rng);
        let v = 1.0 + c * x;
        if v <= 0.0 {
            continue;
        }
        let v = v * v * v;
        let u: f64 = 1.0 - rng.r#gen::<f64>();
        let x2 = x * x;
        if u < 1.0 - 0.0331 * x2 * x2 || u.ln() < 0.5 * x2 + d * (1.0 - v + v.ln()) {
            return d * v;
        }
    }
}

/// A Beta(`a`, `b`) draw for `a, b > 0`: `X / (X + Y)` with `X ~ Gamma(a)`, `Y ~ Gamma(b)`.
pub fn beta<R: Rng + ?Sized>(a: f64, b: f64, rng: &mut R) -> f64 {
    let x = gamma(a, rng);
    let y = gamma(b, rng);
    if x + y > 0.0 {
        x / (x + y)
    } else {
        // Both draws underflowed (tiny shapes): fall back to a fair coin weighted by the means.
        if rng.r#gen::<f64>() < a / (a + b) { 1.0 } else { 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn moments(draws: &[f64]) -> (f64, f64) {
        let n = draws.len() as f64;
        let mean = draws.iter().sum::<f64>() / n;
        let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var)
    }

    #[test]
    fn normal_draws_have_unit_variance() {
        let mut rng = StdRng::seed_from_u64(1);
        let draws: Vec<f64> = (0..200_000).map(|_| standard_normal(&mut rng)).collect();
        let (m, v) = moments(&draws);
        assert!(m.abs() < 0.01 && (v - 1.0).abs() < 0.01, "mean {m} var {v}");
    }

    #[test]
    fn gamma_draws_have_the_right_moments() {
        let mut rng = StdRng::seed_from_u64(2);
        for shape in [0.3, 1.0, 2.5, 40.0] {
            let draws: Vec<f64> = (0..200_000).map(|_| gamma(shape, &mut rng)).collect();
            let (m, v) = moments(&draws);
            // Gamma(k, 1): mean k, variance k. Standard error of the mean sqrt(k / 200000).
            assert!((m - shape).abs() < 5.0 * (shape / 200_000.0).sqrt(), "shape {shape}: mean {m}");
            assert!((v / shape - 1.0).abs() < 0.05, "shape {shape}: var {v}");
            assert!(draws.iter().all(|x| *x > 0.0));
        }
        assert!(gamma(0.0, &mut rng).is_nan());
    }

    #[test]
    fn beta_draws_have_the_right_moments() {
        let mut rng = StdRng::seed_from_u64(3);
        for (a, b) in [(1.0, 1.0), (3.0, 97.0), (0.5, 0.5), (120.0, 880.0)] {
            let draws: Vec<f64> = (0..100_000).map(|_| beta(a, b, &mut rng)).collect();
            let (m, v) = moments(&draws);
            let mean = a / (a + b);
            let var = a * b / ((a + b) * (a + b) * (a + b + 1.0));
            assert!((m - mean).abs() < 5.0 * (var / 100_000.0).sqrt(), "Beta({a},{b}): mean {m}");
            assert!((v / var - 1.0).abs() < 0.05, "Beta({a},{b}): var {v} vs {var}");
        }
    }
}
