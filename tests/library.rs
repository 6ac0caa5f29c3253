//! The library's entry points, used as a library user would: one cause,
//! one error. A topic that does not exist is `UnknownTopic { topic }`
//! (`topic "T" does not exist`) from the producer, the consumer, the
//! consume and count jobs and a group member, at once and never after a
//! timeout.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{brokers, random_topic, timeout};
use weir::aggregate::{CountConfig, CountError, count};
use weir::consume::filter::{Filter, FilterConfig};
use weir::consume::output::{OutputFormat, RecordWriter};
use weir::group::{GroupConfig, Member, MemberError};
use weir::job::runner::ReadPlan;
use weir::job::{JobError, StopReason};
use weir::produce::{ProduceError, ProducePlan, StartError, TopicError, TopicPlan};
use weir::read::{Assignment, ConsumeError, Consumer, ConsumerConfig, Selection, Until, assign};
use weir::{ConnectionConfig, FutureProducer, ProducerConfig};

/// Far below the connection's timeout: an unknown topic is known at once.
const AT_ONCE: Duration = Duration::from_secs(10);

/// `e` is the reader's `UnknownTopic` naming `topic`.
fn unknown(e: &ConsumeError, topic: &str) -> bool {
    matches!(e, ConsumeError::UnknownTopic { topic: t } if t == topic)
}

#[test]
fn an_unknown_topic_is_unknown_topic_from_every_entry_point() {
    let missing = random_topic("nosuch");
    // A timeout longer than the test's bound on each step: a failure that
    // waited for it would show.
    let connection = ConnectionConfig::new([brokers()]).with_timeout(Duration::from_secs(30));
    let text = format!("topic \"{missing}\" does not exist");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = Arc::new(timeout("connect", connection.client()).await.unwrap());
        let quick = |what: &str, started: Instant| {
            assert!(
                started.elapsed() < AT_ONCE,
                "{what} took {:?}",
                started.elapsed()
            );
        };

        let started = Instant::now();
        let producer =
            FutureProducer::new(Arc::clone(&client), &missing, ProducerConfig::default());
        match timeout("producer", producer).await {
            Err(ProduceError::UnknownTopic { topic }) => assert_eq!(topic, missing),
            other => panic!("producer: {other:?}"),
        }
        quick("the producer", started);

        // The produce job's start (`weir produce`), which may create it.
        let started = Instant::now();
        let plan = ProducePlan::new(TopicPlan::new(&missing), ProducerConfig::default());
        match timeout(
            "produce start",
            Box::pin(weir::produce::start(&connection, plan)),
        )
        .await
        {
            Err(StartError::Topic(TopicError::UnknownTopic { topic })) => {
                assert_eq!(topic, missing)
            }
            other => panic!("produce start: {:?}", other.err()),
        }
        quick("the produce job", started);

        let started = Instant::now();
        let e = timeout("assign", assign(&client, &Selection::new([&missing])))
            .await
            .unwrap_err();
        assert!(unknown(&e, &missing), "assign: {e:?}");
        assert_eq!(e.to_string(), text);
        quick("assign", started);

        // A partition of it named by hand, past `assign`.
        let started = Instant::now();
        let by_hand = Assignment {
            topic: Arc::from(missing.as_str()),
            partition: 0,
            start: None,
        };
        let config = ConsumerConfig::default().with_until(Until::End);
        match timeout("consumer", Consumer::start(&client, vec![by_hand], config)).await {
            Err(e) => assert!(unknown(&e, &missing), "consumer: {e:?}"),
            Ok(_) => panic!("a consumer of a topic that does not exist"),
        }
        quick("the consumer", started);

        let read = || {
            ReadPlan::new(
                Selection::new([&missing]),
                ConsumerConfig::default().with_until(Until::End),
            )
        };
        let started = Instant::now();
        let mut writer = RecordWriter::new(Vec::new(), OutputFormat::Value);
        let consumed = weir::consume::consume(
            &connection,
            read(),
            Filter::new(FilterConfig::default()),
            None,
            &mut writer,
            std::future::pending(),
        );
        match timeout("consume", Box::pin(consumed)).await {
            Err(JobError::Consumer(e)) => assert!(unknown(&e, &missing), "consume: {e:?}"),
            other => panic!("consume: {other:?}"),
        }
        quick("consume", started);

        let started = Instant::now();
        let counted = count(
            &connection,
            read(),
            CountConfig::default(),
            None,
            None,
            std::future::pending::<StopReason>(),
        );
        match timeout("count", Box::pin(counted)).await {
            Err(CountError::Job(JobError::Consumer(e))) => {
                assert!(unknown(&e, &missing), "count: {e:?}")
            }
            other => panic!("count: {other:?}"),
        }
        quick("count", started);

        let started = Instant::now();
        let member = Member::new(
            Arc::clone(&client),
            connection.clone(),
            GroupConfig::new(format!("{missing}-group"), [&missing]),
        );
        let handled = member.run(
            |_| async { Ok::<(), std::io::Error>(()) },
            std::future::pending(),
        );
        match timeout("group member", handled).await {
            Err(MemberError::Group(JobError::Consumer(e))) => {
                assert!(unknown(&e, &missing), "member: {e:?}");
                assert_eq!(e.to_string(), text);
            }
            other => panic!("group member: {other:?}"),
        }
        quick("the group member", started);
    });
}
