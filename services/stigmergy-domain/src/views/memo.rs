//! A memo of the facts a refresh reads, kept by the store from one page to the next, so that
//! what a page asks about the same resource again and again (a popular design's contributions, a
//! hub lot's shipments, the records of the inputs every batch of a design shares) is read from
//! the store once.
//!
//! Every fact is about one resource, so the memo is kept per resource, and before its refresh a
//! page forgets, of each resource its index rows name, the facts those rows can change (a new
//! touch in a role changes the events in that role; a new flow out of it, its flows and
//! consumers; and so on), and every fact about what the events it retracts touched: what is left
//! is exactly what the page cannot have changed. Records are written through. The memo holds at
//! most a given number of resources, the least recently used going first. A store that fails to
//! apply a page clears it (the memo may hold what the failed transaction read).

use std::collections::VecDeque;
use std::sync::Arc;

use foldhash::{HashMap, HashMapExt};

use crate::event::Event;
use crate::ids::{EventId, Iri, OrganizationId};
use crate::time::Timestamp;
use crate::views::derive::{
    self, Facts, FootprintChange, Holding, Methods, Record, Touched, Touching,
};
use crate::views::index::{EventIndex, Flow, Movement, Role};

/// What is known of one resource.
#[derive(Default)]
struct Known {
    /// By set of roles (a bit per role).
    events: HashMap<u16, Vec<Arc<Event>>>,
    flows_from: HashMap<Option<Timestamp>, Vec<Flow>>,
    consumers: HashMap<(OrganizationId, Timestamp), Vec<Iri>>,
    latest_dispatch_to: HashMap<(OrganizationId, Timestamp), Option<Arc<Event>>>,
    consignees: HashMap<OrganizationId, Vec<OrganizationId>>,
    holdings: Option<Vec<Holding>>,
    movement_events: HashMap<OrganizationId, Vec<EventId>>,
    record: Option<Option<Arc<Record>>>,
    /// The page in which the resource was last used, to find the least recently used.
    used: u64,
}

/// The facts known per resource, at most `capacity` resources.
pub struct Memo {
    known: HashMap<Iri, Known>,
    /// Resources in the order they were used, with the page of that use; an entry whose page is
    /// older than its resource's `used` is stale and skipped.
    recency: VecDeque<(u64, Iri)>,
    /// The page being refreshed.
    tick: u64,
    capacity: usize,
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memo")
            .field("resources", &self.known.len())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Memo {
    /// A memo of at most `capacity` resources (0 keeps nothing from one page to the next).
    pub fn new(capacity: usize) -> Self {
        Self {
            known: HashMap::new(),
            recency: VecDeque::new(),
            tick: 1,
            capacity,
        }
    }

    /// How many resources it keeps at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many resources it knows.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// Forgets everything (after a failed page).
    pub fn clear(&mut self) {
        self.known.clear();
        self.recency.clear();
    }

    /// Forgets what a page may have changed, before its refresh: per resource, the events in
    /// the roles the page's events touch it in, the flows out of it when the page adds one, its
    /// holdings when the page moves it, its shipments when the page dispatches it; and every
    /// fact about what the events the page retracts touched. Records are written through and
    /// stay.
    pub fn forget_page(&mut self, page: &[(&Event, EventIndex)], touched: &[(Iri, Touched)]) {
        self.tick += 1;
        for (_, index) in page {
            for touch in &index.touches {
                if let Some(known) = self.known.get_mut(&touch.resource) {
                    let bit = mask(&[touch.role]);
                    known.events.retain(|roles, _| roles & bit == 0);
                }
            }
            for flow in &index.flows {
                if let Some(known) = self.known.get_mut(&flow.from) {
                    known.flows_from.clear();
                    known.consumers.clear();
                }
            }
            for movement in &index.movements {
                if let Some(known) = self.known.get_mut(&movement.resource) {
                    known.movement_events.clear();
                    match &mut known.holdings {
                        Some(holdings) if index.counted => take_in(holdings, movement),
                        _ => known.holdings = None,
                    }
                }
            }
            for consignment in &index.consignments {
                if let Some(known) = self.known.get_mut(&consignment.resource) {
                    known.latest_dispatch_to.clear();
                    known.consignees.clear();
                }
            }
        }
        for (resource, what) in touched {
            if what.retracted
                && let Some(known) = self.known.get_mut(resource)
            {
                *known = Known {
                    record: known.record.take(),
                    used: known.used,
                    ..Known::default()
                };
            }
        }
    }

    /// Keeps at most `capacity` resources, forgetting the least recently used.
    pub fn trim(&mut self) {
        while self.known.len() > self.capacity {
            let Some((tick, resource)) = self.recency.pop_front() else {
                self.known.clear();
                break;
            };
            if self.known.get(&resource).is_some_and(|k| k.used == tick) {
                self.known.remove(&resource);
            }
        }
        // Stale entries pile up when the same resources are used again and again.
        if self.recency.len() > 4 * self.capacity.max(1024) {
            let known = &self.known;
            self.recency
                .retain(|(tick, resource)| known.get(resource).is_some_and(|k| k.used == *tick));
        }
    }

    fn entry(&mut self, resource: &Iri) -> &mut Known {
        let tick = self.tick;
        if !self.known.contains_key(resource) {
            self.known.insert(resource.clone(), Known::default());
        }
        let known = self.known.get_mut(resource).expect("inserted above");
        if known.used != tick {
            known.used = tick;
            self.recency.push_back((tick, resource.clone()));
        }
        known
    }

    /// Refreshes what a page did, once the store has written its rows: what it touched
    /// ([`derive::touched`]), forgotten here ([`Memo::forget_page`]), then recomputed through
    /// the memo ([`derive::refresh`]). Returns how many records were saved.
    pub fn refresh_page<F: Facts>(
        &mut self,
        facts: &mut F,
        page: &[(&Event, EventIndex)],
        methods: &Methods,
    ) -> Result<usize, F::Error> {
        let touched = derive::touched(facts, page)?;
        self.forget_page(page, &touched);
        derive::refresh(&mut self.over(facts), touched, methods)
    }

    /// The facts of `facts`, read through the memo.
    fn over<'m, F: Facts>(&'m mut self, facts: &'m mut F) -> Cached<'m, F> {
        Cached { memo: self, facts }
    }
}

/// Adds a movement to the holdings of its resource, kept in (organisation, unit code) order.
pub(crate) fn take_in(holdings: &mut Vec<Holding>, movement: &Movement) {
    let unit = movement.measure.unit;
    let key = (&movement.organization, unit.code());
    let at = holdings.binary_search_by(|h| (&h.organization, h.unit.code()).cmp(&key));
    let holding = match at {
        Ok(i) => &mut holdings[i],
        Err(i) => {
            holdings.insert(
                i,
                Holding {
                    organization: movement.organization.clone(),
                    unit,
                    inflow: 0.0,
                    outflow: 0.0,
                },
            );
            &mut holdings[i]
        }
    };
    if movement.inflow {
        holding.inflow += movement.measure.amount;
    } else {
        holding.outflow += movement.measure.amount;
    }
}

fn mask(roles: &[Role]) -> u16 {
    roles
        .iter()
        .map(|role| 1u16 << Role::ALL.iter().position(|r| r == role).unwrap_or(15))
        .fold(0, |mask, bit| mask | bit)
}

/// The store's facts read through a [`Memo`].
#[allow(missing_debug_implementations)]
pub struct Cached<'m, F> {
    memo: &'m mut Memo,
    facts: &'m mut F,
}

/// Answers from the memo, or asks the store and remembers.
macro_rules! remembered {
    ($self:ident, $resource:expr, $field:ident, $key:expr, $ask:expr) => {{
        let key = $key;
        if let Some(known) = $self.memo.entry($resource).$field.get(&key) {
            return Ok(known.clone());
        }
        let answer = $ask?;
        $self
            .memo
            .entry($resource)
            .$field
            .insert(key, answer.clone());
        Ok(answer)
    }};
}

impl<F: Facts> Facts for Cached<'_, F> {
    type Error = F::Error;

    fn events(&mut self, resource: &Iri, roles: &[Role]) -> Result<Vec<Arc<Event>>, F::Error> {
        remembered!(
            self,
            resource,
            events,
            mask(roles),
            self.facts.events(resource, roles)
        )
    }

    fn flows_from(
        &mut self,
        resource: &Iri,
        since: Option<Timestamp>,
    ) -> Result<Vec<Flow>, F::Error> {
        remembered!(
            self,
            resource,
            flows_from,
            since,
            self.facts.flows_from(resource, since)
        )
    }

    fn consumers(
        &mut self,
        resource: &Iri,
        organization: &OrganizationId,
        since: Timestamp,
    ) -> Result<Vec<Iri>, F::Error> {
        remembered!(
            self,
            resource,
            consumers,
            (organization.clone(), since),
            self.facts.consumers(resource, organization, since)
        )
    }

    fn latest_dispatch_to(
        &mut self,
        resource: &Iri,
        consignee: &OrganizationId,
        at: Timestamp,
    ) -> Result<Option<Arc<Event>>, F::Error> {
        remembered!(
            self,
            resource,
            latest_dispatch_to,
            (consignee.clone(), at),
            self.facts.latest_dispatch_to(resource, consignee, at)
        )
    }

    fn consignees(
        &mut self,
        resource: &Iri,
        shipper: &OrganizationId,
    ) -> Result<Vec<OrganizationId>, F::Error> {
        remembered!(
            self,
            resource,
            consignees,
            shipper.clone(),
            self.facts.consignees(resource, shipper)
        )
    }

    fn holdings(&mut self, resource: &Iri) -> Result<Vec<Holding>, F::Error> {
        if let Some(known) = &self.memo.entry(resource).holdings {
            return Ok(known.clone());
        }
        let answer = self.facts.holdings(resource)?;
        self.memo.entry(resource).holdings = Some(answer.clone());
        Ok(answer)
    }

    fn movement_events(
        &mut self,
        resource: &Iri,
        organization: &OrganizationId,
    ) -> Result<Vec<EventId>, F::Error> {
        remembered!(
            self,
            resource,
            movement_events,
            organization.clone(),
            self.facts.movement_events(resource, organization)
        )
    }

    fn touched_by(&mut self, event: EventId) -> Result<Option<Touching>, F::Error> {
        self.facts.touched_by(event)
    }

    fn record(&mut self, resource: &Iri) -> Result<Option<Arc<Record>>, F::Error> {
        if let Some(known) = &self.memo.entry(resource).record {
            return Ok(known.clone());
        }
        let answer = self.facts.record(resource)?;
        self.memo.entry(resource).record = Some(answer.clone());
        Ok(answer)
    }

    fn save(
        &mut self,
        resource: &Iri,
        record: &Arc<Record>,
        change: FootprintChange,
    ) -> Result<(), F::Error> {
        self.facts.save(resource, record, change)?;
        self.memo.entry(resource).record = Some(Some(record.clone()));
        Ok(())
    }
}
