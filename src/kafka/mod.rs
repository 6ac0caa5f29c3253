//! Reaching Kafka: connection options and the rskafka client built from
//! them ([`connect`]), weir's own protocol connection for the requests
//! rskafka cannot send ([`wire`]), and topics admin ([`admin`]).

pub mod admin;
pub mod connect;
pub mod wire;
