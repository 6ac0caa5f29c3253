//! Transactions against a scripted coordinator ([`FakeBroker`]) on a
//! paused clock: each step refused, the retriable answers asked again,
//! a moved coordinator found again, and the deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnResponse, AddPartitionsToTxnResponse, ApiKey, EndTxnResponse,
    InitProducerIdResponse, ProducerId as WireProducerId, RequestKind, ResponseKind,
    TxnOffsetCommitResponse,
};

use super::{GroupGeneration, TransactionError, Transactions};
use crate::TopicPartition;
use crate::kafka::wire::fake::{FakeBroker, Reply};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Which step a script refuses, with what.
#[derive(Clone, Copy)]
struct Refuse {
    api: ApiKey,
    code: i16,
    /// Answer this many of the step's requests with `code`, then as a
    /// healthy coordinator (`usize::MAX`: always).
    times: usize,
}

/// A healthy transaction coordinator (and group coordinator), but for
/// `refuse`.
fn coordinator(refuse: Option<Refuse>) -> FakeBroker {
    let refused = Arc::new(AtomicUsize::new(0));
    FakeBroker::start(move |request| {
        let code = match refuse {
            Some(r)
                if key(request) == r.api && refused.fetch_add(1, Ordering::Relaxed) < r.times =>
            {
                r.code
            }
            _ => 0,
        };
        Reply::Answer(Box::new(answer(request, code)))
    })
}

fn key(request: &RequestKind) -> ApiKey {
    match request {
        RequestKind::InitProducerId(_) => ApiKey::InitProducerId,
        RequestKind::AddPartitionsToTxn(_) => ApiKey::AddPartitionsToTxn,
        RequestKind::AddOffsetsToTxn(_) => ApiKey::AddOffsetsToTxn,
        RequestKind::TxnOffsetCommit(_) => ApiKey::TxnOffsetCommit,
        RequestKind::EndTxn(_) => ApiKey::EndTxn,
        other => panic!("not a transaction request: {other:?}"),
    }
}

/// The answer to `request` with error `code`, shaped as the broker's.
fn answer(request: &RequestKind, code: i16) -> ResponseKind {
    match request {
        RequestKind::InitProducerId(_) => ResponseKind::InitProducerId(
            InitProducerIdResponse::default()
                .with_error_code(code)
                .with_producer_id(WireProducerId(4000))
                .with_producer_epoch(7),
        ),
        RequestKind::AddPartitionsToTxn(r) => ResponseKind::AddPartitionsToTxn(
            AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(
                r.v3_and_below_topics
                    .iter()
                    .map(|t| {
                        AddPartitionsToTxnTopicResult::default()
                            .with_name(t.name.clone())
                            .with_results_by_partition(
                                t.partitions
                                    .iter()
                                    .map(|&p| {
                                        AddPartitionsToTxnPartitionResult::default()
                                            .with_partition_index(p)
                                            .with_partition_error_code(code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        RequestKind::AddOffsetsToTxn(_) => {
            ResponseKind::AddOffsetsToTxn(AddOffsetsToTxnResponse::default().with_error_code(code))
        }
        RequestKind::TxnOffsetCommit(r) => ResponseKind::TxnOffsetCommit(
            TxnOffsetCommitResponse::default().with_topics(
                r.topics
                    .iter()
                    .map(|t| {
                        TxnOffsetCommitResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        TxnOffsetCommitResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        RequestKind::EndTxn(_) => {
            ResponseKind::EndTxn(EndTxnResponse::default().with_error_code(code))
        }
        other => panic!("not a transaction request: {other:?}"),
    }
}

fn member() -> GroupGeneration {
    GroupGeneration {
        group: "g".to_owned(),
        generation: 3,
        member_id: "m-1".to_owned(),
        instance_id: None,
    }
}

fn offsets() -> Vec<(TopicPartition, i64)> {
    vec![(TopicPartition::new("in", 0), 42)]
}

/// One whole transaction: partitions, offsets, commit.
async fn transaction(t: &mut Transactions) -> Result<(), TransactionError> {
    t.add_partitions("out", [0, 1]).await?;
    t.commit_offsets(&member(), &offsets()).await?;
    t.end(true).await
}

async fn init(broker: &FakeBroker) -> Transactions {
    Transactions::init(
        &broker.connection(TIMEOUT),
        "weir:g:in-0",
        Duration::from_secs(60),
    )
    .await
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_whole_transaction_sends_each_step_once() {
    let broker = coordinator(None);
    let mut t = init(&broker).await;
    assert_eq!(t.producer_id().id, 4000);
    assert_eq!(t.producer_id().epoch, 7);
    transaction(&mut t).await.unwrap();
    assert!(!t.is_open());
    assert_eq!(
        broker.seen(),
        [
            ApiKey::InitProducerId,
            ApiKey::AddPartitionsToTxn,
            ApiKey::AddOffsetsToTxn,
            ApiKey::TxnOffsetCommit,
            ApiKey::EndTxn
        ]
    );
    // A second transaction adds its partitions and offsets again.
    transaction(&mut t).await.unwrap();
    assert_eq!(broker.count(ApiKey::AddPartitionsToTxn), 2);
    assert_eq!(broker.count(ApiKey::AddOffsetsToTxn), 2);
}

/// A step refused for good: the error names it, and the transaction stays
/// open for the caller to abort.
async fn refused_at(api: ApiKey, error: ResponseError) -> (TransactionError, bool) {
    let broker = coordinator(Some(Refuse {
        api,
        code: error.code(),
        times: usize::MAX,
    }));
    let mut t = init(&broker).await;
    let e = transaction(&mut t).await.unwrap_err();
    assert!(
        matches!(&e, TransactionError::Refused { api: named, error: e, .. } if *named == api_name(api) && *e == error),
        "{api:?}: {e:?}"
    );
    assert_eq!(
        broker.count(api),
        1,
        "{api:?} refused for good is not asked again"
    );
    (e, t.is_open())
}

fn api_name(api: ApiKey) -> &'static str {
    match api {
        ApiKey::AddPartitionsToTxn => "AddPartitionsToTxn",
        ApiKey::AddOffsetsToTxn => "AddOffsetsToTxn",
        ApiKey::TxnOffsetCommit => "TxnOffsetCommit",
        ApiKey::EndTxn => "EndTxn",
        _ => unreachable!(),
    }
}

#[tokio::test(start_paused = true)]
async fn add_partitions_refused_as_fenced_names_the_id() {
    let (e, open) = refused_at(ApiKey::AddPartitionsToTxn, ResponseError::ProducerFenced).await;
    assert_eq!(e.fenced_id(), Some("weir:g:in-0"));
    assert!(!open, "nothing was added");
    assert!(
        e.to_string()
            .contains("another producer with this transactional id"),
        "{e}"
    );
}

#[tokio::test(start_paused = true)]
async fn add_offsets_refused_leaves_the_partitions_to_abort() {
    let (e, open) = refused_at(
        ApiKey::AddOffsetsToTxn,
        ResponseError::GroupAuthorizationFailed,
    )
    .await;
    assert_eq!(e.fenced_id(), None);
    assert!(!e.is_stale_generation());
    assert!(open, "the partitions added are still in the transaction");
}

#[tokio::test(start_paused = true)]
async fn txn_offset_commit_refused_for_a_past_generation_is_stale() {
    for error in [
        ResponseError::IllegalGeneration,
        ResponseError::UnknownMemberId,
        ResponseError::FencedInstanceId,
    ] {
        let (e, open) = refused_at(ApiKey::TxnOffsetCommit, error).await;
        assert!(e.is_stale_generation(), "{error:?}: {e:?}");
        assert!(open);
    }
}

#[tokio::test(start_paused = true)]
async fn end_txn_refused_with_a_code_it_does_not_expect_stays_open() {
    // Kafka 4.4 once answered EndTxn with an error weir had no branch
    // for; it must fail the step, not pass as a commit.
    for error in [
        ResponseError::UnknownServerError,
        ResponseError::InvalidTxnState,
        ResponseError::InvalidProducerEpoch,
    ] {
        let (e, open) = refused_at(ApiKey::EndTxn, error).await;
        assert!(open, "{error:?}: a transaction not ended is still open");
        assert_eq!(
            e.fenced_id().is_some(),
            error == ResponseError::InvalidProducerEpoch,
            "{error:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn retriable_answers_are_asked_again_until_they_pass() {
    for (api, error) in [
        (
            ApiKey::AddPartitionsToTxn,
            ResponseError::ConcurrentTransactions,
        ),
        (ApiKey::EndTxn, ResponseError::CoordinatorLoadInProgress),
        (ApiKey::TxnOffsetCommit, ResponseError::NotCoordinator),
    ] {
        let broker = coordinator(Some(Refuse {
            api,
            code: error.code(),
            times: 3,
        }));
        let mut t = init(&broker).await;
        transaction(&mut t).await.unwrap();
        assert_eq!(broker.count(api), 4, "{api:?} after {error:?}");
        assert!(!t.is_open());
    }
}

#[tokio::test(start_paused = true)]
async fn a_coordinator_that_stays_busy_fails_at_the_deadline() {
    let broker = coordinator(Some(Refuse {
        api: ApiKey::EndTxn,
        code: ResponseError::ConcurrentTransactions.code(),
        times: usize::MAX,
    }));
    let mut t = init(&broker).await;
    t.add_partitions("out", [0]).await.unwrap();
    let started = tokio::time::Instant::now();
    let e = t.end(true).await.unwrap_err();
    assert!(
        matches!(e, TransactionError::Timeout { api: "EndTxn", .. }),
        "{e:?}"
    );
    let waited = started.elapsed();
    assert!(waited <= TIMEOUT, "{waited:?}");
    assert!(waited >= TIMEOUT / 2, "{waited:?}");
    assert!(broker.count(ApiKey::EndTxn) > 3, "asked again meanwhile");
    assert!(t.is_open());
}

#[tokio::test(start_paused = true)]
async fn a_coordinator_that_never_answers_fails_at_the_deadline() {
    let broker = FakeBroker::start(|request| match request {
        RequestKind::EndTxn(_) => Reply::Hang,
        request => Reply::Answer(Box::new(answer(request, 0))),
    });
    let mut t = init(&broker).await;
    t.add_partitions("out", [0]).await.unwrap();
    let deadline = tokio::time::timeout(TIMEOUT * 3, t.end(true)).await;
    let e = deadline
        .expect("a request that is never answered ends by the deadline")
        .unwrap_err();
    assert!(
        matches!(e, TransactionError::Timeout { api: "EndTxn", .. }),
        "{e:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_connection_dropped_mid_step_is_opened_again() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let broker = FakeBroker::start(move |request| match request {
        RequestKind::AddOffsetsToTxn(_) if dropped.fetch_add(1, Ordering::Relaxed) == 0 => {
            Reply::Drop
        }
        request => Reply::Answer(Box::new(answer(request, 0))),
    });
    let mut t = init(&broker).await;
    transaction(&mut t).await.unwrap();
    assert_eq!(broker.count(ApiKey::AddOffsetsToTxn), 2);
    assert!(!t.is_open());
}

#[tokio::test(start_paused = true)]
async fn a_static_members_offsets_name_its_instance_id() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let broker = {
        let seen = Arc::clone(&seen);
        FakeBroker::start(move |request| {
            if let RequestKind::TxnOffsetCommit(r) = request {
                let id = r.group_instance_id.as_ref().map(|s| s.to_string());
                seen.lock().unwrap().push((r.member_id.to_string(), id));
            }
            Reply::Answer(Box::new(answer(request, 0)))
        })
    };
    let mut t = init(&broker).await;
    let member = GroupGeneration {
        instance_id: Some("pod-0".to_owned()),
        ..member()
    };
    t.add_partitions("out", [0]).await.unwrap();
    t.commit_offsets(&member, &offsets()).await.unwrap();
    t.commit_offsets(&self::member(), &offsets()).await.unwrap();
    t.end(true).await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("m-1".to_owned(), Some("pod-0".to_owned())),
            ("m-1".to_owned(), None)
        ]
    );
}
