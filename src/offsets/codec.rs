//! The store's records: an [`OffsetKey`] and its [`Commit`], or a
//! [`ChunkKey`] and a piece of a state too large for its commit, and how a
//! state is split into chunks and put back together.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::TopicPartition;
use crate::record::ConsumedRecord;

/// Version of the key and value format.
const FORMAT_VERSION: u8 = 1;

/// Which group and partition a commit belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OffsetKey {
    /// Group.
    pub group: String,
    /// The partition consumed.
    pub partition: TopicPartition,
}

impl OffsetKey {
    /// The record key: `[1,"group","topic",partition]`.
    pub fn encode(&self) -> Vec<u8> {
        let TopicPartition { topic, partition } = &self.partition;
        serde_json::to_vec(&(FORMAT_VERSION, &self.group, &**topic, partition)).unwrap_or_default()
    }

    /// Reads a record key.
    ///
    /// # Errors
    ///
    /// [`RecordError::Key`] for anything but a JSON array of this form,
    /// [`RecordError::Version`] for another format version.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let (version, group, topic, partition): (u8, String, String, i32) =
            serde_json::from_slice(bytes).map_err(RecordError::Key)?;
        check_version(version)?;
        Ok(Self {
            group,
            partition: TopicPartition::new(topic, partition),
        })
    }
}

/// One piece of a state too large for its commit record, written before
/// the commit that references it: key `[1,group,topic,partition,checkpoint,index]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkKey {
    /// Group.
    pub group: String,
    /// The partition consumed.
    pub partition: TopicPartition,
    /// The checkpoint the chunk belongs to.
    pub checkpoint: String,
    /// Its place among the checkpoint's chunks, from 0.
    pub index: u32,
}

impl ChunkKey {
    /// The record key.
    pub fn encode(&self) -> Vec<u8> {
        let TopicPartition { topic, partition } = &self.partition;
        serde_json::to_vec(&(
            FORMAT_VERSION,
            &self.group,
            &**topic,
            partition,
            &self.checkpoint,
            self.index,
        ))
        .unwrap_or_default()
    }
}

/// A record of the store, read.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreRecord {
    /// A commit (`None`: deleted).
    Commit(OffsetKey, Option<Commit>),
    /// A state chunk (`None`: deleted).
    Chunk(ChunkKey, Option<Vec<u8>>),
}

/// Why a record of the store cannot be read; such a record is skipped
/// with a warning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The record has a null key.
    #[error("no key")]
    NoKey,
    /// The key is not a JSON array of the expected form.
    #[error("unreadable key")]
    Key(#[source] serde_json::Error),
    /// The key is of another format version.
    #[error("key format version {0} is not {FORMAT_VERSION}")]
    Version(u8),
    /// The value is not a JSON commit.
    #[error("unreadable value")]
    Value(#[source] serde_json::Error),
}

fn check_version(version: u8) -> Result<(), RecordError> {
    if version == FORMAT_VERSION {
        Ok(())
    } else {
        Err(RecordError::Version(version))
    }
}

/// Chunks of a group's checkpointed state, by key.
pub(super) type Chunks = BTreeMap<ChunkKey, Vec<u8>>;

/// State chunks are this large.
const CHUNK_BYTES: usize = 256 * 1024;

/// States are inline in their commit records while the commit request
/// stays under this; the rest are chunked.
pub(super) const INLINE_BUDGET: usize = 256 * 1024;

/// A commit's state when it is in chunks: which checkpoint's, how many,
/// and their total size.
#[derive(Debug, Serialize, Deserialize)]
struct ChunkedState {
    checkpoint: String,
    chunks: u32,
    bytes: usize,
}

/// One committed position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Commit {
    /// The next offset to read.
    pub offset: i64,
    /// When it was committed, ms since the epoch.
    pub committed_at: i64,
    /// Which process committed it.
    pub instance: String,
    /// When that process's session began, ms since the epoch: of two
    /// `--exclusive` instances on one partition, the later one yields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    /// The broker's committed offset of the partition for the group
    /// (another client's) when the committing session began: while the
    /// broker still has it, no other client committed since, so this
    /// commit is the newer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<i64>,
    /// State saved with the offset (aggregation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<serde_json::Value>,
}

/// A partition's saved state that cannot be put back together.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A chunk the commit refers to is not in the store.
    #[error("chunk {index} of checkpoint {checkpoint} is missing from the offsets topic")]
    MissingChunk {
        /// The partition whose state it is.
        partition: TopicPartition,
        /// The checkpoint the commit refers to.
        checkpoint: String,
        /// The missing chunk's index.
        index: u32,
    },
    /// The chunks do not add up to the size the commit gives.
    #[error("checkpoint {checkpoint} has {found} bytes in its chunks, not {expected}")]
    Length {
        /// The partition whose state it is.
        partition: TopicPartition,
        /// The checkpoint the commit refers to.
        checkpoint: String,
        /// Bytes in the chunks.
        found: usize,
        /// Bytes the commit gives.
        expected: usize,
    },
}

impl StateError {
    /// The partition whose state it is.
    pub fn partition(&self) -> &TopicPartition {
        match self {
            Self::MissingChunk { partition, .. } | Self::Length { partition, .. } => partition,
        }
    }
}

/// Reads a record of the store: a chunk when its key has a chunk's six
/// fields, else a commit.
///
/// # Errors
///
/// A key or value weir cannot read, or of another format version.
pub(super) fn parse(record: ConsumedRecord) -> Result<StoreRecord, RecordError> {
    let key = record.key.as_deref().ok_or(RecordError::NoKey)?;
    if let Ok((version, group, topic, partition, checkpoint, index)) =
        serde_json::from_slice::<(u8, String, String, i32, String, u32)>(key)
    {
        check_version(version)?;
        let key = ChunkKey {
            group,
            partition: TopicPartition::new(topic, partition),
            checkpoint,
            index,
        };
        return Ok(StoreRecord::Chunk(key, record.value));
    }
    let key = OffsetKey::decode(key)?;
    let commit = match &record.value {
        None => None,
        Some(v) => Some(serde_json::from_slice::<Commit>(v).map_err(RecordError::Value)?),
    };
    Ok(StoreRecord::Commit(key, commit))
}

/// Splits `json`, the state of `partition` in checkpoint `id`, into
/// chunks: returns the state its commit carries instead (a
/// [`ChunkedState`]) and the chunks, to be written before that commit.
pub(super) fn split_state(
    group: &str,
    partition: &TopicPartition,
    id: &str,
    json: &[u8],
) -> (serde_json::Value, Vec<(ChunkKey, Vec<u8>)>) {
    let pieces: Vec<_> = json
        .chunks(CHUNK_BYTES)
        .enumerate()
        .map(|(index, piece)| {
            let key = ChunkKey {
                group: group.to_owned(),
                partition: partition.clone(),
                checkpoint: id.to_owned(),
                index: u32::try_from(index).unwrap_or(u32::MAX),
            };
            (key, piece.to_vec())
        })
        .collect();
    let chunked = ChunkedState {
        checkpoint: id.to_owned(),
        chunks: u32::try_from(pieces.len()).unwrap_or(u32::MAX),
        bytes: json.len(),
    };
    (serde_json::to_value(chunked).unwrap_or_default(), pieces)
}

/// A commit's state made of several pieces, in order: a snapshot, then
/// deltas to apply to it (each inline or a [`ChunkedState`]).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StateChain {
    pub(super) chain: Vec<serde_json::Value>,
}

/// The pieces of `state`, the state a commit of `partition` carries, in
/// order (one unless it is a [`StateChain`]), each put back together as
/// [`join_piece`] does; with the chunk keys they took.
pub(super) fn join_state(
    chunks: &mut Chunks,
    group: &str,
    partition: &TopicPartition,
    state: &serde_json::Value,
) -> Result<(Vec<Vec<u8>>, Vec<ChunkKey>), StateError> {
    let pieces = match serde_json::from_value::<StateChain>(state.clone()) {
        Ok(chain) => chain.chain,
        Err(_) => vec![state.clone()],
    };
    let mut all = Vec::with_capacity(pieces.len());
    let mut keys = Vec::new();
    for piece in &pieces {
        let (bytes, piece_keys) = join_piece(chunks, group, partition, piece)?;
        all.push(bytes);
        keys.extend(piece_keys);
    }
    Ok((all, keys))
}

/// The bytes of one piece of a commit's state: an inline one as it is, a
/// [`ChunkedState`] put back together from `chunks` (which it takes, and
/// whose keys it returns).
fn join_piece(
    chunks: &mut Chunks,
    group: &str,
    partition: &TopicPartition,
    state: &serde_json::Value,
) -> Result<(Vec<u8>, Vec<ChunkKey>), StateError> {
    let Ok(chunked) = serde_json::from_value::<ChunkedState>(state.clone()) else {
        return Ok((serde_json::to_vec(state).unwrap_or_default(), Vec::new()));
    };
    let mut bytes = Vec::with_capacity(chunked.bytes);
    let mut keys = Vec::new();
    for index in 0..chunked.chunks {
        let key = ChunkKey {
            group: group.to_owned(),
            partition: partition.clone(),
            checkpoint: chunked.checkpoint.clone(),
            index,
        };
        let chunk = chunks
            .remove(&key)
            .ok_or_else(|| StateError::MissingChunk {
                partition: partition.clone(),
                checkpoint: chunked.checkpoint.clone(),
                index,
            })?;
        bytes.extend_from_slice(&chunk);
        keys.push(key);
    }
    if bytes.len() != chunked.bytes {
        return Err(StateError::Length {
            partition: partition.clone(),
            checkpoint: chunked.checkpoint,
            found: bytes.len(),
            expected: chunked.bytes,
        });
    }
    Ok((bytes, keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_any_name() {
        for (group, topic) in [
            ("g", "t"),
            ("a/b\\c\"d", "topic.with-dots_and"),
            ("grüße 🚀", "t"),
            ("", "x"),
            ("[1,\"g\",\"t\",0]", "y"),
        ] {
            let key = OffsetKey {
                group: group.to_owned(),
                partition: TopicPartition::new(topic, 7),
            };
            assert_eq!(OffsetKey::decode(&key.encode()).unwrap(), key);
        }
        let key = OffsetKey {
            group: "g".into(),
            partition: TopicPartition::new("t", 3),
        };
        assert_eq!(key.encode(), br#"[1,"g","t",3]"#);
        assert!(OffsetKey::decode(br#"[2,"g","t",3]"#).is_err());
        assert!(OffsetKey::decode(b"garbage").is_err());
    }

    #[test]
    fn an_unreadable_key_says_why() {
        let err = OffsetKey::decode(br#"[2,"g","t",3]"#).unwrap_err();
        assert_eq!(err.to_string(), "key format version 2 is not 1");
        let err = OffsetKey::decode(b"garbage").unwrap_err();
        assert!(matches!(err, RecordError::Key(_)), "{err:?}");
        // The warning for a skipped record prints the chain.
        let text = crate::ErrorChain(&err).to_string();
        assert!(text.starts_with("unreadable key: expected value"), "{text}");
    }

    #[test]
    fn keys_of_different_groups_never_collide() {
        // A separator-based key would make these two equal.
        let a = OffsetKey {
            group: "a,b".into(),
            partition: TopicPartition::new("c", 0),
        };
        let b = OffsetKey {
            group: "a".into(),
            partition: TopicPartition::new("b,c", 0),
        };
        assert_ne!(a.encode(), b.encode());
    }

    #[test]
    fn a_chunked_state_comes_back_byte_for_byte() {
        let at = TopicPartition::new("t", 3);
        // JSON larger than two chunks, with multi-byte text across a cut.
        let text = "é".repeat(CHUNK_BYTES);
        let json = serde_json::to_vec(&serde_json::json!({ "k": text })).unwrap();
        let (state, pieces) = split_state("g", &at, "i-7", &json);
        assert_eq!(pieces.len(), 3);
        assert_eq!(
            state,
            serde_json::json!({"checkpoint": "i-7", "chunks": 3, "bytes": json.len()})
        );
        let keys: Vec<_> = pieces.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(
            keys[2].encode(),
            br#"[1,"g","t",3,"i-7",2]"#,
            "chunk keys name group, topic, partition, checkpoint and index"
        );
        let mut chunks: Chunks = pieces.into_iter().collect();
        let (pieces, used) = join_state(&mut chunks, "g", &at, &state).unwrap();
        assert_eq!(pieces, [json]);
        assert_eq!(used, keys);
        assert!(chunks.is_empty(), "the chunks used are taken");

        // An inline state is the commit's JSON itself.
        let inline = serde_json::json!({"n": 3});
        let (pieces, used) = join_state(&mut Chunks::new(), "g", &at, &inline).unwrap();
        assert_eq!(pieces, [br#"{"n":3}"#.to_vec()]);
        assert!(used.is_empty());

        // A chain: an inline snapshot, then a chunked delta.
        let delta = b"[1,2,3]".to_vec();
        let (piece, delta_chunks) = split_state("g", &at, "i-8", &delta);
        let chain = serde_json::to_value(StateChain {
            chain: vec![inline, piece],
        })
        .unwrap();
        let mut chunks: Chunks = delta_chunks.into_iter().collect();
        let (pieces, used) = join_state(&mut chunks, "g", &at, &chain).unwrap();
        assert_eq!(pieces, [br#"{"n":3}"#.to_vec(), delta]);
        assert_eq!(used.len(), 1);
    }

    #[test]
    fn a_missing_or_short_chunk_is_an_error_naming_it() {
        let at = TopicPartition::new("t", 0);
        let json = vec![b'1'; CHUNK_BYTES + 10];
        let (state, pieces) = split_state("g", &at, "i-1", &json);
        let mut missing: Chunks = pieces.iter().skip(1).cloned().collect();
        let err = join_state(&mut missing, "g", &at, &state).unwrap_err();
        assert_eq!(
            err.to_string(),
            "chunk 0 of checkpoint i-1 is missing from the offsets topic"
        );
        assert_eq!(err.partition(), &TopicPartition::new("t", 0));
        let mut short: Chunks = pieces.into_iter().collect();
        short.values_mut().last().unwrap().pop();
        let err = join_state(&mut short, "g", &at, &state).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "checkpoint i-1 has {} bytes in its chunks, not {}",
                json.len() - 1,
                json.len()
            )
        );
    }

    #[test]
    fn commit_values_are_json_with_optional_state() {
        let c = Commit {
            offset: 42,
            committed_at: 1_700_000_000_000,
            instance: "host-1-abc".into(),
            started_at: None,
            broker: None,
            state: None,
        };
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(
            text,
            r#"{"offset":42,"committed_at":1700000000000,"instance":"host-1-abc"}"#
        );
        let with_state: Commit =
            serde_json::from_str(r#"{"offset":1,"committed_at":2,"instance":"i","state":{"n":3}}"#)
                .unwrap();
        assert_eq!(with_state.state, Some(serde_json::json!({"n": 3})));
    }
}
