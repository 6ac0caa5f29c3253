//! The actual payload message which is also the on-disk format for Kafka.
//!
//! The format evolved twice in [KIP-32] and [KIP-98]. We only support the latest generation (message version 2).
//!
//!
//! # CRC
//! The CRC used to check payload data is `CRC-32C` / iSCSI as documented by the following sources:
//!
//! - <https://kafka.apache.org/documentation/#recordbatch>
//! - <https://docs.oracle.com/javase/9/docs/api/java/util/zip/CRC32C.html>
//! - <https://reveng.sourceforge.io/crc-catalogue/all.htm>
//!
//!
//! # References
//! - [KIP-32]
//! - [KIP-98]
//! - <https://kafka.apache.org/documentation/#messageformat>
//!
//!
//! [KIP-32]: https://cwiki.apache.org/confluence/display/KAFKA/KIP-32+-+Add+timestamps+to+Kafka+message
//! [KIP-98]: https://cwiki.apache.org/confluence/display/KAFKA/KIP-98+-+Exactly+Once+Delivery+and+Transactional+Messaging
use std::io::{Cursor, Read, Write};

#[cfg(test)]
use proptest::prelude::*;

use super::{
    primitives::{Int8, Int16, Int32, Int64, Varint, Varlong},
    traits::{ReadError, ReadType, WriteError, WriteType},
    vec_builder::VecBuilder,
};

/// Record Header
///
/// # References
/// - <https://kafka.apache.org/documentation/#recordheader>
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct RecordHeader {
    pub key: String,
    /// weir: `None` is a null value (length -1), which Kafka allows and the
    /// Java client sends; upstream had no null and failed the fetch.
    pub value: Option<Vec<u8>>,
}

impl<R> ReadType<R> for RecordHeader
where
    R: Read,
{
    fn read(reader: &mut R) -> Result<Self, ReadError> {
        // key
        let len = Varint::read(reader)?;
        let len = usize::try_from(len.0).map_err(|e| ReadError::Malformed(Box::new(e)))?;
        let mut buf = VecBuilder::new(len);
        buf = buf.read_exact(reader)?;
        let key = String::from_utf8(buf.into()).map_err(|e| ReadError::Malformed(Box::new(e)))?;

        // value; weir: length -1 is a null value
        let len = Varint::read(reader)?.0;
        let value = if len == -1 {
            None
        } else {
            let len = usize::try_from(len).map_err(|e| ReadError::Malformed(Box::new(e)))?;
            let mut value = VecBuilder::new(len);
            value = value.read_exact(reader)?;
            Some(value.into())
        };

        Ok(Self { key, value })
    }
}

impl<W> WriteType<W> for RecordHeader
where
    W: Write,
{
    fn write(&self, writer: &mut W) -> Result<(), WriteError> {
        // key
        let l = i32::try_from(self.key.len()).map_err(|e| WriteError::Malformed(Box::new(e)))?;
        Varint(l).write(writer)?;
        writer.write_all(self.key.as_bytes())?;

        // value; weir: a null value is written as length -1
        match &self.value {
            Some(value) => {
                let l =
                    i32::try_from(value.len()).map_err(|e| WriteError::Malformed(Box::new(e)))?;
                Varint(l).write(writer)?;
                writer.write_all(value)?;
            }
            None => Varint(-1).write(writer)?,
        }

        Ok(())
    }
}

/// Record
///
/// # References
/// - <https://kafka.apache.org/documentation/#record>
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Record {
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<RecordHeader>,
}

impl<R> ReadType<R> for Record
where
    R: Read,
{
    fn read(reader: &mut R) -> Result<Self, ReadError> {
        // length
        let len = Varint::read(reader)?;
        let len = u64::try_from(len.0).map_err(|e| ReadError::Malformed(Box::new(e)))?;
        let reader = &mut reader.take(len);

        // attributes
        Int8::read(reader)?;

        // timestampDelta
        let timestamp_delta = Varlong::read(reader)?.0;

        // offsetDelta
        let offset_delta = Varint::read(reader)?.0;

        // key
        let len = Varint::read(reader)?.0;
        let key = if len == -1 {
            None
        } else {
            let len = usize::try_from(len).map_err(|e| ReadError::Malformed(Box::new(e)))?;
            let mut key = VecBuilder::new(len);
            key = key.read_exact(reader)?;
            Some(key.into())
        };

        // value
        let len = Varint::read(reader)?.0;
        let value = if len == -1 {
            None
        } else {
            let len = usize::try_from(len).map_err(|e| ReadError::Malformed(Box::new(e)))?;
            let mut value = VecBuilder::new(len);
            value = value.read_exact(reader)?;
            Some(value.into())
        };

        // headers
        // Note: This is NOT a normal array but uses a Varint instead.
        let n_headers = Varint::read(reader)?;
        let n_headers =
            usize::try_from(n_headers.0).map_err(|e| ReadError::Malformed(Box::new(e)))?;
        let mut headers = VecBuilder::new(n_headers);
        for _ in 0..n_headers {
            headers.push(RecordHeader::read(reader)?);
        }

        // check if there is any trailing data because this is likely a bug
        if reader.limit() != 0 {
            return Err(ReadError::Malformed(
                format!("Found {} trailing bytes after Record", reader.limit()).into(),
            ));
        }

        Ok(Self {
            timestamp_delta,
            offset_delta,
            key,
            value,
            headers: headers.into(),
        })
    }
}

impl<W> WriteType<W> for Record
where
    W: Write,
{
    fn write(&self, writer: &mut W) -> Result<(), WriteError> {
        // weir: the fields are written by `write_record`, which also
        // writes records borrowed from the producer's (`RecordRef`).
        let n_headers = i32::try_from(self.headers.len())?;
        let mut len = 1 // attributes
            + varint_len(self.timestamp_delta)
            + varint_len(i64::from(self.offset_delta))
            + bytes_len(self.key.as_deref())?
            + bytes_len(self.value.as_deref())?
            + varint_len(i64::from(n_headers));
        for header in &self.headers {
            len += bytes_len(Some(header.key.as_bytes()))? + bytes_len(header.value.as_deref())?;
        }
        write_fields(
            writer,
            len,
            self.timestamp_delta,
            self.offset_delta,
            [self.key.as_deref(), self.value.as_deref()],
        )?;
        // Note: This is NOT a normal array but uses a Varint instead.
        Varint(n_headers).write(writer)?;
        for header in &self.headers {
            header.write(writer)?;
        }
        Ok(())
    }
}

/// weir: the encoded length of a nullable byte field.
fn bytes_len(b: Option<&[u8]>) -> Result<usize, WriteError> {
    Ok(match b {
        Some(b) => varint_len(i64::from(i32::try_from(b.len())?)) + b.len(),
        None => 1,
    })
}

/// weir: a nullable byte field.
fn write_bytes<W: Write>(writer: &mut W, b: Option<&[u8]>) -> Result<(), WriteError> {
    match b {
        Some(b) => {
            Varint(i32::try_from(b.len())?).write(writer)?;
            writer.write_all(b)?;
        }
        None => Varint(-1).write(writer)?,
    }
    Ok(())
}

/// weir: a record's length (computed first, so the fields go straight
/// to `writer`; upstream built every record in its own `Vec` to learn
/// its length), attributes, deltas, key and value.
fn write_fields<W: Write>(
    writer: &mut W,
    len: usize,
    timestamp_delta: i64,
    offset_delta: i32,
    key_value: [Option<&[u8]>; 2],
) -> Result<(), WriteError> {
    Varint(i32::try_from(len)?).write(writer)?;
    // attributes
    Int8(0).write(writer)?;
    Varlong(timestamp_delta).write(writer)?;
    Varint(offset_delta).write(writer)?;
    for field in key_value {
        write_bytes(writer, field)?;
    }
    Ok(())
}

/// weir: a borrowed record, as [`Record`] writes an owned one.
fn write_record<W: Write>(writer: &mut W, record: &RecordRef<'_>) -> Result<(), WriteError> {
    let n_headers = i32::try_from(record.headers.len())?;
    let mut len = 1 // attributes
        + varint_len(record.timestamp_delta)
        + varint_len(i64::from(record.offset_delta))
        + bytes_len(record.key)?
        + bytes_len(record.value)?
        + varint_len(i64::from(n_headers));
    for (key, value) in record.headers {
        len += bytes_len(Some(key.as_bytes()))? + bytes_len(value.as_deref())?;
    }
    write_fields(
        writer,
        len,
        record.timestamp_delta,
        record.offset_delta,
        [record.key, record.value],
    )?;
    Varint(n_headers).write(writer)?;
    for (key, value) in record.headers {
        write_bytes(writer, Some(key.as_bytes()))?;
        write_bytes(writer, value.as_deref())?;
    }
    Ok(())
}

/// Encoded length of a zig-zag varint.
fn varint_len(v: i64) -> usize {
    let zigzag = ((v << 1) ^ (v >> 63)) as u64;
    let bits = 64 - (zigzag | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Control Batch Record
///
/// # References
/// - <https://kafka.apache.org/documentation/#controlbatch>
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ControlBatchRecord {
    Abort,
    Commit,
}

impl<R> ReadType<R> for ControlBatchRecord
where
    R: Read,
{
    fn read(reader: &mut R) -> Result<Self, ReadError> {
        // version
        let version = Int16::read(reader)?.0;
        if version != 0 {
            return Err(ReadError::Malformed(
                format!("Unknown control batch record version: {}", version).into(),
            ));
        }

        // type
        let t = Int16::read(reader)?.0;
        match t {
            0 => Ok(Self::Abort),
            1 => Ok(Self::Commit),
            _ => Err(ReadError::Malformed(
                format!("Unknown control batch record type: {}", t).into(),
            )),
        }
    }
}

impl<W> WriteType<W> for ControlBatchRecord
where
    W: Write,
{
    fn write(&self, writer: &mut W) -> Result<(), WriteError> {
        // version
        Int16(0).write(writer)?;

        // type
        let t = match self {
            Self::Abort => 0,
            Self::Commit => 1,
        };
        Int16(t).write(writer)?;

        Ok(())
    }
}

#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ControlBatchOrRecords {
    ControlBatch(ControlBatchRecord),

    // tell proptest to only generate small vectors, otherwise tests take forever
    #[cfg_attr(
        test,
        proptest(
            strategy = "prop::collection::vec(any::<Record>(), 0..2).prop_map(ControlBatchOrRecords::Records)"
        )
    )]
    Records(Vec<Record>),

    /// weir: records written (and compressed as the batch says) ahead of
    /// the request, by [`EncodedRecords::encode`]: a producer learns the
    /// batch's size on the wire before sending it, and a retry writes the
    /// same bytes again instead of compressing again. Written only.
    #[cfg_attr(test, proptest(skip))]
    Encoded(EncodedRecords),
}

/// weir: the records of a batch as they go on the wire: `count` records,
/// written and compressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedRecords {
    pub count: usize,
    pub bytes: Vec<u8>,
}

/// weir: one record to encode, borrowed from the caller.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(String, Option<Vec<u8>>)],
}

impl EncodedRecords {
    /// Writes `records` and compresses them with `compression`; `plain`
    /// is the uncompressed size, a hint for the buffer.
    pub fn encode<'a>(
        records: impl ExactSizeIterator<Item = RecordRef<'a>>,
        plain: usize,
        compression: RecordBatchCompression,
    ) -> Result<Self, WriteError> {
        let count = records.len();
        let mut buffer = Vec::with_capacity(plain);
        for record in records {
            write_record(&mut buffer, &record)?;
        }
        if compression == RecordBatchCompression::NoCompression {
            return Ok(Self {
                count,
                bytes: buffer,
            });
        }
        // Compressed output is seldom larger than its input.
        let mut bytes = Vec::with_capacity(buffer.len() / 2 + 64);
        compress(compression, &buffer, &mut bytes)?;
        Ok(Self { count, bytes })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum RecordBatchCompression {
    NoCompression,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// Record batch timestamp type.
///
/// # References
/// - <https://kafka.apache.org/documentation/#messageset> (this is the old message format, but the flag is the same)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum RecordBatchTimestampType {
    CreateTime,
    LogAppendTime,
}

/// Record Batch
///
/// # References
/// - <https://kafka.apache.org/documentation/#recordbatch>
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct RecordBatch {
    pub base_offset: i64,
    pub partition_leader_epoch: i32,
    pub last_offset_delta: i32,
    pub first_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records: ControlBatchOrRecords,
    pub compression: RecordBatchCompression,
    pub is_transactional: bool,
    pub timestamp_type: RecordBatchTimestampType,
}

impl<R> ReadType<R> for RecordBatch
where
    R: Read,
{
    fn read(reader: &mut R) -> Result<Self, ReadError> {
        // baseOffset
        let base_offset = Int64::read(reader)?.0;

        // batchLength
        //
        // Contains all fields AFTER the length field (so excluding `baseOffset` and `batchLength`). To determine the
        // size of the CRC-checked part we must substract all sized from this field to and including the CRC field.
        let len = Int32::read(reader)?;
        let len = usize::try_from(len.0).map_err(|e| ReadError::Malformed(Box::new(e)))?;
        let len = len
            .checked_sub(
                4 // partitionLeaderEpoch
            + 1 // magic
            + 4, // crc
            )
            .ok_or_else(|| {
                ReadError::Malformed(format!("Record batch len too small: {}", len).into())
            })?;

        // partitionLeaderEpoch
        let partition_leader_epoch = Int32::read(reader)?.0;

        // magic
        let magic = Int8::read(reader)?.0;

        // crc
        let crc = Int32::read(reader)?.0;

        // data
        let mut data = VecBuilder::new(len);
        data = data.read_exact(reader)?;
        let data: Vec<u8> = data.into();
        Self::from_parts(base_offset, partition_leader_epoch, magic, crc, &data)
    }
}

impl RecordBatch {
    /// weir: the batch at the start of `data` and its length, parsed in
    /// place (no copy of the batch). A batch cut short (a fetch's last,
    /// cut at its size limit) is an `UnexpectedEof` error.
    pub fn parse(data: &[u8]) -> Result<(Self, usize), ReadError> {
        let cut = || {
            ReadError::IO(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "record batch cut short",
            ))
        };
        let header = data.get(..21).ok_or_else(cut)?;
        let mut header = Slice(header);
        let base_offset = header.i64()?;
        let len = usize::try_from(header.i32()?).map_err(|e| ReadError::Malformed(Box::new(e)))?;
        let end = 12 + len;
        let partition_leader_epoch = header.i32()?;
        let magic = i8::from_be_bytes(header.array()?);
        let crc = header.i32()?;
        if len < 4 + 1 + 4 {
            return Err(ReadError::Malformed(
                format!("Record batch len too small: {}", len).into(),
            ));
        }
        let body = data.get(21..end).ok_or_else(cut)?;
        let batch = Self::from_parts(base_offset, partition_leader_epoch, magic, crc, body)?;
        Ok((batch, end))
    }

    /// weir: a batch from its header's fields and the CRC-checked rest.
    fn from_parts(
        base_offset: i64,
        partition_leader_epoch: i32,
        magic: i8,
        crc: i32,
        data: &[u8],
    ) -> Result<Self, ReadError> {
        if magic != 2 {
            return Err(ReadError::Malformed(
                format!("Invalid magic number in record batch: {}", magic).into(),
            ));
        }
        let crc = u32::from_be_bytes(crc.to_be_bytes());
        let actual_crc = crc32c::crc32c(data);
        if crc != actual_crc {
            return Err(ReadError::Malformed(
                // weir: in Kafka's terms (the batch's `crc` field).
                format!(
                    "a record batch's crc is 0x{crc:08x}, its bytes give 0x{actual_crc:08x}"
                )
                .into(),
            ));
        }

        // ==========================================================================================
        // ======================================== CRC data ========================================
        // weir: parsed from the slice (see `RecordBatchBody::parse`), which
        // also rejects trailing bytes.
        let body = RecordBatchBody::parse(data)?;

        // ==========================================================================================
        // ==========================================================================================

        Ok(Self {
            base_offset,
            partition_leader_epoch,
            last_offset_delta: body.last_offset_delta,
            first_timestamp: body.first_timestamp,
            max_timestamp: body.max_timestamp,
            producer_id: body.producer_id,
            producer_epoch: body.producer_epoch,
            base_sequence: body.base_sequence,
            compression: body.compression,
            timestamp_type: body.timestamp_type,
            is_transactional: body.is_transactional,
            records: body.records,
        })
    }
}

impl<W> WriteType<W> for RecordBatch
where
    W: Write,
{
    fn write(&self, writer: &mut W) -> Result<(), WriteError> {
        // ==========================================================================================
        // ======================================== CRC data ========================================
        // collect everything that should be part of the CRC calculation
        let mut data = vec![];
        let body_ref = RecordBatchBodyRef {
            last_offset_delta: self.last_offset_delta,
            first_timestamp: self.first_timestamp,
            max_timestamp: self.max_timestamp,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.base_sequence,
            records: &self.records,
            compression: self.compression,
            is_transactional: self.is_transactional,
            timestamp_type: self.timestamp_type,
        };
        body_ref.write(&mut data)?;

        // ==========================================================================================
        // ==========================================================================================

        // baseOffset
        Int64(self.base_offset).write(writer)?;

        // batchLength
        //
        // Contains all fields AFTER the length field (so excluding `baseOffset` and `batchLength`, but including
        // `partitionLeaderEpoch`, `magic`, and `crc).
        //
        // See
        // https://github.com/kafka-rust/kafka-rust/blob/657202832806cda77d0a1801d618dc6c382b4d79/src/protocol/produce.rs#L224-L226
        let l = i32::try_from(
            data.len()
            + 4 // partitionLeaderEpoch
            + 1 // magic
            + 4, // crc
        )
        .map_err(|e| WriteError::Malformed(Box::new(e)))?;
        Int32(l).write(writer)?;

        // partitionLeaderEpoch
        Int32(self.partition_leader_epoch).write(writer)?;

        // magic
        Int8(2).write(writer)?;

        // crc
        // See
        // https://github.com/kafka-rust/kafka-rust/blob/a551b6231a7adc9b715552b635a69ac2856ec8a1/src/protocol/mod.rs#L161-L163
        // WARNING: the range in the code linked above is correct but the polynomial is wrong!
        let crc = crc32c::crc32c(&data);
        let crc = i32::from_be_bytes(crc.to_be_bytes());
        Int32(crc).write(writer)?;

        // the actual CRC-checked data
        writer.write_all(&data)?;

        Ok(())
    }
}

/// Inner part of a [`RecordBatch`] that is protected by a header containing its length and a CRC checksum.
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct RecordBatchBody {
    pub last_offset_delta: i32,
    pub first_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records: ControlBatchOrRecords,
    pub compression: RecordBatchCompression,
    pub is_transactional: bool,
    pub timestamp_type: RecordBatchTimestampType,
}

impl RecordBatchBody {
    /// Parses a batch body (everything after the CRC) from memory.
    ///
    /// weir: upstream decodes field by field through `std::io::Read`, and a
    /// compressed batch through the decompressor's `Read`, a few bytes per
    /// call. Here the uncompressed records are parsed straight from the
    /// fetched bytes, and a compressed batch is first decompressed whole.
    pub(crate) fn parse(data: &[u8]) -> Result<Self, ReadError> {
        let mut s = Slice(data);

        // attributes
        let attributes = s.i16()?;
        let compression = match attributes & 0x7 {
            0 => RecordBatchCompression::NoCompression,
            1 => RecordBatchCompression::Gzip,
            2 => RecordBatchCompression::Snappy,
            3 => RecordBatchCompression::Lz4,
            4 => RecordBatchCompression::Zstd,
            other => {
                return Err(ReadError::Malformed(
                    format!("Invalid compression type: {}", other).into(),
                ));
            }
        };
        let timestamp_type = if ((attributes >> 3) & 0x1) == 0 {
            RecordBatchTimestampType::CreateTime
        } else {
            RecordBatchTimestampType::LogAppendTime
        };
        let is_transactional = ((attributes >> 4) & 0x1) == 1;
        let is_control = ((attributes >> 5) & 0x1) == 1;

        let last_offset_delta = s.i32()?;
        let first_timestamp = s.i64()?;
        let max_timestamp = s.i64()?;
        let producer_id = s.i64()?;
        let producer_epoch = s.i16()?;
        let base_sequence = s.i32()?;

        // records
        let n_records = match s.i32()? {
            -1 => 0,
            n => usize::try_from(n)?,
        };
        let records = match compression {
            RecordBatchCompression::NoCompression => {
                let records = Self::parse_records(&mut s, is_control, n_records)?;
                if !s.0.is_empty() {
                    return Err(ReadError::Malformed(
                        format!("Found {} trailing bytes after RecordBatch", s.0.len()).into(),
                    ));
                }
                records
            }
            compressed => {
                let plain = decompress(compressed, s.0)?;
                let mut s = Slice(&plain);
                let records = Self::parse_records(&mut s, is_control, n_records)?;
                if !s.0.is_empty() {
                    return Err(ReadError::Malformed(
                        format!("Data left in {:?} block", compressed).into(),
                    ));
                }
                records
            }
        };

        Ok(Self {
            last_offset_delta,
            first_timestamp,
            max_timestamp,
            producer_id,
            producer_epoch,
            base_sequence,
            compression,
            timestamp_type,
            is_transactional,
            records,
        })
    }

    fn parse_records(
        s: &mut Slice<'_>,
        is_control: bool,
        n_records: usize,
    ) -> Result<ControlBatchOrRecords, ReadError> {
        if is_control {
            if n_records != 1 {
                return Err(ReadError::Malformed(
                    format!("Expected 1 control record but got {}", n_records).into(),
                ));
            }
            // weir: a control batch holds one ordinary record whose key is
            // the control type (version, type); upstream read those four
            // bytes where the record's length is.
            let record = s.record()?;
            let key = record.key.unwrap_or_default();
            let record = ControlBatchRecord::read(&mut key.as_slice())?;
            return Ok(ControlBatchOrRecords::ControlBatch(record));
        }
        // Every record takes at least 7 bytes, so a corrupt count cannot
        // make this allocate more than the data could hold.
        let mut records = Vec::with_capacity(n_records.min(s.0.len() / 7));
        for _ in 0..n_records {
            records.push(s.record()?);
        }
        Ok(ControlBatchOrRecords::Records(records))
    }
}

impl<R> ReadType<R> for RecordBatchBody
where
    R: Read,
{
    fn read(reader: &mut R) -> Result<Self, ReadError> {
        let mut data = vec![];
        reader.read_to_end(&mut data)?;
        Self::parse(&data)
    }
}

/// Bytes being parsed; each read advances past what it read.
struct Slice<'a>(&'a [u8]);

impl<'a> Slice<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        if n > self.0.len() {
            return Err(ReadError::Malformed(
                format!(
                    "record batch ends early: {} bytes wanted, {} left",
                    n,
                    self.0.len()
                )
                .into(),
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ReadError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn i16(&mut self) -> Result<i16, ReadError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, ReadError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, ReadError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// A zig-zag varint of up to 10 bytes (Kafka's VARLONG).
    fn varlong(&mut self) -> Result<i64, ReadError> {
        let mut raw: u64 = 0;
        for (i, &b) in self.0.iter().take(10).enumerate() {
            raw |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
            }
        }
        Err(ReadError::Malformed(
            "unterminated varint in record batch".into(),
        ))
    }

    fn varint(&mut self) -> Result<i32, ReadError> {
        Ok(i32::try_from(self.varlong()?)?)
    }

    /// Varint-length-prefixed bytes; length -1 is null.
    fn bytes(&mut self) -> Result<Option<&'a [u8]>, ReadError> {
        match self.varint()? {
            -1 => Ok(None),
            len => Ok(Some(self.take(usize::try_from(len)?)?)),
        }
    }

    fn record(&mut self) -> Result<Record, ReadError> {
        let len = usize::try_from(self.varint()?)?;
        let mut r = Slice(self.take(len)?);

        // attributes (unused)
        r.take(1)?;
        let timestamp_delta = r.varlong()?;
        let offset_delta = r.varint()?;
        let key = r.bytes()?.map(<[u8]>::to_vec);
        let value = r.bytes()?.map(<[u8]>::to_vec);

        // Note: the header count is a varint, not a normal array length.
        let n_headers = usize::try_from(r.varint()?)?;
        let mut headers = Vec::with_capacity(n_headers.min(r.0.len() / 2));
        for _ in 0..n_headers {
            let key = r.bytes()?.unwrap_or_default();
            let key =
                String::from_utf8(key.to_vec()).map_err(|e| ReadError::Malformed(Box::new(e)))?;
            // weir: a null header value (allowed by Kafka, sent by the Java
            // client) is kept as null rather than failing the fetch.
            let value = r.bytes()?.map(<[u8]>::to_vec);
            headers.push(RecordHeader { key, value });
        }

        if !r.0.is_empty() {
            return Err(ReadError::Malformed(
                format!("Found {} trailing bytes after Record", r.0.len()).into(),
            ));
        }
        Ok(Record {
            timestamp_delta,
            offset_delta,
            key,
            value,
            headers,
        })
    }
}

/// Decompresses a whole batch's records.
#[allow(unused_variables, unused_mut)] // without every compression feature
fn decompress(compression: RecordBatchCompression, input: &[u8]) -> Result<Vec<u8>, ReadError> {
    // Room for a typical ratio; `read_to_end` grows it when that is short.
    let mut out = Vec::with_capacity(input.len().saturating_mul(4));
    match compression {
        #[cfg(feature = "compression-gzip")]
        RecordBatchCompression::Gzip => {
            flate2::read::GzDecoder::new(input).read_to_end(&mut out)?;
        }
        #[cfg(feature = "compression-lz4")]
        RecordBatchCompression::Lz4 => {
            let mut decoder = lz4::Decoder::new(input)?;
            decoder.read_to_end(&mut out)?;
            let (_input, res) = decoder.finish();
            res?;
        }
        #[cfg(feature = "compression-snappy")]
        RecordBatchCompression::Snappy => {
            out = decompress_snappy(input)?;
        }
        #[cfg(feature = "compression-zstd")]
        RecordBatchCompression::Zstd => {
            // weir: one decompression context per thread, reset and used
            // again: setting one up costs more than a small batch's
            // decompression, and the Java producer's default batches of
            // 16 KiB are a frame each (10 KiB records from a Java-written
            // topic: 2.1 s of CPU per 100,000 before).
            thread_local! {
                static CONTEXT: std::cell::RefCell<zstd::zstd_safe::DCtx<'static>> =
                    std::cell::RefCell::new(zstd::zstd_safe::DCtx::create());
            }
            CONTEXT.with(|context| -> Result<(), ReadError> {
                let mut context = context.borrow_mut();
                zstd::stream::read::Decoder::with_context(input, &mut context)
                    .read_to_end(&mut out)?;
                Ok(())
            })?;
        }
        #[allow(unreachable_patterns)]
        _ => {
            return Err(ReadError::Malformed(
                format!("Unimplemented compression: {:?}", compression).into(),
            ));
        }
    }
    Ok(out)
}

/// Snappy as librdkafka and the Java client write it (raw, or Java's
/// chunked framing).
#[cfg(feature = "compression-snappy")]
fn decompress_snappy(input: &[u8]) -> Result<Vec<u8>, ReadError> {
    use crate::protocol::vec_builder::DEFAULT_BLOCK_SIZE;

    const JAVA_MAGIC: &[u8] = &[0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];

    // There are "normal" compression libs, and there is Java
    // See https://github.com/edenhill/librdkafka/blob/2b76b65212e5efda213961d5f84e565038036270/src/rdkafka_msgset_reader.c#L307-L318
    if !input.starts_with(JAVA_MAGIC) {
        return carefully_decompress_snappy(input, DEFAULT_BLOCK_SIZE);
    }
    let cursor_content = &input[JAVA_MAGIC.len()..];
    let mut cursor = Cursor::new(cursor_content);

    let mut buf_version = [0u8; 4];
    cursor.read_exact(&mut buf_version)?;
    if buf_version != [0, 0, 0, 1] {
        return Err(ReadError::Malformed(
            format!("Detected Java-specific Snappy compression, but got unknown version: {buf_version:?}").into(),
        ));
    }

    let mut buf_compatible = [0u8; 4];
    cursor.read_exact(&mut buf_compatible)?;
    if buf_compatible != [0, 0, 0, 1] {
        return Err(ReadError::Malformed(
            format!("Detected Java-specific Snappy compression, but got unknown compat flags: {buf_compatible:?}").into(),
        ));
    }

    let mut output = vec![];
    while cursor.position() < cursor.get_ref().len() as u64 {
        let mut buf_chunk_length = [0u8; 4];
        cursor.read_exact(&mut buf_chunk_length)?;
        let chunk_length = u32::from_be_bytes(buf_chunk_length) as usize;
        let bytes_left = cursor_content.len() - (cursor.position() as usize);
        if chunk_length > bytes_left {
            // do NOT try to allocate massive buffer for `chunk_data` but instead fail early
            return Err(ReadError::Malformed(format!("Java-specific Snappy-compressed data has illegal chunk length, got {chunk_length} bytes but only {bytes_left} bytes are left.").into()));
        }

        let mut chunk_data = vec![0u8; chunk_length];
        cursor.read_exact(&mut chunk_data)?;

        let mut buf = carefully_decompress_snappy(&chunk_data, DEFAULT_BLOCK_SIZE)?;
        output.append(&mut buf);
    }
    Ok(output)
}

impl<W> WriteType<W> for RecordBatchBody
where
    W: Write,
{
    fn write(&self, writer: &mut W) -> Result<(), WriteError> {
        let body_ref = RecordBatchBodyRef {
            last_offset_delta: self.last_offset_delta,
            first_timestamp: self.first_timestamp,
            max_timestamp: self.max_timestamp,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.base_sequence,
            records: &self.records,
            compression: self.compression,
            is_transactional: self.is_transactional,
            timestamp_type: self.timestamp_type,
        };
        body_ref.write(writer)
    }
}

/// Same as [`RecordBatchBody`] but contains referenced data.
///
/// This only supports writing.
#[derive(Debug)]
struct RecordBatchBodyRef<'a> {
    pub last_offset_delta: i32,
    pub first_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records: &'a ControlBatchOrRecords,
    pub compression: RecordBatchCompression,
    pub is_transactional: bool,
    pub timestamp_type: RecordBatchTimestampType,
}

impl RecordBatchBodyRef<'_> {
    fn write_records<W>(writer: &mut W, records: &ControlBatchOrRecords) -> Result<(), WriteError>
    where
        W: Write,
    {
        match records {
            ControlBatchOrRecords::ControlBatch(control_batch) => {
                // weir: one ordinary record, the control type as its key
                // and (version 0, coordinator epoch 0) as its value.
                let mut key = vec![];
                control_batch.write(&mut key)?;
                Record {
                    timestamp_delta: 0,
                    offset_delta: 0,
                    key: Some(key),
                    value: Some(vec![0; 6]),
                    headers: vec![],
                }
                .write(writer)
            }
            ControlBatchOrRecords::Records(records) => {
                for record in records {
                    record.write(writer)?;
                }
                Ok(())
            }
            ControlBatchOrRecords::Encoded(encoded) => {
                writer.write_all(&encoded.bytes)?;
                Ok(())
            }
        }
    }
}

impl<W> WriteType<W> for RecordBatchBodyRef<'_>
where
    W: Write,
{
    fn write(&self, writer: &mut W) -> Result<(), WriteError> {
        // attributes
        let mut attributes: i16 = match self.compression {
            RecordBatchCompression::NoCompression => 0,
            RecordBatchCompression::Gzip => 1,
            RecordBatchCompression::Snappy => 2,
            RecordBatchCompression::Lz4 => 3,
            RecordBatchCompression::Zstd => 4,
        };
        match self.timestamp_type {
            RecordBatchTimestampType::CreateTime => (),
            RecordBatchTimestampType::LogAppendTime => {
                attributes |= 1 << 3;
            }
        }
        if self.is_transactional {
            attributes |= 1 << 4;
        }
        if matches!(self.records, ControlBatchOrRecords::ControlBatch(_)) {
            attributes |= 1 << 5;
        }
        Int16(attributes).write(writer)?;

        // lastOffsetDelta
        Int32(self.last_offset_delta).write(writer)?;

        // firstTimestamp
        Int64(self.first_timestamp).write(writer)?;

        // maxTimestamp
        Int64(self.max_timestamp).write(writer)?;

        // producerId
        Int64(self.producer_id).write(writer)?;

        // producerEpoch
        Int16(self.producer_epoch).write(writer)?;

        // baseSequence
        Int32(self.base_sequence).write(writer)?;

        // records
        let n_records = match &self.records {
            ControlBatchOrRecords::ControlBatch(_) => 1,
            ControlBatchOrRecords::Records(records) => records.len(),
            ControlBatchOrRecords::Encoded(encoded) => encoded.count,
        };
        Int32(i32::try_from(n_records)?).write(writer)?;
        if self.compression == RecordBatchCompression::NoCompression
            || matches!(self.records, ControlBatchOrRecords::Encoded(_))
        {
            return Self::write_records(writer, self.records);
        }
        // weir: the records are encoded into one buffer and compressed in
        // one call; upstream fed the compressor a few bytes per call.
        let mut plain = Vec::with_capacity(match self.records {
            ControlBatchOrRecords::Records(records) => records
                .iter()
                .map(|r| {
                    24 + r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len)
                })
                .sum(),
            ControlBatchOrRecords::ControlBatch(_) | ControlBatchOrRecords::Encoded(_) => 32,
        });
        Self::write_records(&mut plain, self.records)?;
        compress(self.compression, &plain, writer)
    }
}

/// weir: `plain` compressed with `compression` to `writer`, in one call
/// (crate-visible for the decoders' property tests, `fuzz_tests`).
pub(crate) fn compress<W: Write>(
    compression: RecordBatchCompression,
    plain: &[u8],
    writer: &mut W,
) -> Result<(), WriteError> {
    match compression {
        RecordBatchCompression::NoCompression => writer.write_all(plain)?,
        #[cfg(feature = "compression-gzip")]
        RecordBatchCompression::Gzip => {
            use flate2::{Compression, write::GzEncoder};

            let mut encoder = GzEncoder::new(writer, Compression::default());
            encoder.write_all(plain)?;
            encoder.finish()?;
        }
        #[cfg(feature = "compression-lz4")]
        RecordBatchCompression::Lz4 => {
            use lz4::{ContentChecksum, EncoderBuilder, liblz4::BlockMode};

            let mut encoder = EncoderBuilder::new()
                .block_mode(
                    // the only one supported by Kafka
                    BlockMode::Independent,
                )
                // weir: no content checksum, as librdkafka writes it; the
                // batch's CRC-32C already covers these bytes.
                .checksum(ContentChecksum::NoChecksum)
                .build(writer)?;
            encoder.write_all(plain)?;
            let (_writer, res) = encoder.finish();
            res?;
        }
        #[cfg(feature = "compression-snappy")]
        RecordBatchCompression::Snappy => {
            use snap::raw::{Encoder, max_compress_len};

            let mut encoder = Encoder::new();
            let mut output = vec![0; max_compress_len(plain.len())];
            let len = encoder
                .compress(plain, &mut output)
                .map_err(|e| WriteError::Malformed(Box::new(e)))?;

            writer.write_all(&output[..len])?;
        }
        #[cfg(feature = "compression-zstd")]
        RecordBatchCompression::Zstd => {
            let mut encoder = zstd::Encoder::new(writer, 0)?;
            encoder.write_all(plain)?;
            encoder.finish()?;
        }
        #[allow(unreachable_patterns)]
        _ => {
            return Err(WriteError::Malformed(
                format!("Unimplemented compression: {:?}", compression).into(),
            ));
        }
    }

    Ok(())
}

/// Try to decompress a snappy message without blindly believing the uncompressed size encoded at the start of the
/// message (and therefore potentially OOMing).
#[cfg(feature = "compression-snappy")]
fn carefully_decompress_snappy(
    input: &[u8],
    start_block_size: usize,
) -> Result<Vec<u8>, ReadError> {
    use crate::protocol::primitives::UnsignedVarint;
    use snap::raw::{Decoder, decompress_len};

    // early exit, otherwise `uncompressed_size_encoded_length` will be 1 even though there was no input
    if input.is_empty() {
        return Err(ReadError::Malformed(Box::new(snap::Error::Empty)));
    }

    // The snappy compression used here is unframed aka "raw". So we first need to figure out the
    // uncompressed length. See
    //
    // - https://github.com/edenhill/librdkafka/blob/2b76b65212e5efda213961d5f84e565038036270/src/rdkafka_msgset_reader.c#L345-L348
    // - https://github.com/edenhill/librdkafka/blob/747f77c98fbddf7dc6508f76398e0fc9ee91450f/src/snappy.c#L779
    let uncompressed_size = decompress_len(input).map_err(|e| ReadError::Malformed(Box::new(e)))?;

    // figure out how long the encoded size was
    let uncompressed_size_encoded_length = {
        let mut buf = Vec::with_capacity(100);
        UnsignedVarint(uncompressed_size as u64)
            .write(&mut buf)
            .expect("this write should never fail");
        buf.len()
    };

    // Decode snappy payload.
    // The uncompressed length is unchecked and can be up to 2^32-1 bytes. To avoid a DDoS vector we try to
    // limit it to a small size and if that fails we double that size;
    let mut max_uncompressed_size = start_block_size;

    // Try to decode the message with growing output buffers.
    loop {
        let try_uncompressed_size = uncompressed_size.min(max_uncompressed_size);

        // We need to lie to the snap decoder about the target length, otherwise it will reject our shortened test
        // straight away. Luckily that's rather easy and we just need fake the length stored right at the beginning of
        // the message.
        let try_input = {
            let mut buf = Cursor::new(Vec::with_capacity(input.len()));
            UnsignedVarint(try_uncompressed_size as u64)
                .write(&mut buf)
                .expect("this write should never fail");
            buf.write_all(&input[uncompressed_size_encoded_length..])
                .expect("this write should never fail");
            buf.into_inner()
        };

        let mut decoder = Decoder::new();
        let mut output = vec![0; try_uncompressed_size];
        let actual_uncompressed_size = match decoder.decompress(&try_input, &mut output) {
            Ok(size) => size,
            Err(e) => {
                let looks_like_dst_too_small = match e {
                    // `CopyWrite` only occurs when the dst buffer is too small.
                    snap::Error::CopyWrite { .. } => true,

                    // `Literal` may occur due to src or dst errors, so need to check
                    snap::Error::Literal {
                        len,
                        dst_len,
                        src_len,
                    } => (dst_len < len) && (src_len >= len),

                    // `HeaderMismatch` may also occur when the output was smaller than we predicted, in which case the
                    // header would actually be broken
                    snap::Error::HeaderMismatch {
                        expected_len,
                        got_len,
                    } => expected_len < got_len,

                    // `BufferTooSmall` cannot happed by construction, because we just allocated the right buffer
                    snap::Error::BufferTooSmall { .. } => {
                        unreachable!("Just allocated a correctly-sized output buffer.")
                    }

                    // `Offset` does NOT occur due undersized dst but due to invalid offset calculations. Instead
                    // `CopyWrite` would be used.
                    snap::Error::Offset { .. } => false,

                    // All other errors are real errors
                    _ => false,
                };
                let used_smaller_dst = max_uncompressed_size < uncompressed_size;

                if looks_like_dst_too_small && used_smaller_dst {
                    // try larger buffer
                    max_uncompressed_size *= 2;
                    continue;
                } else {
                    return Err(ReadError::Malformed(Box::new(e)));
                }
            }
        };
        if actual_uncompressed_size != uncompressed_size {
            return Err(ReadError::Malformed(
                "broken snappy data".to_string().into(),
            ));
        }

        break Ok(output);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use crate::protocol::test_utils::test_roundtrip;

    use super::*;

    use assert_matches::assert_matches;

    test_roundtrip!(RecordHeader, test_record_header_roundtrip);

    test_roundtrip!(Record, test_record_roundtrip);

    test_roundtrip!(ControlBatchRecord, test_control_batch_record_roundtrip);

    #[test]
    fn test_control_batch_record_unknown_version() {
        let mut buf = Cursor::new(Vec::<u8>::new());
        Int16(1).write(&mut buf).unwrap();
        Int16(0).write(&mut buf).unwrap();
        buf.set_position(0);

        let err = ControlBatchRecord::read(&mut buf).unwrap_err();
        assert_matches!(err, ReadError::Malformed(_));
        assert_eq!(
            err.to_string(),
            "Malformed data: Unknown control batch record version: 1",
        );
    }

    #[test]
    fn test_control_batch_record_unknown_type() {
        let mut buf = Cursor::new(Vec::<u8>::new());
        Int16(0).write(&mut buf).unwrap();
        Int16(2).write(&mut buf).unwrap();
        buf.set_position(0);

        let err = ControlBatchRecord::read(&mut buf).unwrap_err();
        assert_matches!(err, ReadError::Malformed(_));
        assert_eq!(
            err.to_string(),
            "Malformed data: Unknown control batch record type: 2",
        );
    }

    test_roundtrip!(RecordBatchBody, test_record_batch_body_roundtrip);

    test_roundtrip!(RecordBatch, test_record_batch_roundtrip);

    /// weir: a transaction marker as the Java client and librdkafka's
    /// brokers write it: one record, key (version 0, type), value (version
    /// 0, coordinator epoch).
    const COMMIT_MARKER_RECORD: &[u8] = &[
        0x20, // record length 16
        0x00, 0x00, 0x00, // attributes, timestamp delta, offset delta
        0x08, 0x00, 0x00, 0x00, 0x01, // key: 4 bytes, version 0, type 1 (commit)
        0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // value: 6 bytes
        0x00, // no headers
    ];

    fn body_header(attributes: i16, n_records: i32) -> Vec<u8> {
        let mut out = vec![];
        Int16(attributes).write(&mut out).unwrap();
        Int32(0).write(&mut out).unwrap(); // last offset delta
        Int64(1_700_000_000_000).write(&mut out).unwrap();
        Int64(1_700_000_000_000).write(&mut out).unwrap();
        Int64(7).write(&mut out).unwrap(); // producer id
        Int16(0).write(&mut out).unwrap();
        Int32(-1).write(&mut out).unwrap();
        Int32(n_records).write(&mut out).unwrap();
        out
    }

    #[test]
    fn test_control_batch_is_read_as_kafka_writes_it() {
        // transactional (bit 4) and control (bit 5)
        let data = [body_header(0x30, 1), COMMIT_MARKER_RECORD.to_vec()].concat();
        let body = RecordBatchBody::parse(&data).unwrap();
        assert_eq!(
            body.records,
            ControlBatchOrRecords::ControlBatch(ControlBatchRecord::Commit)
        );
        assert!(body.is_transactional);

        let mut written = vec![];
        RecordBatchBodyRef::write_records(&mut written, &body.records).unwrap();
        assert_eq!(written, COMMIT_MARKER_RECORD);
    }

    /// weir: headers are a list: a null value stays null (length -1, as
    /// the Java client writes it), a repeated key and the order are kept,
    /// and writing the record back gives the same bytes.
    #[test]
    fn test_null_and_repeated_headers_are_kept_and_written_back() {
        let record = [
            0x20, // record length 16
            0x00, 0x00, 0x00, // attributes, timestamp delta, offset delta
            0x01, 0x01, // null key, null value
            0x06, // three headers
            0x02, b'h', 0x01, // "h": null
            0x02, b'h', 0x02, b'x', // "h": "x"
            0x02, b'e', 0x00, // "e": empty
        ];
        let data = [body_header(0, 1), record[..].to_vec()].concat();
        let body = RecordBatchBody::parse(&data).unwrap();
        let ControlBatchOrRecords::Records(records) = &body.records else {
            panic!("not records");
        };
        let header = |key: &str, value: Option<&[u8]>| RecordHeader {
            key: key.to_owned(),
            value: value.map(<[u8]>::to_vec),
        };
        assert_eq!(
            records[0].headers,
            vec![
                header("h", None),
                header("h", Some(b"x")),
                header("e", Some(b"")),
            ]
        );

        let mut written = vec![];
        RecordBatchBodyRef::write_records(&mut written, &body.records).unwrap();
        assert_eq!(written, record);

        // The `ReadType` path reads the same.
        let read = Record::read(&mut Cursor::new(&record[..])).unwrap();
        assert_eq!(read.headers, records[0].headers);
    }

    #[test]
    fn test_truncated_and_trailing_bytes_are_malformed() {
        let data = [body_header(0x30, 1), COMMIT_MARKER_RECORD.to_vec()].concat();
        for cut in [1, 5, 20] {
            let err = RecordBatchBody::parse(&data[..data.len() - cut]).unwrap_err();
            assert_matches!(err, ReadError::Malformed(_));
        }
        let mut longer = data.clone();
        longer.push(0);
        let err = RecordBatchBody::parse(&longer).unwrap_err();
        assert_matches!(err, ReadError::Malformed(_));
    }

    #[test]
    fn test_varint_lengths() {
        for v in [0, 1, -1, 63, 64, -64, -65, 8191, 8192, i64::MAX, i64::MIN] {
            let mut out = vec![];
            Varlong(v).write(&mut out).unwrap();
            assert_eq!(varint_len(v), out.len(), "{v}");
            assert_eq!(Slice(&out).varlong().unwrap(), v);
        }
    }

    /// weir: a batch whose records were encoded ahead reads back as the
    /// same batch written from its records, with every compression.
    #[test]
    fn encoded_records_read_back_as_the_records() {
        let headers = vec![
            ("h".to_owned(), Some(b"1".to_vec())),
            ("h".to_owned(), None),
        ];
        let records: Vec<Record> = (0..200)
            .map(|i| Record {
                timestamp_delta: i64::from(i) * 3,
                offset_delta: i,
                key: (i % 7 != 0).then(|| format!("key-{}", i % 13).into_bytes()),
                value: (i % 11 != 0).then(|| format!("value {i} ").repeat(20).into_bytes()),
                headers: if i % 2 == 0 {
                    headers
                        .iter()
                        .map(|(key, value)| RecordHeader {
                            key: key.clone(),
                            value: value.clone(),
                        })
                        .collect()
                } else {
                    vec![]
                },
            })
            .collect();
        let batch = |compression, records| RecordBatch {
            base_offset: 0,
            partition_leader_epoch: 0,
            last_offset_delta: 199,
            first_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_000_597,
            producer_id: 7,
            producer_epoch: 1,
            base_sequence: 42,
            records,
            compression,
            is_transactional: false,
            timestamp_type: RecordBatchTimestampType::CreateTime,
        };
        for compression in [
            RecordBatchCompression::NoCompression,
            RecordBatchCompression::Gzip,
            RecordBatchCompression::Lz4,
            RecordBatchCompression::Snappy,
            RecordBatchCompression::Zstd,
        ] {
            let refs: Vec<RecordRef<'_>> = records
                .iter()
                .map(|r| RecordRef {
                    timestamp_delta: r.timestamp_delta,
                    offset_delta: r.offset_delta,
                    key: r.key.as_deref(),
                    value: r.value.as_deref(),
                    headers: if r.headers.is_empty() { &[] } else { &headers },
                })
                .collect();
            let encoded = EncodedRecords::encode(refs.iter().copied(), 0, compression).unwrap();
            assert_eq!(encoded.count, 200);
            let plain_len = EncodedRecords::encode(
                refs.iter().copied(),
                0,
                RecordBatchCompression::NoCompression,
            )
            .unwrap()
            .bytes
            .len();
            if compression != RecordBatchCompression::NoCompression {
                assert!(encoded.bytes.len() < plain_len / 2, "{compression:?}");
            }
            let mut data = vec![];
            batch(compression, ControlBatchOrRecords::Encoded(encoded))
                .write(&mut data)
                .unwrap();
            let read = RecordBatch::read(&mut Cursor::new(data)).unwrap();
            let expected = batch(
                compression,
                ControlBatchOrRecords::Records(
                    records
                        .iter()
                        .map(|r| Record {
                            timestamp_delta: r.timestamp_delta,
                            offset_delta: r.offset_delta,
                            key: r.key.clone(),
                            value: r.value.clone(),
                            headers: r
                                .headers
                                .iter()
                                .map(|h| RecordHeader {
                                    key: h.key.clone(),
                                    value: h.value.clone(),
                                })
                                .collect(),
                        })
                        .collect(),
                ),
            );
            assert_eq!(read, expected, "{compression:?}");
        }
    }

    /// weir: zstd's decompression context is used again batch after
    /// batch, also after a batch that failed to decompress.
    #[cfg(feature = "compression-zstd")]
    #[test]
    fn zstd_batches_decompress_one_after_another_and_after_a_bad_one() {
        let plain = |i: usize| format!("batch {i} ").repeat(1000).into_bytes();
        let frames: Vec<Vec<u8>> = (0..3)
            .map(|i| zstd::bulk::compress(&plain(i), 3).unwrap())
            .collect();
        assert_eq!(decompress(RecordBatchCompression::Zstd, &frames[0]).unwrap(), plain(0));
        let cut = &frames[1][..frames[1].len() / 2];
        assert!(decompress(RecordBatchCompression::Zstd, cut).is_err());
        assert_eq!(decompress(RecordBatchCompression::Zstd, &frames[2]).unwrap(), plain(2));
        assert_eq!(decompress(RecordBatchCompression::Zstd, &frames[1]).unwrap(), plain(1));
    }

    #[test]
    fn test_decode_fixture_nocompression() {
        // This data was obtained by watching rdkafka.
        let data = [
            b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x4b\x00\x00\x00\x00".to_vec(),
            b"\x02\x27\x24\xfe\xcd\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x61".to_vec(),
            b"\xd5\x9b\x77\x00\x00\x00\x00\x61\xd5\x9b\x77\xff\xff\xff\xff\xff".to_vec(),
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x01\x32\x00\x00".to_vec(),
            b"\x00\x00\x16\x68\x65\x6c\x6c\x6f\x20\x6b\x61\x66\x6b\x61\x02\x06".to_vec(),
            b"\x66\x6f\x6f\x06\x62\x61\x72".to_vec(),
        ]
        .concat();

        let actual = RecordBatch::read(&mut Cursor::new(data.clone())).unwrap();
        let expected = RecordBatch {
            base_offset: 0,
            partition_leader_epoch: 0,
            last_offset_delta: 0,
            first_timestamp: 1641388919,
            max_timestamp: 1641388919,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records: ControlBatchOrRecords::Records(vec![Record {
                timestamp_delta: 0,
                offset_delta: 0,
                key: Some(vec![]),
                value: Some(b"hello kafka".to_vec()),
                headers: vec![RecordHeader {
                    key: "foo".to_owned(),
                    value: Some(b"bar".to_vec()),
                }],
            }]),
            compression: RecordBatchCompression::NoCompression,
            is_transactional: false,
            timestamp_type: RecordBatchTimestampType::CreateTime,
        };
        assert_eq!(actual, expected);

        let mut data2 = vec![];
        actual.write(&mut data2).unwrap();
        assert_eq!(data, data2);
    }

    #[cfg(feature = "compression-gzip")]
    #[test]
    fn test_decode_fixture_gzip() {
        // This data was obtained by watching rdkafka.
        let data = [
            b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x64\x00\x00\x00\x00".to_vec(),
            b"\x02\xba\x41\x46\x65\x00\x01\x00\x00\x00\x00\x00\x00\x01\x7e\x90".to_vec(),
            b"\xb3\x34\x67\x00\x00\x01\x7e\x90\xb3\x34\x67\xff\xff\xff\xff\xff".to_vec(),
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x01\x1f\x8b\x08".to_vec(),
            b"\x00\x00\x00\x00\x00\x00\x03\xfb\xc3\xc8\xc0\xc0\x70\x82\xb1\x82".to_vec(),
            b"\x0e\x40\x2c\x23\x35\x27\x27\x5f\x21\x3b\x31\x2d\x3b\x91\x89\x2d".to_vec(),
            b"\x2d\x3f\x9f\x2d\x29\xb1\x08\x00\xe4\xcd\xba\x1f\x80\x00\x00\x00".to_vec(),
        ]
        .concat();

        let actual = RecordBatch::read(&mut Cursor::new(data)).unwrap();
        let expected = RecordBatch {
            base_offset: 0,
            partition_leader_epoch: 0,
            last_offset_delta: 0,
            first_timestamp: 1643105170535,
            max_timestamp: 1643105170535,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records: ControlBatchOrRecords::Records(vec![Record {
                timestamp_delta: 0,
                offset_delta: 0,
                key: Some(vec![b'x'; 100]),
                value: Some(b"hello kafka".to_vec()),
                headers: vec![RecordHeader {
                    key: "foo".to_owned(),
                    value: Some(b"bar".to_vec()),
                }],
            }]),
            compression: RecordBatchCompression::Gzip,
            is_transactional: false,
            timestamp_type: RecordBatchTimestampType::CreateTime,
        };
        assert_eq!(actual, expected);

        let mut data2 = vec![];
        actual.write(&mut data2).unwrap();

        // don't compare if the data is equal because compression encoder might work slightly differently, use another
        // roundtrip instead
        let actual2 = RecordBatch::read(&mut Cursor::new(data2)).unwrap();
        assert_eq!(actual2, expected);
    }

    #[cfg(feature = "compression-lz4")]
    #[test]
    fn test_decode_fixture_lz4() {
        // This data was obtained by watching rdkafka.
        let data = [
            b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x63\x00\x00\x00\x00".to_vec(),
            b"\x02\x1b\xa5\x92\x35\x00\x03\x00\x00\x00\x00\x00\x00\x01\x7e\xb1".to_vec(),
            b"\x1f\xc7\x24\x00\x00\x01\x7e\xb1\x1f\xc7\x24\xff\xff\xff\xff\xff".to_vec(),
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x01\x04\x22\x4d".to_vec(),
            b"\x18\x60\x40\x82\x23\x00\x00\x00\x8f\xfc\x01\x00\x00\x00\xc8\x01".to_vec(),
            b"\x78\x01\x00\x50\xf0\x06\x16\x68\x65\x6c\x6c\x6f\x20\x6b\x61\x66".to_vec(),
            b"\x6b\x61\x02\x06\x66\x6f\x6f\x06\x62\x61\x72\x00\x00\x00\x00".to_vec(),
        ]
        .concat();

        let actual = RecordBatch::read(&mut Cursor::new(data)).unwrap();
        let expected = RecordBatch {
            base_offset: 0,
            partition_leader_epoch: 0,
            last_offset_delta: 0,
            first_timestamp: 1643649156900,
            max_timestamp: 1643649156900,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records: ControlBatchOrRecords::Records(vec![Record {
                timestamp_delta: 0,
                offset_delta: 0,
                key: Some(vec![b'x'; 100]),
                value: Some(b"hello kafka".to_vec()),
                headers: vec![RecordHeader {
                    key: "foo".to_owned(),
                    value: Some(b"bar".to_vec()),
                }],
            }]),
            compression: RecordBatchCompression::Lz4,
            is_transactional: false,
            timestamp_type: RecordBatchTimestampType::CreateTime,
        };
        assert_eq!(actual, expected);

        let mut data2 = vec![];
        actual.write(&mut data2).unwrap();

        // don't compare if the data is equal because compression encoder might work slightly differently, use another
        // roundtrip instead
        let actual2 = RecordBatch::read(&mut Cursor::new(data2)).unwrap();
        assert_eq!(actual2, expected);
    }

    #[cfg(feature = "compression-snappy")]
    mod snappy {
        use super::*;

        #[test]
        fn test_decode_fixture_snappy() {
            // This data was obtained by watching rdkafka.
            let data = [
                b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x58\x00\x00\x00\x00".to_vec(),
                b"\x02\xad\x86\xf4\xf4\x00\x02\x00\x00\x00\x00\x00\x00\x01\x7e\xb6".to_vec(),
                b"\x45\x0e\x52\x00\x00\x01\x7e\xb6\x45\x0e\x52\xff\xff\xff\xff\xff".to_vec(),
                b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x01\x80\x01\x1c".to_vec(),
                b"\xfc\x01\x00\x00\x00\xc8\x01\x78\xfe\x01\x00\x8a\x01\x00\x50\x16".to_vec(),
                b"\x68\x65\x6c\x6c\x6f\x20\x6b\x61\x66\x6b\x61\x02\x06\x66\x6f\x6f".to_vec(),
                b"\x06\x62\x61\x72".to_vec(),
            ]
            .concat();

            let actual = RecordBatch::read(&mut Cursor::new(data)).unwrap();
            let expected = RecordBatch {
                base_offset: 0,
                partition_leader_epoch: 0,
                last_offset_delta: 0,
                first_timestamp: 1643735486034,
                max_timestamp: 1643735486034,
                producer_id: -1,
                producer_epoch: -1,
                base_sequence: -1,
                records: ControlBatchOrRecords::Records(vec![Record {
                    timestamp_delta: 0,
                    offset_delta: 0,
                    key: Some(vec![b'x'; 100]),
                    value: Some(b"hello kafka".to_vec()),
                    headers: vec![RecordHeader {
                        key: "foo".to_owned(),
                        value: Some(b"bar".to_vec()),
                    }],
                }]),
                compression: RecordBatchCompression::Snappy,
                is_transactional: false,
                timestamp_type: RecordBatchTimestampType::CreateTime,
            };
            assert_eq!(actual, expected);

            let mut data2 = vec![];
            actual.write(&mut data2).unwrap();

            // don't compare if the data is equal because compression encoder might work slightly differently, use another
            // roundtrip instead
            let actual2 = RecordBatch::read(&mut Cursor::new(data2)).unwrap();
            assert_eq!(actual2, expected);
        }

        #[test]
        fn test_decode_fixture_snappy_java() {
            // This data was obtained by watching Kafka returning a recording to rskafka that was produced by the official
            // Java client.
            let data = [
                b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x00\x00\x00\x00".to_vec(),
                b"\x02\x79\x1e\x2d\xce\x00\x02\x00\x00\x00\x01\x00\x00\x01\x7f\x07".to_vec(),
                b"\x25\x7a\xb1\x00\x00\x01\x7f\x07\x25\x7a\xb1\xff\xff\xff\xff\xff".to_vec(),
                b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x02\x82\x53\x4e".to_vec(),
                b"\x41\x50\x50\x59\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00".to_vec(),
                b"\x47\xff\x01\x1c\xfc\x01\x00\x00\x00\xc8\x01\x78\xfe\x01\x00\x8a".to_vec(),
                b"\x01\x00\x64\x16\x68\x65\x6c\x6c\x6f\x20\x6b\x61\x66\x6b\x61\x02".to_vec(),
                b"\x06\x66\x6f\x6f\x06\x62\x61\x72\xfa\x01\x00\x00\x02\xfe\x80\x00".to_vec(),
                b"\x96\x80\x00\x4c\x14\x73\x6f\x6d\x65\x20\x76\x61\x6c\x75\x65\x02".to_vec(),
                b"\x06\x66\x6f\x6f\x06\x62\x61\x72".to_vec(),
            ]
            .concat();

            let actual = RecordBatch::read(&mut Cursor::new(data)).unwrap();
            let expected = RecordBatch {
                base_offset: 0,
                partition_leader_epoch: 0,
                last_offset_delta: 1,
                first_timestamp: 1645092371121,
                max_timestamp: 1645092371121,
                producer_id: -1,
                producer_epoch: -1,
                base_sequence: -1,
                records: ControlBatchOrRecords::Records(vec![
                    Record {
                        timestamp_delta: 0,
                        offset_delta: 0,
                        key: Some(vec![b'x'; 100]),
                        value: Some(b"hello kafka".to_vec()),
                        headers: vec![RecordHeader {
                            key: "foo".to_owned(),
                            value: Some(b"bar".to_vec()),
                        }],
                    },
                    Record {
                        timestamp_delta: 0,
                        offset_delta: 1,
                        key: Some(vec![b'x'; 100]),
                        value: Some(b"some value".to_vec()),
                        headers: vec![RecordHeader {
                            key: "foo".to_owned(),
                            value: Some(b"bar".to_vec()),
                        }],
                    },
                ]),
                compression: RecordBatchCompression::Snappy,
                is_transactional: false,
                timestamp_type: RecordBatchTimestampType::CreateTime,
            };
            assert_eq!(actual, expected);

            let mut data2 = vec![];
            actual.write(&mut data2).unwrap();

            // don't compare if the data is equal because compression encoder might work slightly differently, use another
            // roundtrip instead
            let actual2 = RecordBatch::read(&mut Cursor::new(data2)).unwrap();
            assert_eq!(actual2, expected);
        }

        #[test]
        fn test_decode_java_specific_oom() {
            // Found by the fuzzer, this should return an error instead of OOM.
            let data = [
                0x0a, 0x0a, 0x83, 0x00, 0xd4, 0x00, 0x00, 0x22, 0x00, 0x4b, 0x08, 0xd2, 0x22, 0xfb,
                0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x9b, 0x00, 0x9b, 0x0a, 0x40,
                0x00, 0x00, 0x4b, 0x00, 0x00, 0x00, 0x40, 0x30, 0x00, 0x57, 0x00, 0xd3, 0x82, 0x53,
                0x4e, 0x41, 0x50, 0x50, 0x59, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01,
                0x00, 0x00, 0x00, 0x03, 0x01, 0x00, 0x00, 0xfc, 0x00, 0x09, 0x09, 0x09, 0x09, 0x09,
                0x09, 0x50, 0x50, 0x59, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x30, 0x00, 0x57, 0x00, 0x00, 0x80,
                0x00, 0x00, 0x00, 0x00, 0xb0, 0x9b, 0x00,
            ]
            .to_vec();

            let err = RecordBatchBody::read(&mut Cursor::new(data)).unwrap_err();
            assert_matches!(err, ReadError::Malformed(_));
            assert_eq!(
                err.to_string(),
                "Malformed data: Java-specific Snappy-compressed data has illegal chunk length, got 4227860745 bytes but only 38 bytes are left."
            );
        }

        #[test]
        fn test_carefully_decompress_snappy_empty_input() {
            let err = carefully_decompress_snappy(&[], 1).unwrap_err();
            assert_matches!(err, ReadError::Malformed(_));
        }

        #[test]
        fn test_carefully_decompress_snappy_empty_payload() {
            let compressed = compress(&[]);
            let data = carefully_decompress_snappy(&compressed, 1).unwrap();
            assert!(data.is_empty());
        }

        proptest! {
            #![proptest_config(ProptestConfig{cases: 200, ..Default::default()})]
            #[test]
            fn test_carefully_decompress_snappy(input in prop::collection::vec(any::<u8>(), 0..10_000)) {
                let compressed = compress(&input);
                let input2 = carefully_decompress_snappy(&compressed, 1).unwrap();
                assert_eq!(input, input2);
            }
        }

        fn compress(data: &[u8]) -> Vec<u8> {
            use snap::raw::{Encoder, max_compress_len};

            let mut encoder = Encoder::new();
            let mut output = vec![0; max_compress_len(data.len())];
            let l = encoder.compress(data, &mut output).unwrap();

            output[..l].to_vec()
        }
    }

    #[cfg(feature = "compression-zstd")]
    #[test]
    fn test_decode_fixture_zstd() {
        // This data was obtained by watching rdkafka.
        let data = [
            b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x5d\x00\x00\x00\x00".to_vec(),
            b"\x02\xa1\x6e\x4e\x95\x00\x04\x00\x00\x00\x00\x00\x00\x01\x7e\xbf".to_vec(),
            b"\x78\xf3\xad\x00\x00\x01\x7e\xbf\x78\xf3\xad\xff\xff\xff\xff\xff".to_vec(),
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x01\x28\xb5\x2f".to_vec(),
            b"\xfd\x00\x58\x1d\x01\x00\xe8\xfc\x01\x00\x00\x00\xc8\x01\x78\x16".to_vec(),
            b"\x68\x65\x6c\x6c\x6f\x20\x6b\x61\x66\x6b\x61\x02\x06\x66\x6f\x6f".to_vec(),
            b"\x06\x62\x61\x72\x01\x00\x20\x05\x5c".to_vec(),
        ]
        .concat();

        let actual = RecordBatch::read(&mut Cursor::new(data)).unwrap();
        let expected = RecordBatch {
            base_offset: 0,
            partition_leader_epoch: 0,
            last_offset_delta: 0,
            first_timestamp: 1643889882029,
            max_timestamp: 1643889882029,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records: ControlBatchOrRecords::Records(vec![Record {
                timestamp_delta: 0,
                offset_delta: 0,
                key: Some(vec![b'x'; 100]),
                value: Some(b"hello kafka".to_vec()),
                headers: vec![RecordHeader {
                    key: "foo".to_owned(),
                    value: Some(b"bar".to_vec()),
                }],
            }]),
            compression: RecordBatchCompression::Zstd,
            is_transactional: false,
            timestamp_type: RecordBatchTimestampType::CreateTime,
        };
        assert_eq!(actual, expected);

        let mut data2 = vec![];
        actual.write(&mut data2).unwrap();

        // don't compare if the data is equal because compression encoder might work slightly differently, use another
        // roundtrip instead
        let actual2 = RecordBatch::read(&mut Cursor::new(data2)).unwrap();
        assert_eq!(actual2, expected);
    }

    #[test]
    fn test_decode_fixture_null_key() {
        // This data was obtained by watching rdkafka driven by IOx.
        let data = [
            b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\x00\x00\x00\x00".to_vec(),
            b"\x02\x67\x98\xb9\x54\x00\x00\x00\x00\x00\x00\x00\x00\x01\x7e\xbe".to_vec(),
            b"\xdc\x91\xf6\x00\x00\x01\x7e\xbe\xdc\x91\xf6\xff\xff\xff\xff\xff".to_vec(),
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x01\xce\x03\x00".to_vec(),
            b"\x00\x00\x01\xce\x01\x0a\x65\x0a\x2f\x74\x65\x73\x74\x5f\x74\x6f".to_vec(),
            b"\x70\x69\x63\x5f\x33\x37\x33\x39\x38\x66\x38\x64\x2d\x39\x35\x66".to_vec(),
            b"\x38\x2d\x34\x34\x65\x65\x2d\x38\x33\x61\x34\x2d\x34\x64\x30\x63".to_vec(),
            b"\x35\x39\x32\x62\x34\x34\x36\x64\x12\x32\x0a\x03\x75\x70\x63\x12".to_vec(),
            b"\x17\x0a\x04\x75\x73\x65\x72\x10\x03\x1a\x0a\x12\x08\x00\x00\x00".to_vec(),
            b"\x00\x00\x00\xf0\x3f\x22\x01\x00\x12\x10\x0a\x04\x74\x69\x6d\x65".to_vec(),
            b"\x10\x04\x1a\x03\x0a\x01\x64\x22\x01\x00\x18\x01\x04\x18\x63\x6f".to_vec(),
            b"\x6e\x74\x65\x6e\x74\x2d\x74\x79\x70\x65\xa4\x01\x61\x70\x70\x6c".to_vec(),
            b"\x69\x63\x61\x74\x69\x6f\x6e\x2f\x78\x2d\x70\x72\x6f\x74\x6f\x62".to_vec(),
            b"\x75\x66\x3b\x20\x73\x63\x68\x65\x6d\x61\x3d\x22\x69\x6e\x66\x6c".to_vec(),
            b"\x75\x78\x64\x61\x74\x61\x2e\x69\x6f\x78\x2e\x77\x72\x69\x74\x65".to_vec(),
            b"\x5f\x62\x75\x66\x66\x65\x72\x2e\x76\x31\x2e\x57\x72\x69\x74\x65".to_vec(),
            b"\x42\x75\x66\x66\x65\x72\x50\x61\x79\x6c\x6f\x61\x64\x22\x1a\x69".to_vec(),
            b"\x6f\x78\x2d\x6e\x61\x6d\x65\x73\x70\x61\x63\x65\x12\x6e\x61\x6d".to_vec(),
            b"\x65\x73\x70\x61\x63\x65".to_vec(),
        ]
        .concat();

        let actual = RecordBatch::read(&mut Cursor::new(data.clone())).unwrap();
        let expected = RecordBatch {
            base_offset: 0,
            partition_leader_epoch: 0,
            last_offset_delta: 0,
            first_timestamp: 1643879633398,
            max_timestamp: 1643879633398,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records: ControlBatchOrRecords::Records(vec![Record {
                timestamp_delta: 0,
                offset_delta: 0,
                key: None,
                value: Some(vec![
                    10, 101, 10, 47, 116, 101, 115, 116, 95, 116, 111, 112, 105, 99, 95, 51, 55,
                    51, 57, 56, 102, 56, 100, 45, 57, 53, 102, 56, 45, 52, 52, 101, 101, 45, 56,
                    51, 97, 52, 45, 52, 100, 48, 99, 53, 57, 50, 98, 52, 52, 54, 100, 18, 50, 10,
                    3, 117, 112, 99, 18, 23, 10, 4, 117, 115, 101, 114, 16, 3, 26, 10, 18, 8, 0, 0,
                    0, 0, 0, 0, 240, 63, 34, 1, 0, 18, 16, 10, 4, 116, 105, 109, 101, 16, 4, 26, 3,
                    10, 1, 100, 34, 1, 0, 24, 1,
                ]),
                headers: vec![
                    RecordHeader {
                        key: "content-type".to_owned(),
                        value: Some(br#"application/x-protobuf; schema="influxdata.iox.write_buffer.v1.WriteBufferPayload""#.to_vec()),
                    },
                    RecordHeader {
                        key: "iox-namespace".to_owned(),
                        value: Some(b"namespace".to_vec()),
                    },
                ],
            }]),
            compression: RecordBatchCompression::NoCompression,
            is_transactional: false,
            timestamp_type: RecordBatchTimestampType::CreateTime,
        };
        assert_eq!(actual, expected);

        let mut data2 = vec![];
        actual.write(&mut data2).unwrap();
        assert_eq!(data, data2);
    }
}
