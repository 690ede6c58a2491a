//! The sequencer: the one place where events are admitted, so that the rules always see the
//! state every earlier event implies, and so that concurrent requests share log appends.
//!
//! Requests queue on a channel. The sequencer takes every request waiting (up to a bound) as a
//! group, seals and admits each request's events against its [`CaptureState`] (a request is
//! admitted whole or rolled back whole), and enqueues the new events of the whole group as one
//! log append (one fsync). It answers each request once its group is durable. Groups are
//! pipelined: the next group is admitted and enqueued while the previous one is being written,
//! and the log lands appends in order. The log is fail-stop: when an append fails, every later
//! one fails too, the sequencer refuses all of them, reloads its state from the log and resumes.
//! A request that retracts an event waits until every earlier event is durable, so the
//! retracted event can be read back from the log.
//!
//! When other processes append to the same log (Kafka, several capture instances), a follower
//! task reads the log behind the sequencer and hands it what it did not admit itself; each group
//! is admitted against everything the follower has read by then. What two instances admit at the
//! same moment cannot be checked against each other here: the projectors report such conflicts
//! as anomalies.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use serde::Serialize;
use stigmergy_domain::rules::{CaptureState, Directory, Outcome, Refusal, RetractedEvents, Seal};
use stigmergy_domain::{
    ContentDigest, EventId, EventPayload, LogPosition, OrganizationId, Submission, Timestamp,
};
use stigmergy_log::{EventLog, StoredEvent};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{Instrument, error, info, info_span, warn};

/// Where one accepted event is in the log, and whether it was already there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    pub event_id: EventId,
    pub position: LogPosition,
    pub duplicate: bool,
}

/// Why a request was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SequencerError {
    /// The event at `index` of the request broke a rule; nothing of the request was stored.
    #[error("event {index} refused: {refusal}")]
    Refused { index: usize, refusal: Refusal },
    /// The log could not durably store the request; nothing of it was acknowledged.
    #[error("the event log is unavailable: {0}")]
    Unavailable(String),
}

struct Job {
    organization: OrganizationId,
    /// Each submission with its content digest, computed by the caller.
    submissions: Vec<(Submission, ContentDigest)>,
    reply: oneshot::Sender<Result<Vec<Receipt>, SequencerError>>,
    span: tracing::Span,
}

impl Job {
    fn retracts(&self) -> impl Iterator<Item = EventId> + '_ {
        self.submissions
            .iter()
            .filter_map(|(s, _)| match &s.payload {
                EventPayload::EventRetracted(p) => Some(p.event_id),
                _ => None,
            })
    }
}

/// The handle requests are submitted through.
#[derive(Clone, Debug)]
pub struct Sequencer {
    jobs: mpsc::Sender<Job>,
    ready: watch::Receiver<bool>,
}

impl Sequencer {
    /// Starts the sequencer: it first folds the whole log into its state (until then requests
    /// wait, and [`is_ready`](Self::is_ready) is false), then admits requests.
    pub fn start(
        log: Arc<dyn EventLog>,
        directory: Arc<dyn Directory + Send + Sync>,
        max_group_requests: usize,
    ) -> Self {
        let (jobs, receiver) = mpsc::channel(4 * max_group_requests.max(1));
        let (ready_tx, ready) = watch::channel(false);
        tokio::spawn(run(
            receiver,
            log,
            directory,
            max_group_requests.max(1),
            ready_tx,
        ));
        Self { jobs, ready }
    }

    /// Whether the state is loaded and requests are being admitted.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow() && !self.jobs.is_closed()
    }

    /// Whether the sequencer is ready, or becomes ready within `patience`.
    pub async fn ready_within(&self, patience: Duration) -> bool {
        if self.is_ready() {
            return true;
        }
        let mut ready = self.ready.clone();
        let became = tokio::time::timeout(patience, ready.wait_for(|ready| *ready)).await;
        matches!(became, Ok(Ok(_))) && self.is_ready()
    }

    /// Admits and durably appends the events of one request, all or none.
    pub async fn submit(
        &self,
        organization: OrganizationId,
        submissions: Vec<Submission>,
    ) -> Result<Vec<Receipt>, SequencerError> {
        // Digests are computed here, on the caller's thread, not by the one admitting task.
        let submissions = submissions
            .into_iter()
            .map(|submission| {
                let digest = ContentDigest::of_submission(&submission);
                (submission, digest)
            })
            .collect();
        let (reply, answer) = oneshot::channel();
        let job = Job {
            organization,
            submissions,
            reply,
            span: tracing::Span::current(),
        };
        self.jobs
            .send(job)
            .await
            .map_err(|_| SequencerError::Unavailable("the sequencer has stopped".into()))?;
        answer.await.map_err(|_| {
            SequencerError::Unavailable("the sequencer stopped before answering".into())
        })?
    }
}

/// Folds every event of the log into a fresh state: every event durable when it is called,
/// whoever appended it.
pub async fn load_state(log: &dyn EventLog) -> stigmergy_log::Result<CaptureState> {
    Ok(load_state_to(log).await?.0)
}

/// [`load_state`], and the position it read to.
async fn load_state_to(log: &dyn EventLog) -> stigmergy_log::Result<(CaptureState, LogPosition)> {
    log.sync().await?;
    let mut state = CaptureState::new();
    let mut after = LogPosition(0);
    loop {
        let page = log.read_after(after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for stored in page {
            let retracted = retracted_by(log, &stored).await?;
            state.apply_recorded(&stored.event, stored.position, &retracted);
        }
    }
    Ok((state, after))
}

/// The event `stored` retracts, when it is a retraction of an event the log holds.
async fn retracted_by(
    log: &dyn EventLog,
    stored: &StoredEvent,
) -> stigmergy_log::Result<RetractedEvents> {
    let mut retracted = RetractedEvents::new();
    if let EventPayload::EventRetracted(p) = &stored.event.payload
        && let Some(original) = log.get(p.event_id).await?
    {
        retracted.insert(p.event_id, original.event);
    }
    Ok(retracted)
}

/// An event another process appended, with what it retracts.
struct Foreign {
    stored: StoredEvent,
    retracted: RetractedEvents,
}

/// Follows what other processes append to a shared log (`EventLog::follow_foreign`), and sends
/// every event on to the sequencer, which keeps those it did not admit itself. Restarts after a
/// failure from where it was.
async fn follow_foreign(
    log: Arc<dyn EventLog>,
    mut after: LogPosition,
    sender: mpsc::UnboundedSender<Foreign>,
) {
    loop {
        let mut events = log.follow_foreign(after);
        while let Some(next) = events.next().await {
            let read = match next {
                Ok(stored) => retracted_by(log.as_ref(), &stored)
                    .await
                    .map(|retracted| Foreign { stored, retracted }),
                Err(failure) => Err(failure),
            };
            match read {
                Ok(foreign) => {
                    after = foreign.stored.position;
                    if sender.send(foreign).is_err() {
                        return;
                    }
                }
                Err(failure) => {
                    warn!(error = %failure, "cannot follow the shared log; trying again");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Applies what other processes appended, as far as the follower has read.
fn take_foreign(state: &mut CaptureState, foreign: &mut Option<mpsc::UnboundedReceiver<Foreign>>) {
    let Some(receiver) = foreign else { return };
    while let Ok(Foreign { stored, retracted }) = receiver.try_recv() {
        if !state.knows_event(&stored.event.event_id) {
            state.apply_recorded(&stored.event, stored.position, &retracted);
        }
    }
}

async fn load_until_it_works(log: &dyn EventLog) -> (CaptureState, LogPosition) {
    let mut delay = Duration::from_millis(100);
    loop {
        match load_state_to(log)
            .instrument(info_span!("capture.load_state"))
            .await
        {
            Ok((state, position)) => {
                info!(
                    events = state.event_count(),
                    "capture state loaded from the log"
                );
                return (state, position);
            }
            Err(failure) => {
                error!(error = %failure, "cannot load the capture state from the log; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Most groups appended but not yet durable at once.
const MAX_IN_FLIGHT: usize = 4;

async fn run(
    mut jobs: mpsc::Receiver<Job>,
    log: Arc<dyn EventLog>,
    directory: Arc<dyn Directory + Send + Sync>,
    max_group: usize,
    ready: watch::Sender<bool>,
) {
    let (mut state, loaded) = load_until_it_works(log.as_ref()).await;
    let mut foreign = log.is_shared().then(|| {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(follow_foreign(log.clone(), loaded, sender));
        receiver
    });
    ready.send_replace(true);
    let mut held_back: Option<Job> = None;
    // Groups whose appends are enqueued, oldest first. The log lands appends in the order they
    // were enqueued, so group N+1 is admitted and enqueued while group N is being written, and
    // the writer never waits for the admission of the next group.
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    loop {
        let first = if let Some(job) = held_back.take() {
            job
        } else if in_flight.is_empty() {
            match jobs.recv().await {
                Some(job) => job,
                None => return,
            }
        } else if in_flight.len() >= MAX_IN_FLIGHT {
            settle_oldest(&mut state, &mut in_flight, log.as_ref(), &ready).await;
            continue;
        } else {
            let oldest = in_flight.front_mut().map(|f| &mut f.append);
            let Some(oldest) = oldest else { continue };
            tokio::select! {
                biased;
                finished = oldest => {
                    let done = in_flight.pop_front();
                    if let Some(done) = done
                        && !finish(&mut state, done.admitted, finished)
                    {
                        recover(&mut state, &mut in_flight, log.as_ref(), &ready).await;
                    }
                    continue;
                }
                job = jobs.recv() => match job {
                    Some(job) => job,
                    None => return,
                },
            }
        };
        if first.retracts().next().is_some() && !in_flight.is_empty() {
            // A retraction is admitted only once everything before it is durable.
            while !in_flight.is_empty() {
                settle_oldest(&mut state, &mut in_flight, log.as_ref(), &ready).await;
            }
        }
        let mut group = vec![first];
        while group.len() < max_group {
            match jobs.try_recv() {
                Ok(job) if job.retracts().next().is_some() => {
                    held_back = Some(job);
                    break;
                }
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        take_foreign(&mut state, &mut foreign);
        let retracted = match fetch_retracted(log.as_ref(), &group[0]).await {
            Ok(retracted) => retracted,
            Err(failure) => {
                for job in group {
                    let _ = job
                        .reply
                        .send(Err(SequencerError::Unavailable(failure.to_string())));
                }
                continue;
            }
        };
        // The group continues the trace of its first request, and links the others: the
        // log append (and, on Kafka, the `traceparent` of its records) is part of that trace.
        let span = info_span!(
            parent: &group[0].span,
            "capture.group",
            requests = group.len(),
            new_events = tracing::field::Empty
        );
        for job in &group[1..] {
            span.follows_from(&job.span);
        }
        let (admitted, new_events) =
            span.in_scope(|| admit_group(&mut state, group, directory.as_ref(), &retracted));
        span.record("new_events", new_events.len());
        let ids: Vec<EventId> = new_events.iter().map(|e| e.event_id).collect();
        let append = span.in_scope(|| log.append(new_events));
        let append = async move {
            append
                .await
                .map(|positions| ids.into_iter().zip(positions).collect())
        }
        .instrument(span)
        .boxed();
        in_flight.push_back(InFlight { append, admitted });
    }
}

/// A group whose events are enqueued in the log.
struct InFlight {
    append: BoxFuture<'static, stigmergy_log::Result<Vec<(EventId, LogPosition)>>>,
    admitted: Vec<Admitted>,
}

/// Waits for the oldest group in flight and answers its requests.
async fn settle_oldest(
    state: &mut CaptureState,
    in_flight: &mut VecDeque<InFlight>,
    log: &dyn EventLog,
    ready: &watch::Sender<bool>,
) {
    let Some(oldest) = in_flight.pop_front() else {
        return;
    };
    let finished = oldest.append.await;
    if !finish(state, oldest.admitted, finished) {
        recover(state, in_flight, log, ready).await;
    }
}

/// After a failed append: answers every group still in flight (the log fails them too, being
/// fail-stop), reloads the state from the log, and lets the log accept appends again.
async fn recover(
    state: &mut CaptureState,
    in_flight: &mut VecDeque<InFlight>,
    log: &dyn EventLog,
    ready: &watch::Sender<bool>,
) {
    ready.send_replace(false);
    while let Some(group) = in_flight.pop_front() {
        let finished = group.append.await;
        finish(state, group.admitted, finished);
    }
    *state = load_until_it_works(log).await.0;
    log.resume();
    ready.send_replace(true);
}

fn refuse(admitted: Vec<Admitted>, reason: &str) {
    for job in admitted {
        let _ = job
            .reply
            .send(Err(SequencerError::Unavailable(reason.to_owned())));
    }
}

async fn fetch_retracted(log: &dyn EventLog, job: &Job) -> stigmergy_log::Result<RetractedEvents> {
    let mut retracted = HashMap::new();
    for event_id in job.retracts() {
        if let Some(stored) = log.get(event_id).await? {
            retracted.insert(event_id, stored.event);
        }
    }
    Ok(retracted)
}

struct Admitted {
    reply: oneshot::Sender<Result<Vec<Receipt>, SequencerError>>,
    outcomes: Vec<(EventId, Outcome)>,
}

/// Seals and admits the requests of a group, each whole or not at all. Refused requests are
/// answered at once; the others are returned with the new events to append.
fn admit_group(
    state: &mut CaptureState,
    group: Vec<Job>,
    directory: &(dyn Directory + Send + Sync),
    retracted: &RetractedEvents,
) -> (Vec<Admitted>, Vec<stigmergy_domain::Event>) {
    let recorded_at = Timestamp::from_datetime(Utc::now());
    let mut admitted = Vec::with_capacity(group.len());
    let mut new_events = Vec::new();
    for job in group {
        let _entered = job.span.enter();
        state.begin();
        let mut outcomes = Vec::with_capacity(job.submissions.len());
        let mut job_events = Vec::new();
        let mut refused = None;
        for (index, (submission, digest)) in job.submissions.into_iter().enumerate() {
            let seal = Seal {
                recorded_by: job.organization.clone(),
                recorded_at,
                minted_id: EventId::from_uuid(uuid::Uuid::now_v7()),
            };
            let admitted = state.seal(submission, &seal).and_then(|event| {
                state
                    .admit_with_digest(&event, digest, directory, retracted)
                    .map(|outcome| (event, outcome))
            });
            match admitted {
                Ok((event, outcome)) => {
                    outcomes.push((event.event_id, outcome));
                    if outcome == Outcome::New {
                        job_events.push(event);
                    }
                }
                Err(refusal) => {
                    refused = Some(SequencerError::Refused { index, refusal });
                    break;
                }
            }
        }
        drop(_entered);
        match refused {
            Some(refusal) => {
                state.rollback();
                let _ = job.reply.send(Err(refusal));
            }
            None => {
                state.commit();
                new_events.extend(job_events);
                admitted.push(Admitted {
                    reply: job.reply,
                    outcomes,
                });
            }
        }
    }
    (admitted, new_events)
}

/// Answers the requests of an appended group. Returns false when the append failed: the
/// requests are refused, and the state (which holds their effects) must be reloaded.
fn finish(
    state: &mut CaptureState,
    admitted: Vec<Admitted>,
    finished: stigmergy_log::Result<Vec<(EventId, LogPosition)>>,
) -> bool {
    let positions = match finished {
        Ok(positions) => positions,
        Err(failure) => {
            warn!(error = %failure, "append failed; the group is refused and the state reloaded");
            refuse(admitted, &failure.to_string());
            return false;
        }
    };
    for (id, position) in &positions {
        state.set_position(id, *position);
    }
    for job in admitted {
        let receipts: Option<Vec<Receipt>> = job
            .outcomes
            .iter()
            .map(|(event_id, outcome)| {
                state.position_of(event_id).map(|position| Receipt {
                    event_id: *event_id,
                    position,
                    duplicate: *outcome == Outcome::Duplicate,
                })
            })
            .collect();
        let answer = receipts
            .ok_or_else(|| SequencerError::Unavailable("an event has no log position".into()));
        let _ = job.reply.send(answer);
    }
    true
}
