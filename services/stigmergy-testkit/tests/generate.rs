//! The generated streams are deterministic, have the mix asked for, and are admitted whole by
//! the capture rules; `interleave` is a permutation that keeps each subject's order.

use std::collections::{HashMap, HashSet};

use stigmergy_domain::rules::{CaptureState, Directory, Outcome, RetractedEvents, Seal};
use stigmergy_domain::{
    Event, EventId, EventPayload, EventType, Iri, LogPosition, OrganizationId, Submission,
};
use stigmergy_testkit::{Mix, Scenario, generate, interleave};

fn mix(events: usize) -> Mix {
    Mix::with_events(events)
}

fn ids(events: &[Event]) -> Vec<EventId> {
    events.iter().map(|event| event.event_id).collect()
}

fn count(events: &[Event], event_type: EventType) -> usize {
    events
        .iter()
        .filter(|event| event.event_type() == event_type)
        .count()
}

struct Organisations(HashSet<OrganizationId>);

impl Directory for Organisations {
    fn organization_exists(&self, id: &OrganizationId) -> bool {
        self.0.contains(id)
    }
}

/// Feeds the stream in order through the capture rules as the sequencer does (seal, admit, note
/// the log position, hand retractions the event they retract) and returns every refusal, or a
/// sealed event that differs from the generated one, as a sentence.
fn refusals(scenario: &Scenario) -> Vec<String> {
    let directory = Organisations(scenario.organizations.iter().cloned().collect());
    let by_id: HashMap<EventId, &Event> = scenario
        .events
        .iter()
        .map(|event| (event.event_id, event))
        .collect();
    let mut state = CaptureState::new();
    let mut refusals = Vec::new();
    for (index, event) in scenario.events.iter().enumerate() {
        let submission = Submission {
            event_id: Some(event.event_id),
            schema_version: event.schema_version,
            occurred_at: event.occurred_at,
            recorded_by: Some(event.recorded_by.clone()),
            subject: Some(event.subject.clone()),
            payload: event.payload.clone(),
        };
        let seal = Seal {
            recorded_by: event.recorded_by.clone(),
            recorded_at: event.recorded_at,
            minted_id: event.event_id,
        };
        match state.seal(submission, &seal) {
            Ok(sealed) if &sealed == event => {}
            Ok(_) => refusals.push(format!("event {index} is not sealed as generated")),
            Err(refusal) => refusals.push(format!(
                "event {index} ({}) not sealed: {refusal}",
                event.event_type()
            )),
        }
        let mut retracted = RetractedEvents::new();
        if let EventPayload::EventRetracted(retraction) = &event.payload
            && let Some(&original) = by_id.get(&retraction.event_id)
        {
            retracted.insert(retraction.event_id, original.clone());
        }
        match state.admit(event, &directory, &retracted) {
            Ok(Outcome::New) => state.set_position(&event.event_id, LogPosition(index as u64 + 1)),
            Ok(Outcome::Duplicate) => refusals.push(format!("event {index} is a duplicate")),
            Err(refusal) => refusals.push(format!(
                "event {index} ({}) refused: {refusal}",
                event.event_type()
            )),
        }
    }
    refusals
}

#[test]
fn the_same_seed_gives_the_same_stream_and_another_seed_another() {
    let first = generate(7, &mix(2_000));
    let again = generate(7, &mix(2_000));
    let other = generate(8, &mix(2_000));
    assert_eq!(first.events, again.events);
    assert_eq!(first.organizations, again.organizations);
    assert_ne!(ids(&first.events), ids(&other.events));
    assert_ne!(
        first
            .events
            .iter()
            .map(|e| e.event_type())
            .collect::<Vec<_>>(),
        other
            .events
            .iter()
            .map(|e| e.event_type())
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_stream_has_as_many_events_as_asked_with_unique_ids_and_increasing_times() {
    let scenario = generate(1, &mix(3_000));
    assert_eq!(scenario.events.len(), 3_000);
    let unique: HashSet<EventId> = ids(&scenario.events).into_iter().collect();
    assert_eq!(unique.len(), 3_000);
    for pair in scenario.events.windows(2) {
        assert!(pair[0].occurred_at < pair[1].occurred_at);
        assert!(pair[0].recorded_at < pair[1].recorded_at);
    }
    assert!(
        scenario
            .events
            .iter()
            .all(|e| e.occurred_at < e.recorded_at)
    );
    let organisations: HashSet<&OrganizationId> = scenario.organizations.iter().collect();
    assert!(
        scenario
            .events
            .iter()
            .all(|e| organisations.contains(&e.recorded_by))
    );
}

#[test]
fn every_type_appears_in_roughly_the_configured_proportions() {
    let events = generate(3, &mix(5_000)).events;
    let expected = [
        (EventType::DesignPublished, 2.0),
        (EventType::DesignForked, 1.0),
        (EventType::ContributionRecorded, 8.0),
        (EventType::MaterialSourced, 15.0),
        (EventType::BatchFabricated, 25.0),
        (EventType::ShipmentDispatched, 18.0),
        (EventType::ShipmentReceived, 16.0),
        (EventType::BatchRepaired, 3.0),
        (EventType::BatchRecycled, 4.0),
        (EventType::EventRetracted, 0.5),
    ];
    let total: f64 = expected.iter().map(|(_, weight)| weight).sum();
    for (event_type, weight) in expected {
        let observed = count(&events, event_type) as f64 / events.len() as f64;
        let wanted = weight / total;
        assert!(
            observed > wanted * 0.5 && observed < wanted * 1.6,
            "{event_type}: {:.2} % observed, {:.2} % configured",
            observed * 100.0,
            wanted * 100.0
        );
    }
}

#[test]
fn the_capture_rules_admit_every_event_of_a_stream_in_order() {
    let scenario = generate(11, &mix(3_000));
    assert_eq!(refusals(&scenario), Vec::<String>::new());
}

#[test]
fn the_capture_rules_admit_streams_of_other_seeds_and_many_retractions() {
    for seed in [1, 2, 3] {
        let scenario = generate(
            seed,
            &Mix {
                organizations: 12,
                retraction_rate: 0.05,
                ..mix(4_000)
            },
        );
        assert!(count(&scenario.events, EventType::EventRetracted) > 100);
        assert_eq!(refusals(&scenario), Vec::<String>::new(), "seed {seed}");
    }
}

#[test]
fn hub_lots_feed_many_batches_and_reach_many_organisations() {
    let scenario = generate(5, &mix(20_000));
    let hubs: HashSet<&Iri> = scenario.hub_lots.iter().collect();
    assert_eq!(hubs.len(), 3);
    let mut fed = 0;
    let mut makers = HashSet::new();
    for event in &scenario.events {
        if let EventPayload::BatchFabricated(batch) = &event.payload
            && batch
                .inputs
                .iter()
                .any(|input| hubs.contains(&input.resource))
        {
            fed += 1;
            makers.insert(&event.recorded_by);
        }
    }
    let batches = count(&scenario.events, EventType::BatchFabricated);
    assert!(
        fed * 10 > batches,
        "{fed} of {batches} batches use a hub lot"
    );
    assert!(makers.len() > scenario.organizations.len() / 2);
}

#[test]
fn recovered_lots_feed_new_batches() {
    let events = generate(5, &mix(10_000)).events;
    let recovered: HashSet<&Iri> = events
        .iter()
        .filter_map(|event| match &event.payload {
            EventPayload::BatchRecycled(recycling) => Some(recycling.output_lots.iter()),
            _ => None,
        })
        .flatten()
        .map(|lot| &lot.lot_id)
        .collect();
    let loops = events
        .iter()
        .filter(|event| match &event.payload {
            EventPayload::BatchFabricated(batch) => batch
                .inputs
                .iter()
                .any(|input| recovered.contains(&input.resource)),
            _ => false,
        })
        .count();
    assert!(loops > 10, "{loops} batches made from recovered material");
}

#[test]
fn events_survive_a_json_round_trip() {
    for event in generate(9, &mix(2_000)).events {
        let json = serde_json::to_value(&event).expect("an event serializes");
        let back: Event =
            serde_json::from_value(json.clone()).unwrap_or_else(|error| panic!("{error}: {json}"));
        assert_eq!(back, event);
    }
}

#[test]
fn interleaving_is_a_permutation_that_keeps_each_subjects_order() {
    let events = generate(13, &mix(3_000)).events;
    let mixed = interleave(&events, 99);
    assert_eq!(mixed.len(), events.len());
    assert_ne!(ids(&mixed), ids(&events));
    let mut sorted = ids(&mixed);
    sorted.sort();
    let mut original = ids(&events);
    original.sort();
    assert_eq!(sorted, original);
    let by_subject = |events: &[Event]| {
        let mut subjects: HashMap<Iri, Vec<EventId>> = HashMap::new();
        for event in events {
            subjects
                .entry(event.subject.clone())
                .or_default()
                .push(event.event_id);
        }
        subjects
    };
    assert_eq!(by_subject(&mixed), by_subject(&events));
    assert_eq!(interleave(&events, 99), mixed);
    assert_ne!(ids(&interleave(&events, 100)), ids(&mixed));
}

#[test]
fn interleaving_lets_events_arrive_before_what_they_refer_to() {
    let events = generate(13, &mix(3_000)).events;
    let mixed = interleave(&events, 1);
    let mut seen: HashSet<&Iri> = HashSet::new();
    let mut early = 0;
    for event in &mixed {
        if let EventPayload::BatchFabricated(batch) = &event.payload
            && !seen.contains(&batch.design_id)
        {
            early += 1;
        }
        seen.insert(&event.subject);
    }
    assert!(early > 0);
}
