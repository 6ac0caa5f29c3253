"""Another Kafka client (confluent-kafka, i.e. librdkafka) for tests/interop.rs.

Run with the python of scripts/pyenv.sh:

    interop.py produce BROKER TOPIC N PARTITIONER
        Produces N records, key "key-{i}" and value "v-{i}", with librdkafka's
        PARTITIONER (murmur2_random, consistent, ...). After the flush, prints
        one JSON line per record, sorted by key: {"key": "key-i", "partition": p}.

    interop.py consume BROKER TOPIC PARTITIONS EXPECTED
        Reads every partition from the beginning (explicit assign, no group
        offsets) until EXPECTED records are read. Prints one JSON line per
        record: {"partition", "offset", "key_b64", "value_b64", "headers"},
        with base64 key, value (null when absent) and headers as a list of
        [name, base64 value or null] pairs in the record's order.

    interop.py produce-binary BROKER TOPIC N COMPRESSION
        Produces N records with binary keys and values (bytes that are not
        UTF-8), a text header, a binary header twice (a repeated key) and a
        header with a null value, compressed with COMPRESSION (none, gzip,
        snappy, lz4, zstd), partitioner murmur2_random. After the flush,
        prints one JSON line per record: {"partition", "offset",
        "timestamp", "key_b64", "value_b64", "headers": [[name, base64 or
        null]]}.

Exits non-zero on any delivery or consumer error, and when consuming takes
more than 60 seconds.
"""

import base64
import json
import sys
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition


def b64(data):
    return None if data is None else base64.b64encode(data).decode()


def produce(broker, topic, n, partitioner):
    producer = Producer(
        {"bootstrap.servers": broker, "partitioner": partitioner, "linger.ms": 5}
    )
    placed, errors = {}, []

    def delivered(err, msg):
        if err is not None:
            errors.append(f"{msg.key()!r}: {err}")
        else:
            placed[msg.key().decode()] = msg.partition()

    for i in range(n):
        producer.produce(topic, key=f"key-{i}", value=f"v-{i}", on_delivery=delivered)
        producer.poll(0)
    left = producer.flush(60)
    if errors or left or len(placed) != n:
        sys.exit(f"delivery failed: {left} undelivered, errors: {errors[:10]}")
    for key in sorted(placed):
        print(json.dumps({"key": key, "partition": placed[key]}))


def produce_binary(broker, topic, n, compression):
    producer = Producer(
        {
            "bootstrap.servers": broker,
            "partitioner": "murmur2_random",
            "compression.type": compression,
            "linger.ms": 5,
        }
    )
    delivered_records, errors, sent_headers = [], [], {}

    def delivered(err, msg):
        if err is not None:
            errors.append(f"{msg.key()!r}: {err}")
        else:
            # librdkafka does not hand headers back in every delivery
            # report; the ones sent are the truth.
            delivered_records.append(
                {
                    "partition": msg.partition(),
                    "offset": msg.offset(),
                    "timestamp": msg.timestamp()[1],
                    "key_b64": b64(msg.key()),
                    "value_b64": b64(msg.value()),
                    "headers": sent_headers[msg.key()],
                }
            )

    tag = compression.encode()
    for i in range(n):
        key = bytes([0xFF, i % 256, 0x00]) + tag + str(i).encode()
        value = bytes([0x80, 0xFE]) + f"{compression}-{i}".encode() * (1 + i % 5)
        headers = [
            ("codec", tag),
            ("raw", bytes([0xC3, 0x28, i % 256])),
            ("nothing", None),
            ("raw", bytes([0x80, i % 7])),
        ]
        sent_headers[key] = [[name, b64(value)] for name, value in headers]
        producer.produce(topic, key=key, value=value, headers=headers, on_delivery=delivered)
        producer.poll(0)
    left = producer.flush(60)
    if errors or left or len(delivered_records) != n:
        sys.exit(f"delivery failed: {left} undelivered, errors: {errors[:10]}")
    for record in delivered_records:
        print(json.dumps(record))


def consume(broker, topic, partitions, expected):
    consumer = Consumer(
        {
            "bootstrap.servers": broker,
            "group.id": f"interop-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign(
        [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)]
    )
    deadline = time.monotonic() + 60
    read = 0
    while read < expected:
        if time.monotonic() > deadline:
            sys.exit(f"timed out after reading {read} of {expected} records")
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error() is not None:
            sys.exit(f"consumer error: {msg.error()}")
        headers = [[name, b64(value)] for name, value in msg.headers() or []]
        record = {
            "partition": msg.partition(),
            "offset": msg.offset(),
            "key_b64": b64(msg.key()),
            "value_b64": b64(msg.value()),
            "headers": headers,
        }
        print(json.dumps(record))
        read += 1
    consumer.close()


def main(argv):
    if len(argv) == 5 and argv[0] == "produce":
        produce(argv[1], argv[2], int(argv[3]), argv[4])
    elif len(argv) == 5 and argv[0] == "produce-binary":
        produce_binary(argv[1], argv[2], int(argv[3]), argv[4])
    elif len(argv) == 5 and argv[0] == "consume":
        consume(argv[1], argv[2], int(argv[3]), int(argv[4]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
