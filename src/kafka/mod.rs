//! Reaching Kafka: connection options and the rskafka client built from
//! them ([`connect`]), how connections are secured ([`security`]), weir's
//! own protocol connection for the requests rskafka cannot send (`wire`,
//! private to the crate), and cluster and topics admin ([`admin`]), the idempotent producer's id
//! ([`idempotence`]), OAUTHBEARER tokens ([`token`]) and the config
//! file's named cluster profiles ([`profile`]). Requests tried again
//! until a deadline all go through one loop (`retry`, private to the
//! crate).

pub mod admin;
pub mod connect;
pub mod idempotence;
pub mod membership;
pub mod profile;
pub(crate) mod retry;
pub mod secret;
pub mod security;
pub mod token;
pub mod transaction;
pub(crate) mod wire;

pub use wire::{BearerRefusal, LastAttempt, ProtocolFault, SaslRefusal, TlsFailure, WireError};
