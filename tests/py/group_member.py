"""A confluent-kafka (librdkafka) consumer on its default settings as a
member of a group, for tests/groups/assignors.rs.

    python group_member.py BROKER TOPIC GROUP

Prints each record's value on stdout, one a line, as it reads it, and each
assignment and revocation on stderr; on SIGTERM it closes the consumer
(committing and leaving the group) and exits 0. Only the group id and the
bootstrap servers are set, plus auto.offset.reset=earliest so that a fresh
group reads what is produced before its first commit.
"""

import signal
import sys

from confluent_kafka import Consumer

stop = False


def on_term(*_):
    global stop
    stop = True


def show(what):
    def callback(_consumer, partitions):
        names = ",".join(f"{p.topic}-{p.partition}" for p in partitions)
        print(f"{what}: {names or 'none'}", file=sys.stderr, flush=True)

    return callback


def main():
    broker, topic, group = sys.argv[1:4]
    signal.signal(signal.SIGTERM, on_term)
    consumer = Consumer(
        {
            "bootstrap.servers": broker,
            "group.id": group,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic], on_assign=show("assigned"), on_revoke=show("revoked"))
    while not stop:
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error() is not None:
            print(f"consumer error: {msg.error()}", file=sys.stderr, flush=True)
            continue
        print(msg.value().decode(), flush=True)
    consumer.close()


if __name__ == "__main__":
    main()
