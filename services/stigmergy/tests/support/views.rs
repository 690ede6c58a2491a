//! Comparing two views stores, as the crash tests do against a clean replay.

use stigmergy_domain::views::EventIndex;
use stigmergy_domain::{Event, Iri, LogPosition};
use stigmergy_store::ViewStore;

/// Every resource `events` touch, in IRI order.
pub fn touched(events: &[Event]) -> Vec<Iri> {
    let mut resources: Vec<Iri> = events
        .iter()
        .flat_map(|e| EventIndex::of(e, LogPosition(0)).touches)
        .map(|t| t.resource)
        .collect();
    resources.sort();
    resources.dedup();
    resources
}

/// Fails unless both stores hold the same record of `resource` (or neither holds one).
pub async fn assert_same_record(resource: &Iri, store: &dyn ViewStore, clean: &dyn ViewStore) {
    let (a, b) = (
        store.record(resource).await.unwrap(),
        clean.record(resource).await.unwrap(),
    );
    assert!(
        match (&a, &b) {
            (Some(a), Some(b)) => a.same_as(b),
            (None, None) => true,
            _ => false,
        },
        "the record of {resource} differs from a clean replay:\n{a:?}\n{b:?}"
    );
}
