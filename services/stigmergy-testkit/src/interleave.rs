//! Reordering a stream as partitions keyed by subject may deliver it.

use std::collections::HashMap;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use stigmergy_domain::{Event, Iri};

/// A random interleaving of the subjects of `events`, the same for the same seed: the events of
/// one subject keep their order, those of different subjects are mixed, so that an event may come
/// before the design, lot or shipment it refers to. Every interleaving is equally likely.
pub fn interleave(events: &[Event], seed: u64) -> Vec<Event> {
    let mut subjects: HashMap<&Iri, usize> = HashMap::new();
    let mut queues: Vec<Vec<usize>> = Vec::new();
    let mut turns: Vec<usize> = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        let subject = *subjects.entry(&event.subject).or_insert_with(|| {
            queues.push(Vec::new());
            queues.len() - 1
        });
        queues[subject].push(index);
        turns.push(subject);
    }
    // Shuffling whose turn each position is, then handing each subject its events in order, is
    // a uniform draw among the interleavings.
    turns.shuffle(&mut StdRng::seed_from_u64(seed));
    let mut next = vec![0; queues.len()];
    turns
        .into_iter()
        .map(|subject| {
            let index = queues[subject][next[subject]];
            next[subject] += 1;
            events[index].clone()
        })
        .collect()
}
