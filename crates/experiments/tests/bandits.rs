//! The bandits on seeded simulations with known true reward rates: Thompson sampling converges
//! on the best variant, LinUCB learns which product suits which skin type, and off-policy
//! estimates from uniformly logged traffic recover a policy's true value (doubly robust more
//! precisely than IPS).

use dermis_experiments::bandit::linucb::LinUcb;
use dermis_experiments::bandit::off_policy::{LoggedDecision, doubly_robust, ips};
use dermis_experiments::bandit::thompson::ThompsonSampling;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[test]
fn thompson_converges_on_the_best_of_three_arms() {
    let rates = [0.05, 0.08, 0.12];
    for seed in [1, 2, 3] {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut bandit = ThompsonSampling::new(3, 50).unwrap();
        let mut best_late = 0;
        for round in 0..5_000 {
            let arm = bandit.choose(&mut rng);
            let rewarded = rng.r#gen::<f64>() < rates[arm];
            bandit.update(arm, rewarded).unwrap();
            if round >= 4_000 && arm == 2 {
                best_late += 1;
            }
        }
        eprintln!("seed {seed}: best arm in {best_late} of the last 1000 pulls; trials {:?}", bandit.arms());
        assert!(bandit.arms().iter().all(|a| a.trials >= 50), "seed {seed}: minimum sample");
        assert!(best_late > 800, "seed {seed}: best arm got {best_late} of the last 1000 pulls");
        let p = bandit.probability_best(10_000, &mut rng);
        assert!(p[2] > 0.9, "seed {seed}: P(best) {p:?}");
    }
}

/// True click rates of 3 products by skin type (dry, oily, combination): each suits one type.
const RATES: [[f64; 3]; 3] = [[0.30, 0.10, 0.15], [0.10, 0.35, 0.15], [0.12, 0.14, 0.30]];

/// One-hot skin type and a constant.
fn context(skin: usize) -> [f64; 4] {
    let mut x = [0.0, 0.0, 0.0, 1.0];
    x[skin] = 1.0;
    x
}

#[test]
fn linucb_learns_which_product_suits_which_skin() {
    let mut rng = StdRng::seed_from_u64(42);
    let mut model = LinUcb::new(4, 1.0, 1.0).unwrap();
    let products = ["serum", "gel", "balm"];
    let mut late_correct = 0;
    for round in 0..4_000 {
        let skin = rng.gen_range(0..3);
        let x = context(skin);
        let pick = model.choose(&x, &products).unwrap().unwrap();
        let index = products.iter().position(|p| *p == pick).unwrap();
        let reward = if rng.r#gen::<f64>() < RATES[skin][index] { 1.0 } else { 0.0 };
        model.update(pick, &x, reward).unwrap();
        if round >= 3_000 && index == skin {
            late_correct += 1;
        }
    }
    eprintln!("LinUCB: suited product in {late_correct} of the last 1000 rounds");
    assert!(late_correct > 750, "the suited product was chosen {late_correct} of the last 1000 times");
    for (skin, &suited) in products.iter().enumerate() {
        let x = context(skin);
        let best = products
            .iter()
            .max_by(|a, b| model.expected_reward(a, &x).unwrap().total_cmp(&model.expected_reward(b, &x).unwrap()))
            .unwrap();
        assert_eq!(*best, suited, "skin {skin}");
        let ranked = model.rank(&x, &products).unwrap();
        assert_eq!(ranked[0].0, suited, "skin {skin}: {ranked:?}");
    }
}

/// Uniformly random logging over 3 actions: (skin, action, propensity, reward).
fn uniform_log(rng: &mut StdRng, n: usize) -> Vec<LoggedDecision<usize>> {
    (0..n)
        .map(|_| {
            let skin = rng.gen_range(0..3);
            let action = rng.gen_range(0..3);
            let reward = if rng.r#gen::<f64>() < RATES[skin][action] { 1.0 } else { 0.0 };
            LoggedDecision { context: skin, action, propensity: 1.0 / 3.0, reward }
        })
        .collect()
}

/// The policy to evaluate: the suited product with probability 0.8, each other with 0.1.
fn target(skin: &usize, action: usize) -> f64 {
    if action == *skin { 0.8 } else { 0.1 }
}

fn true_value() -> f64 {
    (0..3).map(|s| (0..3).map(|a| target(&s, a) * RATES[s][a]).sum::<f64>()).sum::<f64>() / 3.0
}

#[test]
fn ips_recovers_a_policys_value_from_uniform_logs() {
    let mut rng = StdRng::seed_from_u64(9);
    let logs = uniform_log(&mut rng, 20_000);
    let truth = true_value();
    let e = ips(&logs, target).unwrap();
    assert!((e.value - truth).abs() < 0.02, "IPS {} vs true {truth}", e.value);
    assert!(e.ci_low <= truth && truth <= e.ci_high, "{e:?} vs {truth}");
    // The always-serum policy is worse, and IPS sees it.
    let serum = ips(&logs, |_, a| if a == 0 { 1.0 } else { 0.0 }).unwrap();
    assert!(serum.ci_high < e.ci_low, "{serum:?} vs {e:?}");
}

#[test]
fn doubly_robust_beats_ips_across_seeds() {
    let truth = true_value();
    let (mut ips_sq, mut dr_sq, mut dr_covered) = (0.0, 0.0, 0);
    let seeds = 20;
    for seed in 0..seeds {
        let mut rng = StdRng::seed_from_u64(100 + seed);
        // The reward model: per (skin, action) click rates fitted on separate, earlier logs.
        let mut clicks = [[0.0f64; 3]; 3];
        let mut shows = [[0.0f64; 3]; 3];
        for r in uniform_log(&mut rng, 900) {
            clicks[r.context][r.action] += r.reward;
            shows[r.context][r.action] += 1.0;
        }
        let model = |s: &usize, a: usize| clicks[*s][a] / shows[*s][a].max(1.0);
        let logs = uniform_log(&mut rng, 1_000);
        let i = ips(&logs, target).unwrap();
        let d = doubly_robust(&logs, 3, target, model).unwrap();
        ips_sq += (i.value - truth).powi(2);
        dr_sq += (d.value - truth).powi(2);
        dr_covered += usize::from(d.ci_low <= truth && truth <= d.ci_high);
        assert!(d.std_error < i.std_error, "seed {seed}: DR se {} vs IPS se {}", d.std_error, i.std_error);
    }
    let (ips_rmse, dr_rmse) = ((ips_sq / seeds as f64).sqrt(), (dr_sq / seeds as f64).sqrt());
    eprintln!("over {seeds} seeds: IPS RMSE {ips_rmse:.4}, DR RMSE {dr_rmse:.4}, DR covered {dr_covered}");
    assert!(dr_rmse < ips_rmse, "DR RMSE {dr_rmse} vs IPS {ips_rmse}");
    assert!(dr_covered >= 16, "DR's 95% interval held the true value in {dr_covered} of {seeds} seeds");
}
