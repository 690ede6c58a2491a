//! Content digests: what makes two submissions of one `eventId` "the same event".

use sha2::{Digest, Sha256};

use crate::event::Event;

/// SHA-256 over the canonical JSON of what a client decides about an event: its type, schema
/// version, `occurredAt`, recording organisation and payload. The server's own fields
/// (`recordedAt`, the derived `subject`) are left out, so a retried submission has the same
/// digest as the stored event.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentDigest(pub [u8; 32]);

impl ContentDigest {
    pub fn of(event: &Event) -> Self {
        let canonical = serde_json::json!([
            event.event_type().name(),
            event.schema_version.get(),
            event.occurred_at.to_string(),
            event.recorded_by.as_str(),
            event.payload,
        ]);
        let mut hasher = Sha256::new();
        // Serialising a `Value` built from domain types cannot fail.
        hasher.update(canonical.to_string().as_bytes());
        Self(hasher.finalize().into())
    }
}

impl std::fmt::Debug for ContentDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContentDigest({})", hex::encode(&self.0[..8]))
    }
}
