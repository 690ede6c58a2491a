//! Subscriptions: the log after a cursor, then live.
//!
//! One task follows the log and hands each new event to every subscriber through a bounded
//! broadcast buffer ([`Live`]). A subscription first reads what it has not seen from the log
//! itself, page by page as its client takes it, and then takes the live events: it subscribes to
//! the buffer before reading, so the switch has no gap, and skips what it already sent, so it has
//! no duplicate. A subscriber whose client does not keep up falls more than the buffer behind: it
//! is told so with the cursor to resume from, and ends — capture and the other subscribers never
//! wait for it.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_graphql::futures_util::Stream;
use async_graphql::{Context, ErrorExtensions, Result, SimpleObject, Subscription as Root};
use futures_util::stream::{self, BoxStream, StreamExt};
use stigmergy_domain::views::{Direction, EventIndex};
use stigmergy_domain::{EventPayload, Iri, LogPosition};
use stigmergy_log::{EventLog, StoredEvent};
use stigmergy_store::ViewStore;
use tokio::sync::broadcast;

use crate::metrics::{GatewayMetrics, OpenSubscription};
use crate::query::{EventEdge, EventFilter, Filter, cursor_after};
use crate::resource::AnomalyView;
use crate::{Projector, views};

/// Events read from the log at a time while a subscription catches up.
const HISTORY_PAGE: usize = 256;
/// How far downstream of what a retraction took away its anomalies are looked for.
const RETRACTION_REACH: u32 = 10;

/// The live events of the log, shared by every subscriber.
pub struct Live {
    log: Arc<dyn EventLog>,
    sender: broadcast::Sender<Arc<StoredEvent>>,
    capacity: usize,
    metrics: GatewayMetrics,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// Why a subscription's events end.
#[derive(Clone, Debug)]
pub enum Ended {
    /// The client fell more than the buffer behind; resume after `cursor`.
    FellBehind { cursor: LogPosition, buffer: usize },
    /// The log could not be read; resume after `cursor`.
    Failed { cursor: LogPosition, reason: String },
}

impl Ended {
    fn into_error(self) -> async_graphql::Error {
        match self {
            Self::FellBehind { cursor, buffer } => async_graphql::Error::new(format!(
                "the subscriber fell more than {buffer} events behind; subscribe again with after: \"{cursor}\""
            ))
            .extend_with(|_, e| {
                e.set("code", "FELL_BEHIND");
                e.set("cursor", cursor.0.to_string());
            }),
            Self::Failed { cursor, reason } => async_graphql::Error::new(format!(
                "the log could not be read ({reason}); subscribe again with after: \"{cursor}\""
            ))
            .extend_with(|_, e| {
                e.set("code", "UNAVAILABLE");
                e.set("cursor", cursor.0.to_string());
            }),
        }
    }
}

impl Live {
    /// Starts following the log from its head; `capacity` live events are kept for subscribers
    /// that have not taken them yet; subscriptions are counted in `metrics`.
    pub fn start(log: Arc<dyn EventLog>, capacity: usize, metrics: GatewayMetrics) -> Arc<Self> {
        let (sender, _) = broadcast::channel(capacity.max(1));
        tokio::spawn(follow(log.clone(), sender.clone()));
        Arc::new(Self {
            log,
            sender,
            capacity,
            metrics,
        })
    }

    /// Every event after `after`: from the log until the subscriber has caught up, then live.
    pub fn after(
        self: &Arc<Self>,
        after: LogPosition,
    ) -> BoxStream<'static, Result<Arc<StoredEvent>, Ended>> {
        let state = Follower {
            _open: self.metrics.open(),
            live: self.clone(),
            receiver: self.sender.subscribe(),
            cursor: after,
            buffered: VecDeque::new(),
            catching_up: true,
            taken_live: false,
            ended: false,
        };
        stream::unfold(state, |mut state| async move {
            let next = state.next().await?;
            Some((next, state))
        })
        .boxed()
    }
}

/// Follows the log from its head and broadcasts each event; starts again after a failure.
async fn follow(log: Arc<dyn EventLog>, sender: broadcast::Sender<Arc<StoredEvent>>) {
    let mut after = log.head();
    loop {
        let mut events = log.follow(after);
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => {
                    after = event.position;
                    // No subscriber is not an error: the event stays in the log.
                    let _ = sender.send(Arc::new(event));
                }
                Err(error) => {
                    tracing::warn!(error = %error, "following the log for subscribers failed; starting again");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One subscription's place in the log.
struct Follower {
    _open: OpenSubscription,
    live: Arc<Live>,
    receiver: broadcast::Receiver<Arc<StoredEvent>>,
    /// The last event sent (or skipped).
    cursor: LogPosition,
    buffered: VecDeque<Arc<StoredEvent>>,
    /// Reading from the log rather than from the live buffer.
    catching_up: bool,
    /// Whether a live event was taken since the last switch from the log.
    taken_live: bool,
    ended: bool,
}

impl Follower {
    async fn next(&mut self) -> Option<Result<Arc<StoredEvent>, Ended>> {
        loop {
            if self.ended {
                return None;
            }
            if let Some(event) = self.buffered.pop_front() {
                if event.position <= self.cursor {
                    continue;
                }
                self.cursor = event.position;
                return Some(Ok(event));
            }
            if self.catching_up {
                match self.live.log.read_after(self.cursor, HISTORY_PAGE).await {
                    Ok(page) if page.is_empty() => {
                        self.catching_up = false;
                        self.taken_live = false;
                    }
                    Ok(page) => self.buffered.extend(page.into_iter().map(Arc::new)),
                    Err(error) => {
                        self.ended = true;
                        return Some(Err(Ended::Failed {
                            cursor: self.cursor,
                            reason: error.to_string(),
                        }));
                    }
                }
                continue;
            }
            match self.receiver.recv().await {
                Ok(event) if event.position <= self.cursor => continue,
                Ok(event) if event.position.0 == self.cursor.0 + 1 => {
                    self.taken_live = true;
                    self.cursor = event.position;
                    return Some(Ok(event));
                }
                // Something between is missing from what was broadcast: read it from the log.
                Ok(_) => self.catching_up = true,
                // The buffer overflowed while the log was being read: not the client's fault;
                // read on from the log and take the live events afresh.
                Err(broadcast::error::RecvError::Lagged(_)) if !self.taken_live => {
                    self.receiver = self.live.sender.subscribe();
                    self.catching_up = true;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.ended = true;
                    self.live.metrics.fell_behind();
                    return Some(Err(Ended::FellBehind {
                        cursor: self.cursor,
                        buffer: self.live.capacity,
                    }));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct Subscription;

/// An anomaly, when the event that completed it arrived.
#[derive(Debug, SimpleObject)]
pub struct AnomalyEdge {
    /// The log position of the event that completed the anomaly: resume after it.
    cursor: String,
    /// The resource it is about.
    resource: String,
    node: AnomalyView,
}

#[Root]
impl Subscription {
    /// Every event matching `filter` after the cursor `after` (from the start of the log when
    /// omitted), then each new one as it is recorded, each with its cursor. Resuming after the
    /// cursor of the last event received misses nothing and repeats nothing. A subscriber that
    /// falls more than `subscriptionBuffer` events behind receives an error with code
    /// `FELL_BEHIND` and the cursor to resume from, and the subscription completes.
    async fn events(
        &self,
        context: &Context<'_>,
        filter: Option<EventFilter>,
        after: Option<String>,
    ) -> Result<impl Stream<Item = Result<EventEdge>> + use<>> {
        let filter = Filter::parse(filter)?;
        let after = cursor_after(after.as_deref())?;
        let live = context.data::<Arc<Live>>()?.clone();
        Ok(live.after(after).filter_map(move |event| {
            std::future::ready(match event {
                Ok(event) => filter
                    .matches(&event.event)
                    .then(|| Ok(EventEdge::live(&event))),
                Err(ended) => Some(Err(ended.into_error())),
            })
        }))
    }

    /// The anomalies the views find, after the cursor `after` (from the start when omitted),
    /// then live, each with the cursor of the event that brought it: the last of the events it
    /// involves, or the retraction that caused it. Each waits until the views have taken in its
    /// event. The history is told as the views stand now: an anomaly a later event resolved is
    /// not listed. An anomaly a retraction caused may be told again after a resume from a cursor
    /// between its events and the retraction.
    async fn anomalies(
        &self,
        context: &Context<'_>,
        after: Option<String>,
    ) -> Result<impl Stream<Item = Result<AnomalyEdge>> + use<>> {
        let after = cursor_after(after.as_deref())?;
        let live = context.data::<Arc<Live>>()?.clone();
        let views = views(context)?.clone();
        let projector = context.data::<Projector>()?.0.clone();
        let log = live.log.clone();
        let state = (live.after(after), HashSet::new(), false);
        Ok(stream::unfold(state, move |(mut events, mut sent, ended)| {
            let (views, log, projector) = (views.clone(), log.clone(), projector.clone());
            async move {
                if ended {
                    return None;
                }
                let edges = match events.next().await? {
                    Ok(event) => brought_by(&*views, &*log, &projector, &event, &mut sent).await,
                    Err(ended) => {
                        return Some((vec![Err(ended.into_error())], (events, sent, true)));
                    }
                };
                Some((edges, (events, sent, false)))
            }
        })
        .flat_map(stream::iter))
    }
}

/// An anomaly as told once: the resource, and what it says.
type Told = (Iri, String);

/// The anomalies `event` brought, not yet told: those of the resources it touches that involve
/// it as their last event, or — for a retraction — those of the resources downstream of what it
/// retracted. Waits until the views have applied it.
async fn brought_by(
    views: &dyn ViewStore,
    log: &dyn EventLog,
    projector: &str,
    event: &StoredEvent,
    told: &mut HashSet<Told>,
) -> Vec<Result<AnomalyEdge>> {
    let fail = |error: String| vec![Err(async_graphql::Error::new(error))];
    loop {
        // On a log shared by several processes (Kafka), this process's positions are its own
        // mirror's, not the projectors': ask whether the views hold the event itself.
        let applied = if log.is_shared() {
            views.holds(event.event.event_id).await
        } else {
            views
                .position(projector)
                .await
                .map(|position| position >= event.position)
        };
        match applied {
            Ok(true) => break,
            Ok(false) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(error) => return fail(error.to_string()),
        }
    }
    let mut resources: Vec<Iri> = EventIndex::of(&event.event, event.position)
        .touches
        .into_iter()
        .map(|touch| touch.resource)
        .collect();
    let retraction = matches!(event.event.payload, EventPayload::EventRetracted(_));
    if let EventPayload::EventRetracted(retracted) = &event.event.payload {
        match log.get(retracted.event_id).await {
            Ok(Some(gone)) => {
                for touch in EventIndex::of(&gone.event, gone.position).touches {
                    match views
                        .lineage(&touch.resource, Direction::Downstream, RETRACTION_REACH)
                        .await
                    {
                        Ok(lineage) => resources.extend(lineage.nodes.into_iter().map(|(r, _)| r)),
                        Err(error) => return fail(error.to_string()),
                    }
                }
            }
            Ok(None) => {}
            Err(error) => return fail(error.to_string()),
        }
    }
    resources.sort();
    resources.dedup();
    let records = match views.records(&resources).await {
        Ok(records) => records,
        Err(error) => return fail(error.to_string()),
    };
    let mut edges = Vec::new();
    for (resource, record) in records {
        for anomaly in record.anomalies {
            let involved = anomaly.events.contains(&event.event.event_id);
            if !involved && !retraction {
                continue;
            }
            if involved {
                let mut last = true;
                for other in anomaly
                    .events
                    .iter()
                    .filter(|id| **id != event.event.event_id)
                {
                    match log.get(*other).await {
                        Ok(Some(stored)) if stored.position > event.position => last = false,
                        Ok(_) => {}
                        Err(error) => return fail(error.to_string()),
                    }
                }
                if !last {
                    continue;
                }
            }
            let key = (
                resource.clone(),
                serde_json::to_string(&anomaly).unwrap_or_default(),
            );
            if !told.insert(key) {
                continue;
            }
            edges.push(Ok(AnomalyEdge {
                cursor: event.position.0.to_string(),
                resource: resource.to_string(),
                node: AnomalyView::from(&anomaly),
            }));
        }
    }
    edges
}
