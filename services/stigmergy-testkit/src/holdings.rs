//! Who holds how much of what, mirrored from the capture rules, with a pool per organisation of
//! the resources it holds enough of to use, so that a random one is picked in constant time.

use std::collections::HashMap;

#[derive(Clone, Copy, Debug)]
struct Held {
    /// In the resource's base unit, changed by exactly the additions capture makes, in the same
    /// order, so that both agree to the last bit.
    amount: f64,
    /// Where the resource is in its holder's pool, when it is there.
    slot: Option<usize>,
}

#[derive(Debug)]
pub(crate) struct Holdings {
    held: HashMap<(u32, u32), Held>,
    /// Per organisation, the resources it holds at least the least usable amount of.
    pools: Vec<Vec<u32>>,
}

impl Holdings {
    pub(crate) fn new(organisations: usize) -> Self {
        Self {
            held: HashMap::new(),
            pools: vec![Vec::new(); organisations],
        }
    }

    pub(crate) fn amount(&self, organisation: u32, resource: u32) -> f64 {
        self.held
            .get(&(organisation, resource))
            .map_or(0.0, |held| held.amount)
    }

    /// The resources `organisation` can use, in no meaningful order.
    pub(crate) fn pool(&self, organisation: u32) -> &[u32] {
        &self.pools[organisation as usize]
    }

    /// Adds `delta` (negative to take away); the resource stays in the pool while at least
    /// `least_usable` is held.
    pub(crate) fn add(&mut self, organisation: u32, resource: u32, delta: f64, least_usable: f64) {
        let pool = &mut self.pools[organisation as usize];
        let held = self.held.entry((organisation, resource)).or_insert(Held {
            amount: 0.0,
            slot: None,
        });
        held.amount += delta;
        let usable = held.amount >= least_usable;
        let moved = match (usable, held.slot) {
            (true, None) => {
                held.slot = Some(pool.len());
                pool.push(resource);
                None
            }
            (false, Some(slot)) => {
                held.slot = None;
                pool.swap_remove(slot);
                pool.get(slot).map(|&moved| (moved, slot))
            }
            _ => None,
        };
        if let Some((moved, slot)) = moved
            && let Some(held) = self.held.get_mut(&(organisation, moved))
        {
            held.slot = Some(slot);
        }
    }
}
