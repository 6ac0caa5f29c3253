//! weir: every decoder weir relies on, fed random and damaged bytes.
//!
//! A broker's answer is read by the response decoders (Produce, Fetch,
//! ListOffsets, Metadata, ApiVersions, CreateTopics, DeleteTopics,
//! SaslHandshake, SaslAuthenticate, after the response header), a fetch's
//! records by `Records::read`, `RecordBatch::parse` and the batch body with
//! its four decompressors, all of it framed by `read_message` and built of
//! the primitives. Each gets random bytes and valid encodings damaged: bytes
//! flipped, length fields set to their extremes, cut short, extended, with
//! the batches' CRCs put right so the damage reaches the record parser. A
//! decode must end in `Ok` or `Err`: weir is built with `panic = "abort"`,
//! so a panic here is a crash there. Nor may a length read from the input
//! allocate more than the decoders' guards allow (`VecBuilder`'s 10 MiB
//! blocks), counted by a test allocator.
//!
//! Every valid encoding is checked to read back whole first, so the damage
//! starts from what a broker sends.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    io::{BufReader, Cursor},
};

use proptest::prelude::*;
use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};

use super::{
    api_version::ApiVersion,
    frame::{AsyncMessageRead, AsyncMessageWrite},
    messages::{
        ApiVersionsRequest, CreateTopicsRequest, DeleteTopicsRequest, FetchRequest,
        ListOffsetsRequest, MetadataRequest, ProduceRequest, ReadVersionedType, RequestBody,
        ResponseHeader, SaslAuthenticateRequest, SaslHandshakeRequest,
    },
    primitives::{
        Array, Boolean, Bytes, CompactArray, CompactBytes, CompactNullableString, CompactString,
        Int8, Int16, Int32, Int64, NullableBytes, NullableString, Records, String_, TaggedFields,
        UnsignedVarint, Varint, Varlong,
    },
    record::{
        ControlBatchOrRecords, ControlBatchRecord, Record, RecordBatch, RecordBatchBody,
        RecordBatchCompression, RecordBatchTimestampType, RecordHeader, compress,
    },
    traits::{ReadType, WriteType},
    vec_builder::DEFAULT_BLOCK_SIZE,
};

/// Damaged copies of each valid encoding.
const MUTANTS: usize = 12;

/// The most one decode may allocate at once: a length read from the input
/// claims at most one `VecBuilder` block before its read fails.
const MAX_ALLOCATION: usize = DEFAULT_BLOCK_SIZE + 64 * 1024;

/// The most one decode may allocate in all: a block for each nested
/// length (a response's arrays, a string, tagged fields) on the way down.
const MAX_TOTAL: usize = 8 * DEFAULT_BLOCK_SIZE;

/// The frame size limit for `read_message` here; weir's is 100 MiB.
const MAX_FRAME: usize = 64 * 1024;

// ---------------------------------------------------------------- allocations

/// Counts what this thread allocates while `COUNTED` is set.
struct Counting;

thread_local! {
    /// (largest, total) bytes allocated since `measured` began.
    static COUNTED: Cell<Option<(usize, usize)>> = const { Cell::new(None) };
}

fn count(size: usize) {
    // `try_with`: the allocator also runs while a thread is torn down.
    let _ = COUNTED.try_with(|counted| {
        if let Some((largest, total)) = counted.get() {
            counted.set(Some((largest.max(size), total.saturating_add(size))));
        }
    });
}

// A global allocator can only be written with `unsafe`; this one passes
// every call to the system allocator unchanged.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `decode` on `input`, and fails if it allocated more than a decoder
/// may. (The decoders' C libraries, zstd and lz4, allocate outside Rust's
/// allocator and are not counted.)
fn measured<T>(what: &str, input: &[u8], decode: impl FnOnce() -> T) -> T {
    COUNTED.with(|counted| counted.set(Some((0, 0))));
    let out = decode();
    let (largest, total) = COUNTED
        .with(|counted| counted.replace(None))
        .expect("set above");
    assert!(
        largest <= MAX_ALLOCATION && total <= MAX_TOTAL,
        "{what}: {largest} bytes allocated at once, {total} in all, reading {} bytes: {input:02x?}",
        input.len(),
    );
    out
}

// ---------------------------------------------------------------- encodings

/// A field of a response, as its decoder reads it.
#[derive(Debug, Clone)]
enum F {
    I8,
    I16,
    I32,
    I64,
    Bool,
    Str,
    NullableStr,
    CompactStr,
    CompactNullableStr,
    Bytes,
    CompactBytes,
    Tags,
    /// INT32 count, -1 for null.
    Array(Vec<F>),
    /// UNSIGNED_VARINT count + 1, 0 for null.
    CompactArray(Vec<F>),
    /// NULLABLE_BYTES holding record batches.
    Records,
}

/// A length or count in an encoding, where the damage goes.
#[derive(Debug, Clone, Copy)]
enum Length {
    I16(usize),
    I32(usize),
    /// An UNSIGNED_VARINT at `.0`, `.1` bytes long.
    Unsigned(usize, usize),
    /// A zig-zag VARINT (in a record) at `.0`, `.1` bytes long.
    ZigZag(usize, usize),
}

/// A valid encoding, with where its lengths and record batches are.
#[derive(Debug, Default)]
struct Encoding {
    bytes: Vec<u8>,
    lengths: Vec<Length>,
    /// Where each whole record batch starts.
    batches: Vec<usize>,
}

impl Encoding {
    fn of(rng: &mut StdRng, fields: &[F]) -> Self {
        let mut e = Self::default();
        e.fields(rng, fields);
        e
    }

    fn fields(&mut self, rng: &mut StdRng, fields: &[F]) {
        for field in fields {
            self.field(rng, field);
        }
    }

    fn field(&mut self, rng: &mut StdRng, field: &F) {
        match field {
            F::I8 => self.bytes.push(rng.r#gen()),
            F::I16 => self.put(&rng.r#gen::<i16>().to_be_bytes()),
            F::I32 => self.put(&rng.r#gen::<i32>().to_be_bytes()),
            F::I64 => self.put(&rng.r#gen::<i64>().to_be_bytes()),
            F::Bool => self.bytes.push(rng.gen_range(0..2)),
            F::Str => {
                let s = text(rng);
                self.i16_length(s.len() as i16);
                self.put(s.as_bytes());
            }
            F::NullableStr if rng.gen_bool(0.2) => self.i16_length(-1),
            F::NullableStr => self.field(rng, &F::Str),
            F::CompactStr => {
                let s = text(rng);
                self.unsigned_length(s.len() as u64 + 1);
                self.put(s.as_bytes());
            }
            F::CompactNullableStr if rng.gen_bool(0.2) => self.unsigned_length(0),
            F::CompactNullableStr => self.field(rng, &F::CompactStr),
            F::Bytes => {
                let b = blob(rng);
                self.i32_length(b.len() as i32);
                self.put(&b);
            }
            F::CompactBytes => {
                let b = blob(rng);
                self.unsigned_length(b.len() as u64 + 1);
                self.put(&b);
            }
            F::Tags => {
                let n = rng.gen_range(0..3);
                self.unsigned_length(n);
                for _ in 0..n {
                    UnsignedVarint(rng.gen_range(0..300))
                        .write(&mut self.bytes)
                        .unwrap();
                    let b = blob(rng);
                    self.unsigned_length(b.len() as u64);
                    self.put(&b);
                }
            }
            F::Array(_) if rng.gen_bool(0.1) => self.i32_length(-1),
            F::Array(item) => {
                let n = rng.gen_range(0..3);
                self.i32_length(n);
                for _ in 0..n {
                    self.fields(rng, item);
                }
            }
            F::CompactArray(_) if rng.gen_bool(0.1) => self.unsigned_length(0),
            F::CompactArray(item) => {
                let n = rng.gen_range(0..3);
                self.unsigned_length(n + 1);
                for _ in 0..n {
                    self.fields(rng, item);
                }
            }
            F::Records if rng.gen_bool(0.1) => self.i32_length(-1),
            F::Records => self.records(rng),
        }
    }

    fn put(&mut self, b: &[u8]) {
        self.bytes.extend_from_slice(b);
    }

    fn i16_length(&mut self, n: i16) {
        self.lengths.push(Length::I16(self.bytes.len()));
        self.put(&n.to_be_bytes());
    }

    fn i32_length(&mut self, n: i32) {
        self.lengths.push(Length::I32(self.bytes.len()));
        self.put(&n.to_be_bytes());
    }

    fn unsigned_length(&mut self, n: u64) {
        let at = self.bytes.len();
        UnsignedVarint(n).write(&mut self.bytes).unwrap();
        self.lengths
            .push(Length::Unsigned(at, self.bytes.len() - at));
    }

    /// A fetch's records: whole batches, the last sometimes cut short as a
    /// fetch's size limit cuts it.
    fn records(&mut self, rng: &mut StdRng) {
        let at = self.bytes.len();
        self.i32_length(0);
        let start = self.bytes.len();
        let mut last = start;
        for _ in 0..rng.gen_range(0..3) {
            last = self.bytes.len();
            let (batch, _) = batch(rng);
            batch.write(&mut self.bytes).unwrap();
            self.batches.push(last);
            self.lengths.push(Length::I32(last + 8)); // batchLength
            self.lengths.push(Length::I32(last + 57)); // record count
        }
        if last > start && rng.gen_bool(0.2) {
            let cut = rng.gen_range(last + 1..self.bytes.len());
            self.bytes.truncate(cut);
            self.batches.pop();
            let end = self.bytes.len();
            self.lengths.retain(|l| match *l {
                Length::I32(p) => p + 4 <= end,
                _ => true,
            });
        }
        let len = (self.bytes.len() - start) as i32;
        self.bytes[at..start].copy_from_slice(&len.to_be_bytes());
    }
}

fn text(rng: &mut StdRng) -> String {
    let mut s: String = (0..rng.gen_range(0..8))
        .map(|_| *[b'a', b'z', b'.', b'-', b'0'].choose(rng).unwrap() as char)
        .collect();
    if rng.gen_bool(0.1) {
        s.push('é');
    }
    s
}

fn blob(rng: &mut StdRng) -> Vec<u8> {
    let mut b = vec![0; rng.gen_range(0..12)];
    rng.fill(&mut b[..]);
    b
}

const COMPRESSIONS: [RecordBatchCompression; 5] = [
    RecordBatchCompression::NoCompression,
    RecordBatchCompression::Gzip,
    RecordBatchCompression::Snappy,
    RecordBatchCompression::Lz4,
    RecordBatchCompression::Zstd,
];

/// A record batch as a producer writes it (a transaction marker at times),
/// and its compression.
fn batch(rng: &mut StdRng) -> (RecordBatch, RecordBatchCompression) {
    let control = rng.gen_bool(0.15);
    let records = if control {
        ControlBatchOrRecords::ControlBatch(
            *[ControlBatchRecord::Commit, ControlBatchRecord::Abort]
                .choose(rng)
                .unwrap(),
        )
    } else {
        ControlBatchOrRecords::Records(
            (0..rng.gen_range(0..4))
                .map(|i| Record {
                    timestamp_delta: rng.gen_range(-2..1000),
                    offset_delta: i,
                    key: rng.gen_bool(0.8).then(|| blob(rng)),
                    value: rng.gen_bool(0.9).then(|| blob(rng)),
                    headers: (0..rng.gen_range(0..3))
                        .map(|_| RecordHeader {
                            key: text(rng),
                            value: rng.gen_bool(0.8).then(|| blob(rng)),
                        })
                        .collect(),
                })
                .collect(),
        )
    };
    let compression = *COMPRESSIONS.choose(rng).unwrap();
    let batch = RecordBatch {
        base_offset: rng.gen_range(0..1 << 40),
        partition_leader_epoch: rng.gen_range(-1..10),
        last_offset_delta: rng.gen_range(0..4),
        first_timestamp: rng.r#gen(),
        max_timestamp: rng.r#gen(),
        producer_id: rng.gen_range(-1..1000),
        producer_epoch: rng.gen_range(-1..10),
        base_sequence: rng.gen_range(-1..1000),
        records,
        compression,
        is_transactional: control || rng.gen_bool(0.3),
        timestamp_type: if rng.gen_bool(0.5) {
            RecordBatchTimestampType::CreateTime
        } else {
            RecordBatchTimestampType::LogAppendTime
        },
    };
    (batch, compression)
}

/// Where a batch body's records start (after attributes, lastOffsetDelta,
/// the timestamps, producer id and epoch, baseSequence and the count).
const BODY_RECORDS: usize = 40;

/// The varint lengths of valid uncompressed `records` (key, value, header
/// count, header keys and values, each record's own), at `base` onwards.
fn record_lengths(records: &[u8], base: usize, out: &mut Vec<Length>) {
    let varint = |p: usize, out: &mut Vec<Length>, note: bool| {
        let width = records[p..].iter().position(|b| b & 0x80 == 0).unwrap() + 1;
        let mut raw = 0u64;
        for (i, b) in records[p..p + width].iter().enumerate() {
            raw |= u64::from(b & 0x7f) << (7 * i);
        }
        if note {
            out.push(Length::ZigZag(base + p, width));
        }
        ((raw >> 1) as i64 ^ -((raw & 1) as i64), width)
    };
    let mut p = 0;
    while p < records.len() {
        let (len, w) = varint(p, out, true);
        let end = p + w + len as usize;
        p += w + 1; // attributes
        p += varint(p, out, false).1; // timestampDelta
        p += varint(p, out, false).1; // offsetDelta
        let nullable = |p: &mut usize, out: &mut Vec<Length>| {
            let (len, w) = varint(*p, out, true);
            *p += w + len.max(0) as usize;
        };
        nullable(&mut p, out); // key
        nullable(&mut p, out); // value
        let (headers, w) = varint(p, out, true);
        p += w;
        for _ in 0..headers {
            nullable(&mut p, out);
            nullable(&mut p, out);
        }
        assert_eq!(p, end, "record lengths walked wrong");
    }
}

// ---------------------------------------------------------------- damage

/// A length set to a value its decoder must refuse or read past safely.
fn extreme(rng: &mut StdRng, current: i64) -> i64 {
    *[
        -2,
        -1,
        0,
        1,
        current + 1,
        current - 1,
        i64::from(i16::MAX),
        i64::from(i16::MIN),
        i64::from(i32::MAX),
        i64::from(i32::MIN),
        i64::from(u32::MAX),
        i64::MAX,
        i64::MIN,
    ]
    .choose(rng)
    .unwrap()
}

/// Lengths of fixed width set in place, bytes flipped or replaced.
fn damage_in_place(rng: &mut StdRng, bytes: &mut [u8], lengths: &[Length]) {
    for _ in 0..rng.gen_range(1..4) {
        if bytes.is_empty() {
            return;
        }
        match rng.gen_range(0..3) {
            0 => {
                let i = rng.gen_range(0..bytes.len());
                bytes[i] ^= 1 << rng.gen_range(0..8);
            }
            1 => {
                let i = rng.gen_range(0..bytes.len());
                bytes[i] = rng.r#gen();
            }
            _ => match lengths.choose(rng) {
                Some(&Length::I16(at)) if at + 2 <= bytes.len() => {
                    let current = i16::from_be_bytes([bytes[at], bytes[at + 1]]);
                    let v = extreme(rng, i64::from(current)) as i16;
                    bytes[at..at + 2].copy_from_slice(&v.to_be_bytes());
                }
                Some(&Length::I32(at)) if at + 4 <= bytes.len() => {
                    let current = i32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
                    let v = extreme(rng, i64::from(current)) as i32;
                    bytes[at..at + 4].copy_from_slice(&v.to_be_bytes());
                }
                _ => {}
            },
        }
    }
}

/// One change of size: a varint length replaced (by an extreme or by an
/// unterminated run), the bytes cut, extended, or a run inserted or removed.
fn damage_size(rng: &mut StdRng, bytes: &mut Vec<u8>, lengths: &[Length]) {
    let len = bytes.len();
    match rng.gen_range(0..5) {
        0 => {
            let varints: Vec<_> = lengths
                .iter()
                .filter_map(|l| match *l {
                    Length::Unsigned(at, w) => Some((at, w, false)),
                    Length::ZigZag(at, w) => Some((at, w, true)),
                    _ => None,
                })
                .filter(|(at, w, _)| at + w <= len)
                .collect();
            let Some(&(at, width, zigzag)) = varints.choose(rng) else {
                return;
            };
            let mut new = vec![];
            if rng.gen_bool(0.1) {
                new = vec![0xff; rng.gen_range(1..12)];
            } else if zigzag {
                Varlong(extreme(rng, 0)).write(&mut new).unwrap();
            } else {
                UnsignedVarint(extreme(rng, 1) as u64)
                    .write(&mut new)
                    .unwrap();
            }
            bytes.splice(at..at + width, new);
        }
        1 => bytes.truncate(rng.gen_range(0..=len)),
        2 => {
            let mut more = vec![0; rng.gen_range(1..32)];
            rng.fill(&mut more[..]);
            bytes.extend(more);
        }
        3 => {
            let at = rng.gen_range(0..=len);
            let mut more = vec![0; rng.gen_range(1..8)];
            rng.fill(&mut more[..]);
            bytes.splice(at..at, more);
        }
        _ if len > 0 => {
            let at = rng.gen_range(0..len);
            let n = rng.gen_range(1..=(len - at).min(8));
            bytes.drain(at..at + n);
        }
        _ => {}
    }
}

/// The CRC of the whole batch at `at` computed again, so that damage inside
/// it reaches the batch's parser.
fn fix_crc(bytes: &mut [u8], at: usize) {
    let Some(len) = bytes.get(at + 8..at + 12) else {
        return;
    };
    let Ok(len) = usize::try_from(i32::from_be_bytes(len.try_into().unwrap())) else {
        return;
    };
    if let Some(body) = bytes.get(at + 21..at + 12 + len) {
        let crc = crc32c::crc32c(body);
        bytes[at + 17..at + 21].copy_from_slice(&crc.to_be_bytes());
    }
}

/// `valid` damaged: in place (then its batches' CRCs put right, mostly),
/// then mostly in size too.
fn damaged(rng: &mut StdRng, valid: &Encoding) -> Vec<u8> {
    let mut bytes = valid.bytes.clone();
    if rng.gen_bool(0.8) {
        damage_in_place(rng, &mut bytes, &valid.lengths);
    }
    if rng.gen_bool(0.8) {
        for &at in &valid.batches {
            fix_crc(&mut bytes, at);
        }
    }
    if rng.gen_bool(0.6) {
        damage_size(rng, &mut bytes, &valid.lengths);
    }
    bytes
}

fn random_bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
    let mut b = vec![0; rng.gen_range(0..max)];
    rng.fill(&mut b[..]);
    b
}

// ---------------------------------------------------------------- responses

/// The response to `Req` at `version` as the messenger reads it: the header
/// (tagged fields when the version has them), the body, nothing after it.
/// Returns how many bytes were read.
fn read_response<Req>(bytes: &[u8], version: ApiVersion) -> Result<u64, String>
where
    Req: RequestBody,
    Req::ResponseBody: ReadVersionedType<Cursor<Vec<u8>>>,
{
    let mut cursor = Cursor::new(bytes.to_vec());
    ResponseHeader::read_versioned(&mut cursor, ApiVersion(Int16(0))).map_err(|e| e.to_string())?;
    if version >= Req::FIRST_TAGGED_FIELD_IN_RESPONSE_VERSION {
        TaggedFields::read(&mut cursor).map_err(|e| e.to_string())?;
    }
    Req::ResponseBody::read_versioned(&mut cursor, version).map_err(|e| e.to_string())?;
    Ok(cursor.position())
}

/// Every version of `Req` weir may negotiate: a valid answer reads back
/// whole; damaged ones and random bytes read as `Ok` or `Err`.
fn responses<Req>(rng: &mut StdRng, body: fn(i16) -> Vec<F>)
where
    Req: RequestBody,
    Req::ResponseBody: ReadVersionedType<Cursor<Vec<u8>>>,
{
    let range = Req::API_VERSION_RANGE;
    for v in range.min().0.0..=range.max().0.0 {
        let version = ApiVersion(Int16(v));
        let mut fields = vec![F::I32]; // correlation id
        if version >= Req::FIRST_TAGGED_FIELD_IN_RESPONSE_VERSION {
            fields.push(F::Tags);
        }
        fields.extend(body(v));
        let valid = Encoding::of(rng, &fields);
        let what = format!("{:?} v{v}", Req::API_KEY);
        let read = measured(&what, &valid.bytes, || {
            read_response::<Req>(&valid.bytes, version)
        });
        assert_eq!(
            read,
            Ok(valid.bytes.len() as u64),
            "{what}: a valid answer must read back whole: {:02x?}",
            valid.bytes
        );

        for _ in 0..MUTANTS {
            let bytes = damaged(rng, &valid);
            let _ = measured(&what, &bytes, || read_response::<Req>(&bytes, version));
        }
        let bytes = random_bytes(rng, 64);
        let _ = measured(&what, &bytes, || read_response::<Req>(&bytes, version));
    }
}

fn when(cond: bool, fields: Vec<F>) -> Vec<F> {
    if cond { fields } else { vec![] }
}

fn produce_response(v: i16) -> Vec<F> {
    let partition = [
        vec![F::I32, F::I16, F::I64],
        when(v >= 2, vec![F::I64]),
        when(v >= 5, vec![F::I64]),
    ]
    .concat();
    [
        vec![F::Array(vec![F::Str, F::Array(partition)])],
        when(v >= 1, vec![F::I32]),
    ]
    .concat()
}

fn fetch_response(v: i16) -> Vec<F> {
    let partition = [
        vec![F::I32, F::I16, F::I64],
        when(v >= 4, vec![F::I64, F::Array(vec![F::I64, F::I64])]),
        vec![F::Records],
    ]
    .concat();
    [
        when(v >= 1, vec![F::I32]),
        vec![F::Array(vec![F::Str, F::Array(partition)])],
    ]
    .concat()
}

fn list_offsets_response(v: i16) -> Vec<F> {
    let partition = [
        vec![F::I32, F::I16],
        when(v < 1, vec![F::Array(vec![F::I64])]),
        when(v >= 1, vec![F::I64, F::I64]),
    ]
    .concat();
    [
        when(v >= 2, vec![F::I32]),
        vec![F::Array(vec![F::Str, F::Array(partition)])],
    ]
    .concat()
}

fn metadata_response(v: i16) -> Vec<F> {
    let broker = [
        vec![F::I32, F::Str, F::I32],
        when(v >= 1, vec![F::NullableStr]),
    ]
    .concat();
    let partition = vec![
        F::I16,
        F::I32,
        F::I32,
        F::Array(vec![F::I32]),
        F::Array(vec![F::I32]),
    ];
    let topic = [
        vec![F::I16, F::Str],
        when(v >= 1, vec![F::Bool]),
        vec![F::Array(partition)],
    ]
    .concat();
    [
        when(v >= 3, vec![F::I32]),
        vec![F::Array(broker)],
        when(v >= 2, vec![F::NullableStr]),
        when(v >= 1, vec![F::I32]),
        vec![F::Array(topic)],
    ]
    .concat()
}

fn api_versions_response(v: i16) -> Vec<F> {
    let key = vec![F::I16, F::I16, F::I16];
    [
        vec![F::I16],
        if v >= 3 {
            vec![F::CompactArray([key, vec![F::Tags]].concat())]
        } else {
            vec![F::Array(key)]
        },
        when(v >= 1, vec![F::I32]),
        when(v >= 3, vec![F::Tags]),
    ]
    .concat()
}

fn create_topics_response(v: i16) -> Vec<F> {
    let flexible = v >= 5;
    let config = vec![
        F::CompactStr,
        F::CompactNullableStr,
        F::Bool,
        F::I8,
        F::Bool,
        F::Tags,
    ];
    let topic = [
        vec![if flexible { F::CompactStr } else { F::Str }, F::I16],
        when(
            v >= 1,
            vec![if flexible {
                F::CompactNullableStr
            } else {
                F::NullableStr
            }],
        ),
        when(
            flexible,
            vec![F::I32, F::I16, F::CompactArray(config), F::Tags],
        ),
    ]
    .concat();
    [
        when(v >= 2, vec![F::I32]),
        vec![if flexible {
            F::CompactArray(topic)
        } else {
            F::Array(topic)
        }],
        when(flexible, vec![F::Tags]),
    ]
    .concat()
}

fn delete_topics_response(v: i16) -> Vec<F> {
    let flexible = v >= 4;
    let topic = [
        vec![if flexible { F::CompactStr } else { F::Str }, F::I16],
        when(v >= 5, vec![F::CompactNullableStr]),
        when(flexible, vec![F::Tags]),
    ]
    .concat();
    [
        when(v >= 1, vec![F::I32]),
        vec![if flexible {
            F::CompactArray(topic)
        } else {
            F::Array(topic)
        }],
        when(flexible, vec![F::Tags]),
    ]
    .concat()
}

fn sasl_handshake_response(_v: i16) -> Vec<F> {
    vec![F::I16, F::Array(vec![F::Str])]
}

fn sasl_authenticate_response(v: i16) -> Vec<F> {
    match v {
        0 => vec![F::I16, F::NullableStr, F::Bytes],
        1 => vec![F::I16, F::NullableStr, F::Bytes, F::I64],
        _ => vec![
            F::I16,
            F::CompactNullableStr,
            F::CompactBytes,
            F::I64,
            F::Tags,
        ],
    }
}

// ---------------------------------------------------------------- records

/// `body` (a batch's CRC-checked part) in a batch with a right CRC, its
/// length field right or, at times, an extreme.
fn framed_batch(rng: &mut StdRng, body: &[u8]) -> Vec<u8> {
    let mut len = body.len() as i64 + 9;
    if rng.gen_bool(0.1) {
        len = extreme(rng, len);
    }
    let mut bytes = vec![];
    bytes.extend(rng.gen_range(0i64..1 << 40).to_be_bytes());
    bytes.extend((len as i32).to_be_bytes());
    bytes.extend(0i32.to_be_bytes()); // partitionLeaderEpoch
    bytes.push(if rng.gen_bool(0.95) { 2 } else { rng.r#gen() }); // magic
    bytes.extend(crc32c::crc32c(body).to_be_bytes());
    bytes.extend(body);
    bytes
}

/// `bytes` read as one batch, as the records of a fetch (parsed in place
/// from the response in memory, as the messenger has it, and through a
/// reader), and its CRC-checked part as a batch body.
fn read_batch_every_way(what: &str, batch: &[u8]) {
    let _ = measured(what, batch, || RecordBatch::parse(batch));
    let mut records = vec![];
    NullableBytes(Some(batch.to_vec()))
        .write(&mut records)
        .unwrap();
    let _ = measured(what, &records, || {
        Records::read(&mut Cursor::new(records.clone()))
    });
    let _ = measured(what, &records, || {
        Records::read(&mut BufReader::new(Cursor::new(records.clone())))
    });
    if let Some(body) = batch.get(21..) {
        let _ = measured(what, body, || RecordBatchBody::parse(body));
    }
}

/// The first bytes of each compression's own framing, after which random
/// bytes reach deeper into its decoder than random bytes alone.
const MAGICS: [(RecordBatchCompression, &[u8]); 5] = [
    (RecordBatchCompression::Gzip, &[0x1f, 0x8b, 0x08, 0x00]),
    (RecordBatchCompression::Lz4, &[0x04, 0x22, 0x4d, 0x18]),
    (RecordBatchCompression::Zstd, &[0x28, 0xb5, 0x2f, 0xfd]),
    (
        RecordBatchCompression::Snappy,
        &[
            0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1,
        ],
    ),
    (RecordBatchCompression::Snappy, &[]),
];

fn attributes(compression: RecordBatchCompression) -> i16 {
    COMPRESSIONS.iter().position(|c| *c == compression).unwrap() as i16
}

fn record_batches(rng: &mut StdRng) {
    let (batch, compression) = batch(rng);
    let mut valid = vec![];
    batch.write(&mut valid).unwrap();
    let what = format!("record batch ({compression:?})");
    let parsed = measured(&what, &valid, || RecordBatch::parse(&valid));
    assert_eq!(
        parsed.ok(),
        Some((batch, valid.len())),
        "{what}: a valid batch must read back: {valid:02x?}"
    );

    // The batch damaged as it came, compressed or not.
    let whole = Encoding {
        bytes: valid.clone(),
        lengths: vec![Length::I32(8), Length::I32(57)],
        batches: vec![0],
    };
    for _ in 0..MUTANTS {
        read_batch_every_way(&what, &damaged(rng, &whole));
    }

    // Its records damaged before compression, so that the damage reaches
    // the record parser whatever the compression.
    let (mut plain, _) = self::batch(rng);
    plain.compression = RecordBatchCompression::NoCompression;
    let mut bytes = vec![];
    plain.write(&mut bytes).unwrap();
    let mut body = Encoding {
        bytes: bytes[21..].to_vec(),
        lengths: vec![Length::I32(BODY_RECORDS - 4)],
        batches: vec![],
    };
    record_lengths(&body.bytes[BODY_RECORDS..], BODY_RECORDS, &mut body.lengths);
    for _ in 0..MUTANTS {
        let mut damaged = damaged(rng, &body);
        let compression = *COMPRESSIONS.choose(rng).unwrap();
        if compression != RecordBatchCompression::NoCompression && damaged.len() >= BODY_RECORDS {
            let records = damaged.split_off(BODY_RECORDS);
            let flags = i16::from_be_bytes([damaged[0], damaged[1]]) & !0x7;
            damaged[..2].copy_from_slice(&(flags | attributes(compression)).to_be_bytes());
            compress(compression, &records, &mut damaged).unwrap();
        }
        read_batch_every_way(
            &format!("damaged records ({compression:?})"),
            &framed_batch(rng, &damaged),
        );
    }

    // Random bytes where a compression's framing is expected.
    let &(compression, magic) = MAGICS.choose(rng).unwrap();
    let mut body = bytes[21..21 + BODY_RECORDS].to_vec();
    body[..2].copy_from_slice(&attributes(compression).to_be_bytes());
    body.extend(magic);
    body.extend(random_bytes(rng, 64));
    read_batch_every_way(
        &format!("random {compression:?} data"),
        &framed_batch(rng, &body),
    );

    // And random bytes alone.
    read_batch_every_way("random bytes", &random_bytes(rng, 96));
}

// ---------------------------------------------------------------- primitives, frames

fn primitives(bytes: &[u8]) {
    macro_rules! read {
        ($($t:ty),* $(,)?) => {$(
            let _ = measured(stringify!($t), bytes, || {
                <$t>::read(&mut Cursor::new(bytes.to_vec()))
            });
        )*};
    }
    read!(
        Boolean,
        Int8,
        Int16,
        Int32,
        Int64,
        Varint,
        Varlong,
        UnsignedVarint,
        String_,
        NullableString,
        CompactString,
        CompactNullableString,
        Bytes,
        NullableBytes,
        CompactBytes,
        TaggedFields,
        Array<Int32>,
        Array<String_>,
        CompactArray<Int32>,
        CompactArray<CompactString>,
        Records,
    );
}

/// Prefixes that put a length at its extremes, for `primitives`.
const PREFIXES: [&[u8]; 8] = [
    &[],
    &[0x00, 0x00, 0x00, 0x00],
    &[0xff, 0xff, 0xff, 0xff],
    &[0xff, 0xfe, 0xff, 0xff],
    &[0x7f, 0xff, 0xff, 0xff],
    &[0x80, 0x00, 0x00, 0x00],
    &[
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ],
    &[0xfe, 0xff, 0xff, 0xff, 0x0f],
];

fn frames(rng: &mut StdRng) {
    let payload = random_bytes(rng, 64);
    let mut valid = vec![];
    futures::executor::block_on(valid.write_message(&payload)).unwrap();
    let read = measured("frame", &valid, || {
        futures::executor::block_on(Cursor::new(valid.clone()).read_message(MAX_FRAME))
    });
    assert_eq!(read.ok(), Some(payload), "a valid frame must read back");

    let whole = Encoding {
        bytes: valid,
        lengths: vec![Length::I32(0)],
        batches: vec![],
    };
    for _ in 0..MUTANTS {
        let bytes = damaged(rng, &whole);
        let _ = measured("frame", &bytes, || {
            futures::executor::block_on(Cursor::new(bytes.clone()).read_message(MAX_FRAME))
        });
    }
}

proptest! {
    // About 3 s for the module in a debug build, most of it `VecBuilder`
    // zero-filling its 10 MiB block for a huge byte length; each case
    // covers every version with MUTANTS damaged encodings.
    #![proptest_config(ProptestConfig {
        cases: 8,
        fork: false,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn produce_responses(seed: u64) {
        responses::<ProduceRequest>(&mut StdRng::seed_from_u64(seed), produce_response);
    }

    #[test]
    fn fetch_responses(seed: u64) {
        responses::<FetchRequest>(&mut StdRng::seed_from_u64(seed), fetch_response);
    }

    #[test]
    fn list_offsets_responses(seed: u64) {
        responses::<ListOffsetsRequest>(&mut StdRng::seed_from_u64(seed), list_offsets_response);
    }

    #[test]
    fn metadata_responses(seed: u64) {
        responses::<MetadataRequest>(&mut StdRng::seed_from_u64(seed), metadata_response);
    }

    #[test]
    fn api_versions_responses(seed: u64) {
        responses::<ApiVersionsRequest>(&mut StdRng::seed_from_u64(seed), api_versions_response);
    }

    #[test]
    fn create_topics_responses(seed: u64) {
        responses::<CreateTopicsRequest>(&mut StdRng::seed_from_u64(seed), create_topics_response);
    }

    #[test]
    fn delete_topics_responses(seed: u64) {
        responses::<DeleteTopicsRequest>(&mut StdRng::seed_from_u64(seed), delete_topics_response);
    }

    #[test]
    fn sasl_responses(seed: u64) {
        let rng = &mut StdRng::seed_from_u64(seed);
        responses::<SaslHandshakeRequest>(rng, sasl_handshake_response);
        responses::<SaslAuthenticateRequest>(rng, sasl_authenticate_response);
    }

    #[test]
    fn record_batches_damaged(seed: u64) {
        record_batches(&mut StdRng::seed_from_u64(seed));
    }

    #[test]
    fn primitives_random(
        prefix in prop::sample::select(PREFIXES.to_vec()),
        tail in prop::collection::vec(any::<u8>(), 0..48),
    ) {
        primitives(&[prefix, &tail[..]].concat());
    }

    #[test]
    fn frames_damaged(seed: u64) {
        frames(&mut StdRng::seed_from_u64(seed));
    }
}
