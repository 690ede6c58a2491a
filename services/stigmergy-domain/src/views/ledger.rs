//! The facts of a first page, held in memory: when a store holds no events yet (a new store, or
//! views emptied for a replay), everything the derivation can ask about is in the page itself,
//! so the page is indexed here, derived here, and the store writes the outcome in bulk — index
//! rows in key order, each record once — instead of reading its own tables back for every fact.
//!
//! A [`Ledger`] answers every read of [`Facts`] exactly as a store's tables would after storing
//! the page: the same events (each event id once), the same rows, leaving out the rows of
//! retracted events, in the same orders.

use std::convert::Infallible;
use std::sync::Arc;

use foldhash::{HashMap, HashSet};

use crate::event::{Event, LogPosition};
use crate::ids::{EventId, Iri, OrganizationId};
use crate::time::Timestamp;
use crate::views::derive::{Facts, FootprintChange, Holding, Record, Touching};
use crate::views::footprint::Footprint;
use crate::views::index::{EventIndex, Flow, FlowKind, Role};
use crate::views::memo::take_in;

/// An event of the page, stored once.
#[derive(Debug)]
struct Stored {
    event: Arc<Event>,
    index: EventIndex,
    /// Not retracted.
    live: bool,
}

/// The rows naming one resource, each as the event that added it (its place in
/// `Ledger::stored`) and the row's place among that event's rows of its kind (events carry at
/// most 1000 lines, inputs or parts), in the order added.
#[derive(Debug, Default)]
struct Rows {
    /// Per role (its place in `Role::ALL`).
    touches: [Vec<u32>; 8],
    flows_out: Vec<(u32, u16)>,
    /// The input and part flows out of it, per organisation that recorded them: what it made
    /// or repaired from the resource.
    consumed_by: Vec<(OrganizationId, Vec<(u32, u16)>)>,
    movements: Vec<(u32, u16)>,
    /// Its dispatches, per consignee.
    consignments: Vec<(OrganizationId, Vec<(u32, u16)>)>,
}

/// The list kept for `key` in `groups`, added when missing.
fn group<'g, K: PartialEq + Clone, V>(groups: &'g mut Vec<(K, Vec<V>)>, key: &K) -> &'g mut Vec<V> {
    let at = match groups.iter().position(|(k, _)| k == key) {
        Some(at) => at,
        None => {
            groups.push((key.clone(), Vec::new()));
            groups.len() - 1
        }
    };
    &mut groups[at].1
}

/// The footprints a page issued for one resource, oldest first, and whether the last was
/// withdrawn after it was issued: every version but the last is deprecated, and the last is too
/// when it was withdrawn.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Issued {
    pub footprints: Vec<Footprint>,
    pub withdrawn: bool,
}

/// A record the derivation saved, and the footprint versions it issued.
#[derive(Debug)]
pub struct Saved<'l> {
    pub resource: &'l Iri,
    pub record: &'l Arc<Record>,
    pub issued: &'l Issued,
}

/// Two different events at one log position.
#[derive(Debug)]
pub struct PositionTaken {
    pub position: LogPosition,
    pub first: EventId,
    pub second: EventId,
}

impl std::fmt::Display for PositionTaken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "log position {} holds two events, {} and {}",
            self.position.0, self.first, self.second
        )
    }
}

impl std::error::Error for PositionTaken {}

/// The events of a page and their index rows, in memory; a [`Derivation`] reads them.
#[derive(Debug, Default)]
pub struct Ledger {
    stored: Vec<Stored>,
    by_id: HashMap<EventId, u32>,
    by_position: HashMap<LogPosition, EventId>,
    /// Every retracted id.
    retracted: HashSet<EventId>,
    rows: HashMap<Iri, Rows>,
}

/// The derivation of the records of a [`Ledger`]'s events: the [`Facts`] it reads, and the
/// records it saved. Reading the ledger only, it can run while the ledger is written out.
#[derive(Debug)]
pub struct Derivation<'l> {
    ledger: &'l Ledger,
    records: Records,
}

/// The records a [`Derivation`] saved.
#[derive(Debug, Default)]
pub struct Records {
    records: HashMap<Iri, (Arc<Record>, Issued)>,
    /// The resources saved, in the order first saved.
    saved: Vec<Iri>,
}

impl Ledger {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores an event and its index rows unless its id is already stored, and says whether it
    /// was stored now. An event stored twice is the same event (ids are unique), so it counts
    /// once.
    pub fn add(&mut self, position: LogPosition, event: Arc<Event>) -> Result<bool, PositionTaken> {
        if self.by_id.contains_key(&event.event_id) {
            return Ok(false);
        }
        if let Some(&first) = self.by_position.get(&position) {
            return Err(PositionTaken {
                position,
                first,
                second: event.event_id,
            });
        }
        let mut index = EventIndex::of(&event, position);
        index.counted = !self.retracted.contains(&event.event_id);
        if let Some(retracted) = EventIndex::retracts(&event) {
            self.retracted.insert(retracted);
            if let Some(&gone) = self.by_id.get(&retracted) {
                self.stored[gone as usize].live = false;
            }
        }
        let at = self.stored.len() as u32;
        let all = &mut self.rows;
        fn rows<'r>(all: &'r mut HashMap<Iri, Rows>, resource: &Iri) -> &'r mut Rows {
            all.entry(resource.clone()).or_default()
        }
        for touch in &index.touches {
            rows(all, &touch.resource).touches[role_slot(touch.role)].push(at);
        }
        for (ordinal, flow) in index.flows.iter().enumerate() {
            let ordinal = ordinal as u16;
            let rows = rows(all, &flow.from);
            rows.flows_out.push((at, ordinal));
            if matches!(flow.kind, FlowKind::Input | FlowKind::Part) {
                group(&mut rows.consumed_by, &event.recorded_by).push((at, ordinal));
            }
        }
        for (ordinal, movement) in index.movements.iter().enumerate() {
            rows(all, &movement.resource)
                .movements
                .push((at, ordinal as u16));
        }
        for (ordinal, consignment) in index.consignments.iter().enumerate() {
            let rows = rows(all, &consignment.resource);
            group(&mut rows.consignments, &consignment.consignee).push((at, ordinal as u16));
        }
        self.by_id.insert(event.event_id, at);
        self.by_position.insert(position, event.event_id);
        let live = index.counted;
        self.stored.push(Stored { event, index, live });
        Ok(true)
    }

    /// Every event stored, with its index rows, in the order stored: the page as the refresh
    /// reads it ([`derive::touched`](crate::views::derive::touched)).
    pub fn indexed(&self) -> Vec<(&Event, &EventIndex)> {
        self.stored
            .iter()
            .map(|stored| (stored.event.as_ref(), &stored.index))
            .collect()
    }

    /// A derivation reading this ledger, with no record saved yet.
    pub fn derivation(&self) -> Derivation<'_> {
        Derivation {
            ledger: self,
            records: Records::default(),
        }
    }

    /// Whether the row added by the event at `at` counts (the event is not retracted).
    fn live(&self, at: u32) -> bool {
        self.stored[at as usize].live
    }

    fn event_at(&self, at: u32) -> &Arc<Event> {
        &self.stored[at as usize].event
    }

    fn occurred_at(&self, at: u32) -> i64 {
        self.event_at(at).occurred_at.unix_micros()
    }

    fn index_at(&self, at: u32) -> &EventIndex {
        &self.stored[at as usize].index
    }
}

fn role_slot(role: Role) -> usize {
    Role::ALL
        .iter()
        .position(|r| *r == role)
        .expect("every role is in Role::ALL")
}

/// Sorted and without repeats.
fn distinct<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items.dedup();
    items
}

impl Derivation<'_> {
    /// Every record saved so far, in the order first saved, with the footprints it issued.
    pub fn saved(&self) -> impl Iterator<Item = Saved<'_>> {
        self.records.saved()
    }

    /// The records saved, without the ledger.
    pub fn finish(self) -> Records {
        self.records
    }
}

impl Records {
    /// Every record saved, in the order first saved, with the footprints it issued.
    pub fn saved(&self) -> impl Iterator<Item = Saved<'_>> {
        self.saved.iter().map(|resource| {
            let (record, issued) = &self.records[resource];
            Saved {
                resource,
                record,
                issued,
            }
        })
    }
}

impl Facts for Derivation<'_> {
    type Error = Infallible;

    fn events(&mut self, resource: &Iri, roles: &[Role]) -> Result<Vec<Arc<Event>>, Infallible> {
        let Some(rows) = self.ledger.rows.get(resource) else {
            return Ok(Vec::new());
        };
        let mut found: Vec<u32> = Vec::new();
        for role in roles {
            found.extend(rows.touches[role_slot(*role)].iter().copied());
        }
        if roles.len() > 1 {
            found.sort_unstable();
            found.dedup();
        }
        let mut events: Vec<&Arc<Event>> = found
            .into_iter()
            .filter(|at| self.ledger.live(*at))
            .map(|at| self.ledger.event_at(at))
            .collect();
        events.sort_by_key(|event| event.event_id);
        Ok(events.into_iter().cloned().collect())
    }

    fn flows_from(
        &mut self,
        resource: &Iri,
        since: Option<Timestamp>,
    ) -> Result<Vec<Flow>, Infallible> {
        let Some(rows) = self.ledger.rows.get(resource) else {
            return Ok(Vec::new());
        };
        let since = since.map_or(i64::MIN, |t| t.unix_micros());
        let mut flows: Vec<(EventId, u16, &Flow)> = Vec::new();
        for &(at, ordinal) in &rows.flows_out {
            let flow = &self.ledger.index_at(at).flows[usize::from(ordinal)];
            let keeps = matches!(flow.kind, FlowKind::Input | FlowKind::Part)
                || self.ledger.occurred_at(at) >= since;
            if keeps && self.ledger.live(at) {
                flows.push((self.ledger.event_at(at).event_id, ordinal, flow));
            }
        }
        flows.sort_by_key(|(id, ordinal, _)| (*id, *ordinal));
        Ok(flows.into_iter().map(|(_, _, flow)| flow.clone()).collect())
    }

    fn consumers(
        &mut self,
        resource: &Iri,
        organization: &OrganizationId,
        since: Timestamp,
    ) -> Result<Vec<Iri>, Infallible> {
        let Some(rows) = self.ledger.rows.get(resource) else {
            return Ok(Vec::new());
        };
        let since = since.unix_micros();
        let Some((_, consumed)) = rows.consumed_by.iter().find(|(by, _)| by == organization) else {
            return Ok(Vec::new());
        };
        let consumers = consumed
            .iter()
            .filter(|(at, _)| self.ledger.live(*at) && self.ledger.occurred_at(*at) >= since)
            .map(|&(at, ordinal)| {
                self.ledger.index_at(at).flows[usize::from(ordinal)]
                    .to
                    .clone()
            })
            .collect();
        Ok(distinct(consumers))
    }

    fn latest_dispatch_to(
        &mut self,
        resource: &Iri,
        consignee: &OrganizationId,
        at: Timestamp,
    ) -> Result<Option<Arc<Event>>, Infallible> {
        let Some(rows) = self.ledger.rows.get(resource) else {
            return Ok(None);
        };
        let at = at.unix_micros();
        let Some((_, dispatches)) = rows.consignments.iter().find(|(to, _)| to == consignee) else {
            return Ok(None);
        };
        Ok(dispatches
            .iter()
            .filter(|(event, _)| self.ledger.live(*event) && self.ledger.occurred_at(*event) <= at)
            .map(|(event, _)| self.ledger.event_at(*event))
            .max_by_key(|event| (event.occurred_at.unix_micros(), event.event_id))
            .cloned())
    }

    fn consignees(
        &mut self,
        resource: &Iri,
        shipper: &OrganizationId,
    ) -> Result<Vec<OrganizationId>, Infallible> {
        let Some(rows) = self.ledger.rows.get(resource) else {
            return Ok(Vec::new());
        };
        let consignees = rows
            .consignments
            .iter()
            .filter(|(_, dispatches)| {
                dispatches.iter().any(|&(at, ordinal)| {
                    self.ledger.live(at)
                        && &self.ledger.index_at(at).consignments[usize::from(ordinal)].shipper
                            == shipper
                })
            })
            .map(|(consignee, _)| consignee.clone())
            .collect();
        Ok(distinct(consignees))
    }

    fn holdings(&mut self, resource: &Iri) -> Result<Vec<Holding>, Infallible> {
        let Some(rows) = self.ledger.rows.get(resource) else {
            return Ok(Vec::new());
        };
        let mut holdings: Vec<Holding> = Vec::new();
        for &(at, ordinal) in &rows.movements {
            if self.ledger.live(at) {
                take_in(
                    &mut holdings,
                    &self.ledger.index_at(at).movements[usize::from(ordinal)],
                );
            }
        }
        Ok(holdings)
    }

    fn movement_events(
        &mut self,
        resource: &Iri,
        organization: &OrganizationId,
    ) -> Result<Vec<EventId>, Infallible> {
        let Some(rows) = self.ledger.rows.get(resource) else {
            return Ok(Vec::new());
        };
        let events = rows
            .movements
            .iter()
            .filter(|&&(at, ordinal)| {
                self.ledger.live(at)
                    && &self.ledger.index_at(at).movements[usize::from(ordinal)].organization
                        == organization
            })
            .map(|(at, _)| self.ledger.event_at(*at).event_id)
            .collect();
        Ok(distinct(events))
    }

    fn touched_by(&mut self, event: EventId) -> Result<Option<Touching>, Infallible> {
        let Some(&at) = self.ledger.by_id.get(&event) else {
            return Ok(None);
        };
        let stored = &self.ledger.stored[at as usize];
        let resources = stored
            .index
            .touches
            .iter()
            .map(|touch| touch.resource.clone())
            .collect();
        Ok(Some((stored.event.clone(), distinct(resources))))
    }

    fn record(&mut self, resource: &Iri) -> Result<Option<Arc<Record>>, Infallible> {
        Ok(self
            .records
            .records
            .get(resource)
            .map(|(record, _)| record.clone()))
    }

    fn save(
        &mut self,
        resource: &Iri,
        record: &Arc<Record>,
        change: FootprintChange,
    ) -> Result<(), Infallible> {
        let records = &mut self.records;
        let (stored, issued) = match records.records.get_mut(resource) {
            Some(entry) => entry,
            None => {
                records.saved.push(resource.clone());
                records
                    .records
                    .entry(resource.clone())
                    .or_insert_with(|| (record.clone(), Issued::default()))
            }
        };
        *stored = record.clone();
        match (change, &record.footprint) {
            (FootprintChange::Issued, Some(footprint)) => {
                issued.footprints.push(footprint.clone());
                issued.withdrawn = false;
            }
            (FootprintChange::Withdrawn, _) | (FootprintChange::Issued, None) => {
                issued.withdrawn = !issued.footprints.is_empty();
            }
            (FootprintChange::Unchanged, _) => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::units::Unit;
    use crate::views::footprint::Breakdown;

    fn event(n: u32, event_type: &str, subject: &str, payload: serde_json::Value) -> Event {
        serde_json::from_value(json!({
            "eventId": format!("0191e1a4-7f43-7c4a-9d4e-{n:012x}"),
            "type": event_type,
            "schemaVersion": 1,
            "occurredAt": format!("2026-05-01T10:00:{n:02}Z"),
            "recordedAt": format!("2026-05-01T10:00:{n:02}Z"),
            "recordedBy": "https://mill.example.org",
            "subject": subject,
            "payload": payload,
        }))
        .expect("a valid event")
    }

    fn lot(n: u32, id: &str) -> Arc<Event> {
        Arc::new(event(
            n,
            "MaterialSourced",
            id,
            json!({
                "lotId": id, "material": "oak", "quantity": { "amount": 100, "unit": "KGM" },
                "origin": { "name": "Forest", "country": "FR" },
                "supplier": { "id": "https://forest.example.org" },
                "kgCo2ePerUnit": 0.5, "dataQuality": "primary", "recycledContent": 0.0
            }),
        ))
    }

    fn iri(value: &str) -> Iri {
        Iri::parse(value).expect("an IRI")
    }

    #[test]
    fn an_event_stored_twice_counts_once_and_a_retracted_one_is_left_out() {
        let mut ledger = Ledger::new();
        let first = lot(1, "https://lots.example.org/a");
        assert!(
            ledger
                .add(LogPosition(1), first.clone())
                .expect("a free position")
        );
        assert!(
            !ledger
                .add(LogPosition(2), first.clone())
                .expect("a free position")
        );
        let indexed = ledger.indexed();
        assert_eq!(indexed.len(), 1, "stored once");
        assert_eq!(indexed[0].1.position, LogPosition(1));
        assert!(indexed[0].1.counted);
        let resource = iri("https://lots.example.org/a");
        assert_eq!(
            ledger
                .derivation()
                .events(&resource, &[Role::Created])
                .expect("infallible")
                .len(),
            1
        );
        assert_eq!(
            ledger.derivation().holdings(&resource).expect("infallible")[0].inflow,
            100.0
        );

        let retraction = event(
            3,
            "EventRetracted",
            "https://lots.example.org/a",
            json!({ "eventId": first.event_id.to_string(), "reason": "typo" }),
        );
        ledger
            .add(LogPosition(3), Arc::new(retraction))
            .expect("a free position");
        assert!(
            ledger
                .derivation()
                .events(&resource, &[Role::Created])
                .expect("infallible")
                .is_empty()
        );
        assert!(
            ledger
                .derivation()
                .holdings(&resource)
                .expect("infallible")
                .is_empty()
        );
        let (gone, touched) = ledger
            .derivation()
            .touched_by(first.event_id)
            .expect("infallible")
            .expect("infallible");
        assert_eq!(gone.event_id, first.event_id);
        assert_eq!(touched, vec![resource]);
    }

    #[test]
    fn an_event_retracted_before_it_arrives_is_not_counted() {
        let mut ledger = Ledger::new();
        let late = lot(2, "https://lots.example.org/b");
        let retraction = event(
            1,
            "EventRetracted",
            "https://lots.example.org/b",
            json!({ "eventId": late.event_id.to_string(), "reason": "typo" }),
        );
        ledger
            .add(LogPosition(1), Arc::new(retraction))
            .expect("a free position");
        assert!(ledger.add(LogPosition(2), late).expect("a free position"));
        assert!(!ledger.indexed()[1].1.counted);
        assert!(
            ledger
                .derivation()
                .events(&iri("https://lots.example.org/b"), &[Role::Created])
                .expect("infallible")
                .is_empty()
        );
    }

    #[test]
    fn two_events_at_one_position_are_refused() {
        let mut ledger = Ledger::new();
        ledger
            .add(LogPosition(1), lot(1, "https://lots.example.org/a"))
            .expect("a free position");
        let taken = ledger
            .add(LogPosition(1), lot(2, "https://lots.example.org/b"))
            .expect_err("a taken position");
        assert_eq!(taken.position, LogPosition(1));
    }

    #[test]
    fn a_footprint_issued_twice_then_withdrawn_leaves_two_versions_neither_active() {
        let ledger = Ledger::new();
        let mut derivation = ledger.derivation();
        let resource = iri("https://lots.example.org/a");
        let with = |figure: f64| {
            let mut record: Record =
                serde_json::from_value(json!({ "kind": "materialLot" })).expect("a record");
            record.footprint = Some(Footprint {
                per_unit: Breakdown {
                    materials: figure,
                    ..Breakdown::default()
                },
                unit: Unit::Kilogram,
                recycled_content: 0.0,
                primary_data_share: 1.0,
                method: crate::views::METHOD,
                method_version: crate::views::METHOD_VERSION,
                missing_inputs: Vec::new(),
            });
            Arc::new(record)
        };
        let save = |derivation: &mut Derivation<'_>, record: &Arc<Record>, change| {
            derivation
                .save(&resource, record, change)
                .expect("infallible");
        };
        save(&mut derivation, &with(1.0), FootprintChange::Issued);
        save(&mut derivation, &with(2.0), FootprintChange::Issued);
        let saved: Vec<Saved<'_>> = derivation.saved().collect();
        assert_eq!(saved.len(), 1, "a resource is saved once, as last derived");
        assert_eq!(saved[0].issued.footprints.len(), 2);
        assert!(!saved[0].issued.withdrawn);
        let mut gone = Record::clone(&with(2.0));
        gone.footprint = None;
        save(&mut derivation, &Arc::new(gone), FootprintChange::Withdrawn);
        let saved: Vec<Saved<'_>> = derivation.saved().collect();
        assert!(saved[0].issued.withdrawn);
        assert!(saved[0].record.footprint.is_none());
    }
}
