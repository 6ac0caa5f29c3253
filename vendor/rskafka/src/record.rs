use chrono::{DateTime, Utc};

/// A record header: its key and its value, `None` for a null value.
///
/// weir: upstream kept headers in a `BTreeMap<String, Vec<u8>>`, which
/// kept only the last value of a repeated key, sorted the keys and had no
/// null value. Kafka's headers are an ordered list of (key, nullable
/// value) pairs, and a record read and written again must keep them so.
pub type Header = (String, Option<Vec<u8>>);

/// High-level record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// weir: a list, in the record's order (see [`Header`]).
    pub headers: Vec<Header>,
    pub timestamp: DateTime<Utc>,
}

impl Record {
    /// Returns the approximate uncompressed size of this [`Record`]
    pub fn approximate_size(&self) -> usize {
        self.key.as_ref().map(|k| k.len()).unwrap_or_default()
            + self.value.as_ref().map(|v| v.len()).unwrap_or_default()
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
                .sum::<usize>()
    }
}

/// Record that has offset information attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordAndOffset {
    pub record: Record,
    pub offset: i64,
    /// weir: the record's batch says the broker set its timestamp
    /// (`LogAppendTime`); otherwise it is the producer's create time.
    pub log_append_time: bool,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn test_approximate_size() {
        let record = Record {
            key: Some(vec![0; 23]),
            value: Some(vec![0; 45]),
            headers: vec![
                ("a".to_string(), Some(vec![0; 5])),
                ("b".to_string(), Some(vec![0; 7])),
                ("c".to_string(), None),
            ],
            timestamp: Utc.timestamp_millis_opt(1337).unwrap(),
        };

        assert_eq!(record.approximate_size(), 23 + 45 + 1 + 5 + 1 + 7 + 1);
    }
}
