//! Small synthetic interaction data for the tests.

#![allow(dead_code)]

use dermis_recommend::{Interactions, InteractionsBuilder, Signal, SignalWeights};

/// `users` customers over `items` products in `groups` taste groups: each customer reviews
/// `per_user` products of their group (rated 5) and one product of another group (rated 2).
/// Deterministic.
pub fn clustered(users: usize, items: usize, groups: usize, per_user: usize) -> Interactions {
    let mut b = InteractionsBuilder::new(SignalWeights::default());
    let per_group = items / groups;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    for u in 0..users {
        let g = u % groups;
        let mut taken = Vec::new();
        while taken.len() < per_user.min(per_group) {
            let i = g * per_group + next(per_group);
            if !taken.contains(&i) {
                taken.push(i);
            }
        }
        for i in &taken {
            b.add(&format!("u{u}"), &format!("p{i}"), Signal::Review { rating: 5.0 });
        }
        let other = ((g + 1) % groups) * per_group + next(per_group);
        b.add(&format!("u{u}"), &format!("p{other}"), Signal::Review { rating: 2.0 });
    }
    b.build()
}
