//! Content digests: what makes two submissions of one `eventId` "the same event".

use std::io;

use sha2::{Digest, Sha256};

use crate::event::{Event, EventPayload, SchemaVersion, Submission};
use crate::time::Timestamp;

/// SHA-256 over the JSON of what a client decides about an event: its type, schema version,
/// `occurredAt` and payload, as the domain types write them (so key order, white space and `10`
/// vs `10.0` in the submitted JSON do not matter). The recording organisation is compared
/// separately, and the server's own fields (`recordedAt`, the derived `subject`) are left out, so
/// a retried submission has the digest of the stored event.
///
/// Digests live in memory only (they are recomputed from the log at start), so how they are
/// computed may change between versions.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentDigest(pub [u8; 32]);

/// Feeds what serde_json writes straight into the hash, without building a string.
struct HashWriter(Sha256);

impl io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ContentDigest {
    fn compute(
        schema_version: SchemaVersion,
        occurred_at: &Timestamp,
        payload: &EventPayload,
    ) -> Self {
        let mut writer = HashWriter(Sha256::new());
        let content = (
            payload.event_type().name(),
            schema_version,
            occurred_at,
            payload,
        );
        // The writer never fails and every domain type serialises (no map has non-string keys).
        #[allow(clippy::expect_used)]
        serde_json::to_writer(&mut writer, &content).expect("domain types serialise into a hasher");
        Self(writer.0.finalize().into())
    }

    /// The digest of a recorded event.
    pub fn of(event: &Event) -> Self {
        Self::compute(event.schema_version, &event.occurred_at, &event.payload)
    }

    /// The digest of a submission: equal to that of the event it is sealed into.
    pub fn of_submission(submission: &Submission) -> Self {
        Self::compute(
            submission.schema_version,
            &submission.occurred_at,
            &submission.payload,
        )
    }
}

impl std::fmt::Debug for ContentDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContentDigest({})", hex::encode(&self.0[..8]))
    }
}
