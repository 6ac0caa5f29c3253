"""The reference for tests/agg.rs: what `weir agg` must emit, computed
independently from the records as the topic holds them.

Run with any python 3:

    agg_reference.py SPEC RECORDS

SPEC is JSON: {"by": ["key" | "json:/FIELD", ...], "aggs": ["count",
"sum:json:/F", "min:…", "max:…", "avg:…", "distinct:…", "topN:…",
"pNN:…"], "window_ms": int or null, "hop_ms": int or null,
"session_gap_ms": int or null, "grace_ms": int}.

RECORDS is the topic read back by `weir consume --json` (one object per
line with partition, offset, timestamp, key, value), so each partition's
records are taken in the order the partition holds them.

Prints one JSON object per row: window_start and window_end in ms (null
for totals; a session's first and last record's time), key (a string, a
list for several --by, null when a part is missing), and "aggs": one
value per --agg in order (percentiles as the exact lower quantile, value
at rank floor(q * (n - 1)), for the caller to compare within the
sketch's error); "unparsed": {name: n}; and "late" once, as {"late": n}.

Lateness is per partition, as weir defines it: a partition's watermark
is the largest timestamp it has taken; a window closes when its end is at
or before the watermark less the grace; a record misses the windows that
closed (late, counted once per record); a session record is late when
its time is before the watermark less the grace. A record that took
no window does not move the watermark. Emissions across partitions
cannot close a window earlier than this when every partition has records
(their boundary is the least of the partitions' own).
"""

import json
import math
import sys
from collections import defaultdict


def extract(extractor, record):
    if extractor == "key":
        return record.get("key")
    if extractor == "value":
        return record.get("value")
    if extractor.startswith("json:/"):
        field = extractor[len("json:/"):]
        try:
            doc = json.loads(record.get("value") or "")
        except ValueError:
            return None
        if not isinstance(doc, dict) or field not in doc:
            return None
        v = doc[field]
        if isinstance(v, str):
            return v
        return json.dumps(v)
    raise SystemExit(f"unsupported extractor {extractor}")


def number(text):
    if text is None:
        return None
    try:
        x = float(text.strip())
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def group_key(spec, record):
    parts = [extract(b, record) for b in spec["by"]]
    if any(p is None for p in parts):
        return None
    if len(parts) == 1:
        return parts[0]
    return json.dumps(parts, separators=(",", ":"))


def window_starts(spec, ts):
    size, hop = spec["window_ms"], spec["hop_ms"]
    if size is None:
        return [None]
    step = hop or size
    latest = (ts // step) * step
    starts = []
    s = latest
    while s + size > ts:
        starts.append(s)
        s -= step
    return sorted(starts)


def finish(spec, records):
    """Each aggregate's value over `records` (each the list of the
    record's field texts, one per aggregate), and the unparsed counts."""
    values, unparsed = [], {}
    for i, agg in enumerate(spec["aggs"]):
        if agg == "count":
            values.append(len(records))
            continue
        name, field = agg.split(":", 1)
        label = f"{name}({field})"
        texts = [r[i] for r in records]
        if name in ("sum", "min", "max", "avg") or name.startswith("p"):
            nums = [number(t) for t in texts]
            bad = sum(1 for x in nums if x is None)
            nums = [x for x in nums if x is not None]
            if name == "sum":
                values.append(sum(nums))
            elif name == "min":
                values.append(min(nums) if nums else None)
            elif name == "max":
                values.append(max(nums) if nums else None)
            elif name == "avg":
                values.append(sum(nums) / len(nums) if nums else None)
            else:
                q = float(name[1:]) / 100
                nums.sort()
                values.append(nums[int(math.floor(q * (len(nums) - 1)))] if nums else None)
        elif name == "distinct":
            bad = sum(1 for t in texts if t is None)
            values.append(len({t for t in texts if t is not None}))
        elif name.startswith("top"):
            k = int(name[3:])
            bad = sum(1 for t in texts if t is None)
            counts = defaultdict(int)
            for t in texts:
                if t is not None:
                    counts[t] += 1
            top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
            values.append([[v, n] for v, n in top])
        else:
            raise SystemExit(f"unsupported aggregate {agg}")
        if bad:
            unparsed[label] = bad
    return values, unparsed


def main():
    spec = json.load(open(sys.argv[1]))
    by_partition = defaultdict(list)
    for line in open(sys.argv[2]):
        r = json.loads(line)
        by_partition[r["partition"]].append(r)
    grace = spec["grace_ms"]
    gap = spec["session_gap_ms"]
    fields = []
    for agg in spec["aggs"]:
        fields.append(None if agg == "count" else agg.split(":", 1)[1])
    # (window start, key) -> list of the records' field texts
    windows = defaultdict(list)
    # key -> list of (ts, texts), taken records for sessions
    session_points = defaultdict(list)
    late = 0
    for partition in sorted(by_partition):
        records = sorted(by_partition[partition], key=lambda r: r["offset"])
        watermark = None
        for r in records:
            ts = r["timestamp"]
            key = group_key(spec, r)
            texts = [None if f is None else extract(f, r) for f in fields]
            closed = None if watermark is None else watermark - grace
            if gap is not None:
                if closed is not None and ts < closed:
                    late += 1
                    continue
                session_points[key].append((ts, texts))
                watermark = ts if watermark is None else max(watermark, ts)
                continue
            if spec["window_ms"] is None:
                windows[(None, key)].append(texts)
                continue
            missed, taken = False, False
            for start in window_starts(spec, ts):
                if closed is not None and start + spec["window_ms"] <= closed:
                    missed = True
                    continue
                taken = True
                windows[(start, key)].append(texts)
            if taken:
                watermark = ts if watermark is None else max(watermark, ts)
            if missed:
                late += 1
    rows = []
    for (start, key), recs in windows.items():
        values, unparsed = finish(spec, recs)
        end = None if start is None else start + spec["window_ms"]
        rows.append({"window_start": start, "window_end": end, "key": key,
                     "aggs": values, "unparsed": unparsed})
    for key, points in session_points.items():
        # Sessions across all partitions: records no more than the gap apart.
        points.sort(key=lambda p: p[0])
        chains = []
        for ts, texts in points:
            if chains and ts - gap <= chains[-1][1]:
                chains[-1][1] = max(chains[-1][1], ts)
                chains[-1][2].append(texts)
            else:
                chains.append([ts, ts, [texts]])
        for start, end, recs in chains:
            values, unparsed = finish(spec, recs)
            rows.append({"window_start": start, "window_end": end, "key": key,
                         "aggs": values, "unparsed": unparsed})
    for row in rows:
        if isinstance(row["key"], str) and len(spec["by"]) > 1:
            row["key"] = json.loads(row["key"])
        print(json.dumps(row))
    print(json.dumps({"late": late}))


main()
