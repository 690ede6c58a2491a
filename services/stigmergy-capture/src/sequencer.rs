//! The sequencer: the one place where events are admitted, so that the rules always see the
//! state every earlier event implies, and so that concurrent requests share log appends.
//!
//! Requests queue on a channel. The sequencer takes every request waiting (up to a bound) as a
//! group, seals and admits each request's events against its [`CaptureState`] (a request is
//! admitted whole or rolled back whole), appends the new events of the whole group in one log
//! append (one fsync), and only then answers each request. A request that retracts an event
//! starts a group of its own, after every earlier event is durable, so the retracted event can be
//! read back from the log.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;
use stigmergy_domain::rules::{CaptureState, Directory, Outcome, Refusal, RetractedEvents, Seal};
use stigmergy_domain::{
    ContentDigest, EventId, EventPayload, LogPosition, OrganizationId, Submission, Timestamp,
};
use stigmergy_log::EventLog;
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

/// Folds every event of the log into a fresh state.
pub async fn load_state(log: &dyn EventLog) -> stigmergy_log::Result<CaptureState> {
    let mut state = CaptureState::new();
    let mut after = LogPosition(0);
    loop {
        let page = log.read_after(after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for stored in page {
            let mut retracted = RetractedEvents::new();
            if let EventPayload::EventRetracted(p) = &stored.event.payload
                && let Some(original) = log.get(p.event_id).await?
            {
                retracted.insert(p.event_id, original.event);
            }
            state.apply_recorded(&stored.event, stored.position, &retracted);
        }
    }
    Ok(state)
}

async fn load_until_it_works(log: &dyn EventLog) -> CaptureState {
    let mut delay = Duration::from_millis(100);
    loop {
        match load_state(log)
            .instrument(info_span!("capture.load_state"))
            .await
        {
            Ok(state) => {
                info!(
                    events = state.event_count(),
                    "capture state loaded from the log"
                );
                return state;
            }
            Err(failure) => {
                error!(error = %failure, "cannot load the capture state from the log; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn run(
    mut jobs: mpsc::Receiver<Job>,
    log: Arc<dyn EventLog>,
    directory: Arc<dyn Directory + Send + Sync>,
    max_group: usize,
    ready: watch::Sender<bool>,
) {
    let mut state = load_until_it_works(log.as_ref()).await;
    ready.send_replace(true);
    let mut held_back: Option<Job> = None;
    loop {
        let first = match held_back.take() {
            Some(job) => job,
            None => match jobs.recv().await {
                Some(job) => job,
                None => return,
            },
        };
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
        let span = info_span!(
            "capture.group",
            requests = group.len(),
            new_events = tracing::field::Empty
        );
        let healthy = process_group(
            &mut state,
            group,
            log.as_ref(),
            directory.as_ref(),
            &retracted,
        )
        .instrument(span)
        .await;
        if !healthy {
            ready.send_replace(false);
            state = load_until_it_works(log.as_ref()).await;
            ready.send_replace(true);
        }
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

/// Admits, appends and answers one group. Returns false when the log failed, after which the
/// state (which already holds the group's effects) must be reloaded from the log.
async fn process_group(
    state: &mut CaptureState,
    group: Vec<Job>,
    log: &dyn EventLog,
    directory: &(dyn Directory + Send + Sync),
    retracted: &RetractedEvents,
) -> bool {
    let recorded_at = Timestamp::from_datetime(Utc::now());
    let mut admitted = Vec::with_capacity(group.len());
    let mut new_events = Vec::new();
    for job in group {
        let _entered = job.span.enter();
        let seal = |organization: &OrganizationId| Seal {
            recorded_by: organization.clone(),
            recorded_at,
            minted_id: EventId::from_uuid(uuid::Uuid::now_v7()),
        };
        state.begin();
        let mut outcomes = Vec::with_capacity(job.submissions.len());
        let mut job_events = Vec::new();
        let mut refused = None;
        for (index, (submission, digest)) in job.submissions.into_iter().enumerate() {
            let admitted = state
                .seal(submission, &seal(&job.organization))
                .and_then(|event| {
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
    tracing::Span::current().record("new_events", new_events.len());
    if !new_events.is_empty() {
        let ids: Vec<EventId> = new_events.iter().map(|e| e.event_id).collect();
        match log.append(new_events).await {
            Ok(positions) => {
                for (id, position) in ids.iter().zip(positions) {
                    state.set_position(id, position);
                }
            }
            Err(failure) => {
                warn!(error = %failure, "append failed; the group is refused and the state reloaded");
                for job in admitted {
                    let _ = job
                        .reply
                        .send(Err(SequencerError::Unavailable(failure.to_string())));
                }
                return false;
            }
        }
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
