"""confluent-kafka's Avro serializer and deserializer against a Schema
Registry, for tests/registry.rs. Run with the python of scripts/pyenv.sh:

    registry.py schema
        Prints the Avro schema of the test records (an Order: a nested
        record, a union with a record branch, an enum, arrays, maps, bytes,
        fixed, float and double, decimal, timestamp-millis and -micros,
        date, uuid).

    registry.py produce BROKER REGISTRY TOPIC N
        Produces N Orders with AvroSerializer (registered under TOPIC-value)
        and, after the flush, prints each as plain JSON in weir's mapping,
        one line per record, in order.

    registry.py expected N
        Prints the same N Orders in weir's mapping, producing nothing (the
        input for weir produce --value-schema).

    registry.py consume BROKER REGISTRY TOPIC N
        Reads N records of partition 0 from the start with AvroDeserializer
        and prints each value in weir's mapping, one line per record.

Exits non-zero on any delivery or consumer error, and when consuming takes
more than 60 seconds.
"""

import base64
import datetime
import decimal
import json
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

SCHEMA = {
    "type": "record",
    "name": "Order",
    "namespace": "weir.test",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "customer", "type": {
            "type": "record", "name": "Customer", "fields": [
                {"name": "name", "type": "string"},
                {"name": "tier", "type": {"type": "enum", "name": "Tier", "symbols": ["GOLD", "SILVER", "BRONZE"]}},
                {"name": "address", "type": ["null", {
                    "type": "record", "name": "Address", "fields": [
                        {"name": "city", "type": "string"},
                        {"name": "zip", "type": ["null", "int"]},
                    ]}], "default": None},
            ]}},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "lines", "type": {"type": "array", "items": {
            "type": "record", "name": "Line", "fields": [
                {"name": "sku", "type": "string"},
                {"name": "qty", "type": "int"},
            ]}}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "attrs", "type": {"type": "map", "values": "long"}},
        {"name": "blob", "type": "bytes"},
        {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
        {"name": "ratio", "type": "float"},
        {"name": "score", "type": "double"},
        {"name": "paid", "type": "boolean"},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
        {"name": "created", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "seen", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "ref", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "billing", "type": ["null", "Address"], "default": None},
    ],
}

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def order(i):
    """The i-th test record, as Python values AvroSerializer takes."""
    return {
        "id": 1_000_000_000_000 + i,
        "customer": {
            "name": f"customer-{i % 37} \u00e9\"\n",
            "tier": ["GOLD", "SILVER", "BRONZE"][i % 3],
            "address": None if i % 4 == 0 else {"city": f"city-{i % 11}", "zip": None if i % 5 == 0 else 10000 + i},
        },
        "note": None if i % 2 else f"note {i}",
        "lines": [{"sku": f"sku-{i}-{j}", "qty": j - 1} for j in range(i % 4)],
        "tags": [f"t{j}" for j in range(i % 3)],
        "attrs": {f"k{j}": (i * 1_000_003 + j) * (-1) ** j for j in range(i % 5)},
        "blob": bytes((i + j) % 256 for j in range(i % 9)),
        "digest": i.to_bytes(4, "big"),
        "ratio": (i % 64) * 0.25,
        "score": i / 8.0 - 100.0,
        "paid": i % 2 == 0,
        "price": decimal.Decimal(i * 37 - 5000).scaleb(-2),
        "created": 1_700_000_000_000 + i * 1_001,
        "seen": 1_700_000_000_000_000 + i * 999_983,
        "day": 19_000 + i % 1000,
        "ref": str(uuid.UUID(int=i * 0x9E3779B97F4A7C15 % (1 << 128))),
        "billing": None if i % 3 else {"city": "billing", "zip": i},
    }


def plain(v):
    """A Python value as weir's plain JSON mapping has it."""
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    if isinstance(v, (bytes, bytearray)):
        return base64.b64encode(v).decode()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, datetime.datetime):
        # Exact: whole microseconds from the epoch; the caller knows the unit.
        return (v - EPOCH) // datetime.timedelta(microseconds=1)
    if isinstance(v, datetime.date):
        return (v - datetime.date(1970, 1, 1)).days
    if isinstance(v, uuid.UUID):
        return str(v)
    return v


def read_back(v):
    """A deserialized Order in weir's mapping (timestamps to their units)."""
    out = plain(v)
    out["created"] = out["created"] // 1000
    return out


def produce(broker, registry, topic, n):
    client = SchemaRegistryClient({"url": registry})
    serializer = AvroSerializer(client, json.dumps(SCHEMA))
    producer = Producer({"bootstrap.servers": broker, "linger.ms": 20})
    errors = []

    def done(err, _msg):
        if err is not None:
            errors.append(err)

    for i in range(n):
        value = serializer(order(i), SerializationContext(topic, MessageField.VALUE))
        producer.produce(topic, value=value, key=str(i).encode(), partition=0, on_delivery=done)
        producer.poll(0)
    left = producer.flush(30)
    if errors or left:
        sys.exit(f"delivery failed: {errors[:3]}, {left} left")
    for i in range(n):
        print(json.dumps(plain(order(i))))


def consume(broker, registry, topic, n):
    client = SchemaRegistryClient({"url": registry})
    deserializer = AvroDeserializer(client)
    consumer = Consumer({"bootstrap.servers": broker, "group.id": "registry-py",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    deadline = time.monotonic() + 60
    read = 0
    while read < n:
        if time.monotonic() > deadline:
            sys.exit(f"read {read} of {n} records in 60 s")
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            sys.exit(f"consumer error: {msg.error()}")
        value = deserializer(msg.value(), SerializationContext(topic, MessageField.VALUE))
        print(json.dumps(read_back(value)))
        read += 1
    consumer.close()


def main():
    mode = sys.argv[1]
    if mode == "schema":
        print(json.dumps(SCHEMA))
    elif mode == "expected":
        for i in range(int(sys.argv[2])):
            print(json.dumps(plain(order(i))))
    elif mode == "produce":
        produce(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif mode == "consume":
        consume(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
