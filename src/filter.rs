//! Content filters (being written).
