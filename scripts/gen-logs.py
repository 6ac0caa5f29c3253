#!/usr/bin/env python3
"""Sample application logs for `weir count`: JSON lines for `weir produce --format json`.

Each line is {"key": SERVICE, "value": "TIME LEVEL [SERVICE] MESSAGE", "timestamp": MS}.
Timestamps never decrease, so no record is late whatever the partitioning.
Deterministic for a given --seed.

    scripts/gen-logs.py --lines 300000 --start 2026-11-24T09:00:00Z --minutes 30 > testdata/logs.jsonl
"""
import argparse
import datetime
import json
import random
import sys

SERVICES = ["checkout", "payments", "search", "auth", "inventory", "shipping", "web", "email"]
LEVELS = [("INFO", 70), ("WARN", 18), ("ERROR", 8), ("DEBUG", 4)]
MESSAGES = {
    "INFO": ["request served status=200 ms={ms}", "cache hit key=item:{n}", "user login ok user={n}",
             "order created order={n}", "health check ok"],
    "WARN": ["slow request ms={ms}", "retrying upstream attempt={a}", "cache miss key=item:{n}",
             "rate limit close for client={n}"],
    "ERROR": ["payment declined order={n}", "upstream timeout after {ms}ms", "database connection reset",
              "unhandled exception in handler id={n}"],
    "DEBUG": ["query plan rows={n}", "feature flag evaluated flag=f{a}"],
}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=300000)
    p.add_argument("--start", default="2026-11-24T09:00:00Z", help="RFC 3339 or epoch ms")
    p.add_argument("--minutes", type=float, default=30.0, help="time span of the logs")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    if args.start.isdigit():
        start = int(args.start)
    else:
        t = datetime.datetime.fromisoformat(args.start.replace("Z", "+00:00"))
        start = int(t.timestamp() * 1000)
    rng = random.Random(args.seed)
    levels = [lvl for lvl, w in LEVELS for _ in range(w)]
    span = int(args.minutes * 60000)
    out = sys.stdout
    for i in range(args.lines):
        ts = start + span * i // max(args.lines, 1)
        service = rng.choice(SERVICES)
        level = rng.choice(levels)
        msg = rng.choice(MESSAGES[level]).format(ms=rng.randint(1, 5000), n=rng.randint(1, 99999), a=rng.randint(1, 5))
        when = datetime.datetime.fromtimestamp(ts / 1000, datetime.timezone.utc)
        line = f"{when.strftime('%Y-%m-%dT%H:%M:%S')}.{ts % 1000:03d}Z {level} [{service}] {msg}"
        out.write(json.dumps({"key": service, "value": line, "timestamp": ts}, separators=(",", ":")))
        out.write("\n")


if __name__ == "__main__":
    main()
