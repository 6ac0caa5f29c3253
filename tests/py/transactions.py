"""A transactional producer (confluent-kafka, i.e. librdkafka) for
tests/isolation.rs.

Run with the python of scripts/pyenv.sh:

    transactions.py BROKER TOPIC TRANSACTIONAL_ID

Writes to partition 0 of TOPIC four transactions of three records each,
key and value "{name}-{i}": "committed-1" (committed), "aborted" (flushed
to the log, then aborted), "committed-2" (committed) and "open", flushed
and left open. Then prints "open" and waits for a line on stdin: "commit"
commits the open transaction, anything else (or the end of stdin) aborts
it; then prints "done" and exits.

Exits non-zero on any delivery or transaction error.
"""

import sys

from confluent_kafka import Producer

TIMEOUT = 60


def write(producer, topic, name):
    errors = []

    def delivered(err, msg):
        if err is not None:
            errors.append(f"{msg.key()!r}: {err}")

    producer.begin_transaction()
    for i in range(3):
        record = f"{name}-{i}"
        producer.produce(topic, key=record, value=record, partition=0, on_delivery=delivered)
    # In the log before the transaction ends: an abort would drop records
    # still queued, and the test needs the aborted ones written.
    left = producer.flush(TIMEOUT)
    if errors or left:
        sys.exit(f"transaction {name}: {left} undelivered, errors: {errors}")


def main(broker, topic, transactional_id):
    producer = Producer(
        {
            "bootstrap.servers": broker,
            "transactional.id": transactional_id,
            "linger.ms": 5,
        }
    )
    producer.init_transactions(TIMEOUT)
    write(producer, topic, "committed-1")
    producer.commit_transaction(TIMEOUT)
    write(producer, topic, "aborted")
    producer.abort_transaction(TIMEOUT)
    write(producer, topic, "committed-2")
    producer.commit_transaction(TIMEOUT)
    write(producer, topic, "open")
    print("open", flush=True)
    if sys.stdin.readline().strip() == "commit":
        producer.commit_transaction(TIMEOUT)
    else:
        producer.abort_transaction(TIMEOUT)
    print("done", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
