//! [`Compression`]: how a producer compresses its batches, in weir's own
//! words, so that a library user never names the Kafka client's types.

use std::fmt;

/// Batch compression (the Java producer's `compression.type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// None: the Java producer's default.
    #[default]
    None,
    /// gzip.
    Gzip,
    /// LZ4 (frames without the content checksum, as librdkafka writes).
    Lz4,
    /// Snappy.
    Snappy,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// Its name as `compression.type` (and `--compression`) spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Lz4 => "lz4",
            Self::Snappy => "snappy",
            Self::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<Compression> for rskafka::client::partition::Compression {
    fn from(c: Compression) -> Self {
        match c {
            Compression::None => Self::NoCompression,
            Compression::Gzip => Self::Gzip,
            Compression::Lz4 => Self::Lz4,
            Compression::Snappy => Self::Snappy,
            Compression::Zstd => Self::Zstd,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Compression;

    #[test]
    fn names_are_kafkas_compression_types() {
        let all = [
            Compression::None,
            Compression::Gzip,
            Compression::Lz4,
            Compression::Snappy,
            Compression::Zstd,
        ];
        let names: Vec<String> = all.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["none", "gzip", "lz4", "snappy", "zstd"]);
        assert_eq!(Compression::default(), Compression::None);
    }
}
