//! How large records and batches are: the broker's request limit, the
//! default batch size below it, and a record's encoded size, which the
//! producer ([`producer`](super::producer)) and its partition tasks both
//! measure with.

use crate::Header;

/// Kafka's default largest record batch (`message.max.bytes`, and a
/// topic's `max.message.bytes` unless set): 1 MiB and 12 bytes.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1024 * 1024 + 12;

/// Kept for compatibility: the default request size weir's batches aim
/// below (1 MiB).
pub const BROKER_MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Largest request a broker reads by default (`socket.request.max.bytes`,
/// 100 MiB): no batch can be larger, whatever a topic allows.
pub const MAX_REQUEST_BYTES: usize = 100 * 1024 * 1024;

/// Room left in a request for the request, topic and batch headers.
const REQUEST_OVERHEAD_BYTES: usize = 16 * 1024;

/// A record batch's header (format v2): 61 bytes before its records.
pub const BATCH_HEADER_BYTES: usize = 61;

/// Default batch size: below what the broker accepts by default, less the
/// overhead.
pub const DEFAULT_BATCH_BYTES: usize = BROKER_MAX_REQUEST_BYTES - REQUEST_OVERHEAD_BYTES;

/// The largest record, in [`encoded_size`]'s estimate, that a topic whose
/// batches may be `max_message_bytes` long accepts: alone in its batch.
pub fn record_limit(max_message_bytes: usize) -> usize {
    max_message_bytes
        .min(MAX_REQUEST_BYTES - REQUEST_OVERHEAD_BYTES)
        .saturating_sub(BATCH_HEADER_BYTES)
}

/// Upper estimate of a record's encoded size inside a record batch: its
/// bytes plus the varint framing (length, attributes, timestamp and offset
/// deltas, lengths). The broker checks the whole batch against
/// `max.message.bytes`, so this must not undercount; rskafka's own
/// `approximate_size` leaves the framing out.
pub(super) fn encoded_size(key: Option<&[u8]>, value: Option<&[u8]>, headers: &[Header]) -> usize {
    // length ≤ 5, attributes 1, timestamp delta ≤ 5 within a batch's
    // hours, offset delta ≤ 3, key and value lengths ≤ 5 each, header
    // count ≤ 1 for few headers: 25 bytes.
    const FRAMING: usize = 25;
    key.map_or(0, <[u8]>::len)
        + value.map_or(0, <[u8]>::len)
        + headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len) + 10)
            .sum::<usize>()
        + FRAMING
}
