//! How `weir pipe` makes an output record from an input record: the key
//! and value read from it, or the value from a template, headers and
//! timestamp carried over. Shared by the group pipe and the share-group
//! pipe ([`crate::share::pipe()`]).

use crate::aggregate::{Extractor, KeyReader};
use crate::consume::output::RecordWriter;
use crate::produce::producer::ProduceRecord;
use crate::record::ConsumedRecord;

use super::{Transform, ValueFrom};

/// A [`Transform`] ready to apply, its readers and template buffer kept.
#[derive(Debug)]
pub(crate) struct Reshaper {
    key_reader: Option<KeyReader>,
    value_reader: Option<KeyReader>,
    /// A template's output, reused.
    template: Vec<u8>,
}

impl Reshaper {
    pub(crate) fn new(transform: &Transform) -> Self {
        Self {
            key_reader: transform.key.clone().map(KeyReader::new),
            value_reader: match &transform.value {
                Some(ValueFrom::Extract(e)) => Some(KeyReader::new(e.clone())),
                _ => None,
            },
            template: Vec::new(),
        }
    }

    /// The output record for `record`; `None` when its key or value
    /// cannot be read from it. `delivery_count` is a share group's, for
    /// `{delivery_count}` in a template.
    pub(crate) fn apply(
        &mut self,
        transform: &Transform,
        record: &ConsumedRecord,
        delivery_count: Option<i16>,
    ) -> Option<ProduceRecord> {
        let key = match &mut self.key_reader {
            // The input key as it is, a null key included (the default's
            // behaviour, spelled out).
            _ if matches!(transform.key, Some(Extractor::Key)) => record.key.clone(),
            Some(reader) => Some(reader.read(record)?.into_owned().into_bytes()),
            None => record.key.clone(),
        };
        let value = match (&mut self.value_reader, &transform.value) {
            (Some(reader), _) => Some(reader.read(record)?.into_owned().into_bytes()),
            (None, Some(ValueFrom::Template(format))) => {
                let mut writer =
                    RecordWriter::new(std::mem::take(&mut self.template), format.clone());
                writer.set_delivery_count(delivery_count);
                writer.write(record).ok()?;
                let mut bytes = writer.into_inner();
                if bytes.last() == Some(&b'\n') {
                    bytes.pop();
                }
                let value = bytes.clone();
                bytes.clear();
                self.template = bytes;
                Some(value)
            }
            (None, _) => record.value.clone(),
        };
        Some(ProduceRecord {
            key,
            value,
            headers: record.headers.clone(),
            timestamp_ms: Some(record.timestamp_ms),
            partition: transform.keep_partition.then_some(record.partition),
        })
    }
}
