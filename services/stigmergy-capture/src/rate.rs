//! Per-organisation rate limits on recording events: each organisation may record
//! `rate_limit_events_per_second` events per second on average, in bursts of up to
//! `rate_limit_burst` (a generic cell rate algorithm, `governor`). A request costs as many
//! units as it holds events, valid or not, and is refused whole (429, with `Retry-After`) when
//! the organisation's budget cannot cover it; nothing of it is recorded. Every key of an
//! organisation draws on the same budget. The limits are per process: N capture replicas admit
//! up to N times the rate.

use std::num::NonZeroU32;
use std::sync::Arc;

use actix_web::http::StatusCode;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use stigmergy_domain::OrganizationId;

use crate::CaptureConfig;
use crate::problem::Problem;

/// The rate limits of one capture process (none when the rate is 0).
#[derive(Clone)]
pub struct RateLimits {
    limiter: Option<Arc<DefaultKeyedRateLimiter<OrganizationId>>>,
    per_second: u32,
    burst: u32,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("per_second", &self.per_second)
            .field("burst", &self.burst)
            .finish()
    }
}

/// Limits that cannot work together.
#[derive(Debug, thiserror::Error)]
#[error(
    "capture.rate_limit_burst ({burst}) must be at least capture.max_events_per_request ({most}), \
     or the largest requests could never be recorded"
)]
pub struct BurstTooSmall {
    pub burst: u32,
    pub most: usize,
}

impl RateLimits {
    /// The limits `config` sets.
    pub fn new(config: &CaptureConfig) -> Result<Self, BurstTooSmall> {
        let (per_second, burst) = (config.rate_limit_events_per_second, config.rate_limit_burst);
        let Some(rate) = NonZeroU32::new(per_second) else {
            return Ok(Self::none());
        };
        let capacity = NonZeroU32::new(burst)
            .filter(|burst| {
                usize::try_from(burst.get()).is_ok_and(|b| b >= config.max_events_per_request)
            })
            .ok_or(BurstTooSmall {
                burst,
                most: config.max_events_per_request,
            })?;
        Ok(Self {
            limiter: Some(Arc::new(RateLimiter::keyed(
                Quota::per_second(rate).allow_burst(capacity),
            ))),
            per_second,
            burst,
        })
    }

    /// No limit.
    pub fn none() -> Self {
        Self {
            limiter: None,
            per_second: 0,
            burst: 0,
        }
    }

    /// Takes `events` units from `organization`'s budget, or refuses (429) saying when the
    /// request can be sent again.
    pub fn take(&self, organization: &OrganizationId, events: usize) -> Result<(), Problem> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let cost = u32::try_from(events)
            .ok()
            .and_then(NonZeroU32::new)
            .unwrap_or(NonZeroU32::MIN);
        match limiter.check_key_n(organization, cost) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(limiter.clock().now());
                Err(Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate-limited",
                    "Too many events",
                    format!(
                        "the organisation may record {} events per second (in bursts of up to {}); \
                         these {events} event(s) fit in {} ms: send them again then; nothing was recorded",
                        self.per_second,
                        self.burst,
                        wait.as_millis()
                    ),
                )
                .with("limit", self.per_second)
                .with("burst", self.burst)
                .retry_after(wait))
            }
            // Cannot happen: a request holds at most `max_events_per_request` events, and the
            // burst is at least that (checked in `new`).
            Err(_) => Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-many-events",
                "Too many events",
                format!(
                    "the request holds {events} events, more than the burst of {}; split it",
                    self.burst
                ),
            )
            .with("limit", self.burst)),
        }
    }
}
