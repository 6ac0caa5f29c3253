//! Two members of one consumer group in one process, each with an async
//! handler per record: the library joins the group, shares the
//! partitions between them, commits what the handlers finished (before a
//! partition moves, too) and leaves when the shutdown future completes.
//!
//! ```text
//! cargo run --example group -- [BROKERS] [TOPIC] [GROUP] [COUNT]
//! ```
//!
//! Stops once COUNT records were handled and prints `handled N records, D
//! distinct` (D = N: none twice); run it again with the same group and it
//! handles only what came since.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use weir::ConnectionConfig;
use weir::group::{Assignor, GroupConfig, Member};
use weir::record::ConsumedRecord;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let brokers = args.next().unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let topic = args.next().unwrap_or_else(|| "events".to_owned());
    let group = args.next().unwrap_or_else(|| "example".to_owned());
    let count: usize = args.next().map_or(Ok(1000), |n| n.parse())?;

    let connection = ConnectionConfig::new([brokers]);
    let client = Arc::new(connection.client().await?);
    // Cooperative rebalances: when the second member joins, the first
    // reads on from the partitions it keeps.
    let config = GroupConfig::new(group, [topic]).with_assignors([Assignor::CooperativeSticky]);

    // What both handlers saw, and how many records that was.
    let seen = Arc::new(Mutex::new((0, BTreeSet::new())));
    let (handled, done) = tokio::sync::watch::channel(0);
    let handled = Arc::new(handled);
    let handler = || {
        let (seen, handled) = (Arc::clone(&seen), Arc::clone(&handled));
        move |record: ConsumedRecord| {
            let (seen, handled) = (Arc::clone(&seen), Arc::clone(&handled));
            async move {
                // Process the record here (write it to a database, call a
                // service...); an error stops this member.
                let mut seen = seen.lock().unwrap();
                seen.0 += 1;
                seen.1.insert((record.partition, record.offset));
                handled.send_replace(seen.0);
                Ok::<(), Infallible>(())
            }
        }
    };
    let shutdown = || {
        let mut done = done.clone();
        async move {
            let _ = done.wait_for(|n| *n >= count).await;
        }
    };

    let a = Member::new(Arc::clone(&client), connection.clone(), config.clone());
    let b = Member::new(client, connection, config);
    let (a, b) = tokio::join!(a.run(handler(), shutdown()), b.run(handler(), shutdown()));
    let (a, b) = (a?, b?);
    let (total, distinct) = {
        let seen = seen.lock().unwrap();
        (seen.0, seen.1.len())
    };
    assert_eq!(a.handled + b.handled, total as u64);
    println!("handled {total} records, {distinct} distinct");
    eprintln!("member a: {} records, member b: {}", a.handled, b.handled);
    Ok(())
}
