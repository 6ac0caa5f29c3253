#!/usr/bin/env python3
"""The measuring half of bench/agg-groups.sh: a windowed aggregate grouped
by a field of the value (not the record key) across the members of a
group, weir against Kafka Streams' repartition.

Usage: agg-groups.py WEIR STREAMS_JAR WORKDIR OUTDIR   (WEIR_BROKERS names the
broker; the settings come from the environment, as bench/agg-groups.sh
documents them)

The input: a 12-partition topic of N log records keyed by host ("h017",
HOSTS hosts, partition host % 12), ~100-byte JSON values
{"host":"h017","level":"INFO","bytes":123,"service":…,"status":…,"path":…},
event timestamps spread evenly over SPAN seconds ending a minute before
now. Record i: host (i * 7919) % HOSTS, bytes (i * 37) % 10007, level by a
hash of i: INFO 60%, DEBUG 20%, WARN 12%, ERROR 6%, FATAL 2%. The reference
(count, sum and max of bytes per 1-minute window and level) is computed
while writing it. With EMIT=updates one input serves every run; with
EMIT=final each run gets its own, and once the run's committed position has
reached N one record per partition and level is appended with a timestamp
WINDOW + GRACE past the span (outside the reference), so every window of
the data closes in every partition of the input and of Streams'
repartition topic (appended only then, so none of them overtakes data).

Each run (aggregates x tool x instances) has its own group (Streams'
application.id), state directories and output topic, created with
message.timestamp.type=LogAppendTime so each output record carries the time
the broker appended it (read back at the end with the Java consumer,
TopicDump). INSTANCES processes start together:

1. Input: the group's committed position in the input (the sum over
   partitions) reaching N (Streams: its consumer group, read by
   GroupPosition from one JVM; weir: `weir offsets show`). records/s = N /
   (that time - the first process's start).
2. Complete: then the output topic is read back (read_committed, every
   second) until the last row of every (window, level) of the reference
   holds the reference's values, or no row has come for QUIET seconds. The
   time to the complete output is the broker's append time of the last row
   that changed a (window, level) to its final value; "after the input" is
   that minus step 1's time (the second stage's lag, Streams' repartition
   sub-topology's).
3. Meanwhile every 100 ms: VmHWM and utime+stime of each process from
   /proc; CPU per million records = their sum at the end / (N / 1e6).
4. Internal topics, after the run (TopicSizes: the Admin client's
   DescribeLogDirs, the partitions' log segment bytes, and their end
   offsets): Streams' APP-*-repartition and APP-*-changelog topics; weir's
   __weir_offsets-G-* topics, and what its offsets topic __weir_offsets
   (where weir checkpoints its aggregates and positions, the changelog's
   counterpart) grew by during the run. Bytes per input record = bytes / N.
5. Check: the last row per (window, level) in the output (by offset; a key
   lives in one partition) against the reference: "ok", or MISMATCH with
   how many (window, level)s differ and the sum of the last rows' counts
   against N. Then SIGTERM to every process, which must end within 60 s.

Results: one JSON line per run in OUTDIR/agg-groups.jsonl, each process's
stderr in OUTDIR/agg-groups-logs/, a markdown table on stdout. Exits 1
(after the table) when a run's output is wrong, or a process exited early
or did not stop on SIGTERM.
"""

import datetime
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

WEIR, JAR, WORK, OUT = sys.argv[1:5]
BROKERS = os.environ["WEIR_BROKERS"]
N = int(os.environ.get("N", "1000000"))
HOSTS = int(os.environ.get("HOSTS", "120"))
TOOLS = os.environ.get("TOOLS", "streams weir").split()
INSTANCES = [int(i) for i in os.environ.get("INSTANCES", "1 3").split()]
# Each a space-separated list: count alone, or count, sum and max of bytes.
AGGS = [a.split(",") for a in os.environ.get("AGGS", "count count,sum,max").split()]
WINDOW_S = int(os.environ.get("WINDOW", "60"))
GRACE_S = int(os.environ.get("GRACE", "600"))
SPAN_S = int(os.environ.get("SPAN", "600"))
COMMIT_MS = int(os.environ.get("COMMIT_MS", "1000"))
EMIT = os.environ.get("EMIT", "updates")
EOS = os.environ.get("GUARANTEE", "alos") == "eos"
TIMEOUT = float(os.environ.get("TIMEOUT", "900"))
QUIET = float(os.environ.get("QUIET", "15"))
STREAMS_JAVA_OPTS = os.environ.get("STREAMS_JAVA_OPTS", "").split()
PARTITIONS = 12
LEVELS = ["INFO", "DEBUG", "WARN", "ERROR", "FATAL"]
FIELD = "/bytes"
CLK_TCK = os.sysconf("SC_CLK_TCK")
RUN = str(int(time.time()))
ENV = dict(os.environ, WEIR_BROKERS=BROKERS)
WINDOW_MS, GRACE_MS, SPAN_MS = WINDOW_S * 1000, GRACE_S * 1000, SPAN_S * 1000
BASE = (int(time.time() * 1000) // 60000 - 1) * 60000 - SPAN_MS
# The closing records' time, and the first window start outside the reference.
CLOSER_TS = BASE + SPAN_MS + WINDOW_MS + GRACE_MS + 1000
CLOSER_WINDOW = CLOSER_TS // WINDOW_MS * WINDOW_MS


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def weir(*args):
    return subprocess.run([WEIR, *args], check=True, capture_output=True, text=True, env=ENV)


def now_ms():
    return time.time() * 1000


def rfc3339(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def level_of(i):
    h = ((i * 2654435761) & 0xFFFFFFFF) % 100
    return LEVELS[0 if h < 60 else 1 if h < 80 else 2 if h < 92 else 3 if h < 98 else 4]


def line(i, host, level, ts, nbytes):
    value = ('{"host":"h%03d","level":"%s","bytes":%d,"service":"svc-%02d","status":%d,"path":"/api/v1/items/%07d"}'
             % (host, level, nbytes, host % 17, 200 + (i % 7 == 0) * 300, i % 10000000))
    return '{"key":"h%03d","value":%s,"partition":%d,"timestamp":%d}\n' % (
        host, json.dumps(value), host % PARTITIONS, ts)


def produce(topic, lines):
    p = subprocess.Popen([WEIR, "produce", "-q", "-t", topic, "--format", "json"], stdin=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=ENV)
    for chunk in lines:
        p.stdin.write(chunk)
    p.stdin.close()
    err = p.stderr.read()
    if p.wait() != 0:
        sys.exit("weir produce failed: " + err)


def fill(topic):
    """Writes the N records to topic; returns the reference:
    {(window start RFC 3339, level): [count, sum, max, min]} of bytes."""
    ref = {}

    def lines():
        batch = []
        for i in range(N):
            host, ts, nbytes, level = (i * 7919) % HOSTS, BASE + i * SPAN_MS // N, (i * 37) % 10007, level_of(i)
            key = (rfc3339(ts // WINDOW_MS * WINDOW_MS), level)
            r = ref.get(key)
            if r is None:
                ref[key] = [1, nbytes, nbytes, nbytes]
            else:
                r[0] += 1
                r[1] += nbytes
                if nbytes > r[2]:
                    r[2] = nbytes
                if nbytes < r[3]:
                    r[3] = nbytes
            batch.append(line(i, host, level, ts, nbytes))
            if len(batch) == 10000:
                yield "".join(batch)
                batch = []
        yield "".join(batch)

    weir("topics", "create", topic, "--partitions", str(PARTITIONS))
    started = time.time()
    produce(topic, lines())
    log("== %s holds %d records (%.0f s to write), %d (window, level)s" % (topic, N, time.time() - started, len(ref)))
    return ref


def closers(topic):
    """One record per partition and level past every window of the data."""
    produce(topic, ["".join(line(N + j, p, level, CLOSER_TS, 0)
                            for j, (p, level) in enumerate((p, lv) for p in range(PARTITIONS) for lv in LEVELS))])
    return PARTITIONS * len(LEVELS)


class Proc:
    """A tool's process, its stdout and stderr in files, and its /proc samples."""

    def __init__(self, name, argv):
        self.out_path = os.path.join(WORK, name + ".out")
        self.err_path = os.path.join(OUT, "agg-groups-logs", name + ".err")
        self.started = now_ms()
        env = dict(ENV, RUST_LOG="warn,weir=info,rskafka=off")
        self.proc = subprocess.Popen(argv, stdout=open(self.out_path, "w"), stderr=open(self.err_path, "w"),
                                     stdin=subprocess.DEVNULL, env=env)
        self.hwm_kib = 0
        self.cpu_s = 0.0

    def sample(self):
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for text in f:
                    if text.startswith("VmHWM:"):
                        self.hwm_kib = max(self.hwm_kib, int(text.split()[1]))
            with open("/proc/%d/stat" % self.proc.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
                self.cpu_s = (int(fields[11]) + int(fields[12])) / CLK_TCK
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass

    def alive(self):
        return self.proc.poll() is None

    def stderr(self):
        with open(self.err_path) as f:
            return f.read()

    def stop(self, timeout):
        """SIGTERM; the exit status, or None when it had to be killed."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


class Position:
    """The committed position of a group in the input topic."""

    def __init__(self, tool, group, topic):
        self.tool, self.group, self.topic = tool, group, topic
        self.value, self.at = 0, now_ms()
        self.poller = None
        if tool == "streams":
            self.poller = subprocess.Popen(
                ["java", "-Xmx64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", JAR,
                 "weir.bench.GroupPosition", "--brokers", BROKERS, "--group", group, "--topic", topic,
                 "--interval-ms", "100"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.value = int(self.poller.stdout.readline().split()[1])
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for text in self.poller.stdout:
            ms, value = text.split()
            self.at, self.value = float(ms), int(value)

    def poll(self):
        if self.tool == "streams":
            return self.value
        r = subprocess.run([WEIR, "offsets", "show", "-g", self.group, "-t", self.topic, "--output", "json"],
                           capture_output=True, text=True, env=ENV)
        if r.returncode == 0:
            value = sum(p.get("committed") or 0 for p in json.loads(r.stdout)["partitions"])
            if value != self.value:
                self.value, self.at = value, now_ms()
        return self.value

    def close(self):
        if self.poller:
            self.poller.stdin.close()
            try:
                self.poller.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.poller.kill()
                self.poller.wait()


def agg_names(aggs):
    return ["count" if a == "count" else "%s(json:%s)" % (a, FIELD) for a in aggs]


def command(tool, aggs, topic, out, group, i):
    if tool == "streams":
        argv = ["java", *STREAMS_JAVA_OPTS, "-cp", JAR, "weir.bench.StreamsAggGroups", "--brokers", BROKERS,
                "--from", topic, "--to", out, "--app-id", group,
                "--state-dir", os.path.join(WORK, "state", "%s-%d" % (group, i)),
                "--window-ms", str(WINDOW_MS), "--grace-ms", str(GRACE_MS), "--group-by", "/level",
                "--agg", ",".join(aggs), "--field", FIELD, "--commit-interval-ms", str(COMMIT_MS)]
        if EMIT == "final":
            argv.append("--suppress")
        if EOS:
            argv.append("--exactly-once")
        return argv
    if aggs == ["count"]:
        argv = [WEIR, "count", "-t", topic, "--by", "json:/level"]
    else:
        argv = [WEIR, "agg", "-t", topic, "--by", "json:/level"]
        for a in aggs:
            argv += ["--agg", a if a == "count" else "%s:json:%s" % (a, FIELD)]
    argv += ["--window", "%ds" % WINDOW_S, "--grace", "%ds" % GRACE_S, "--emit", EMIT, "-g", group,
             "--to-topic", out, "--json", "--commit-interval", "%dms" % COMMIT_MS]
    if EOS:
        argv.append("--exactly-once")
    return argv


def read_output(topic, names, append_times=False):
    """{(window start, key): (values, time of its last change)} from the
    output topic's rows in offset order, and the number of rows. While
    waiting, read with `weir consume` (no times); at the end with TopicDump,
    whose times are the broker's append times (`weir consume` shows a
    record's create time even on a LogAppendTime topic)."""
    if append_times:
        argv = ["java", "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", JAR, "weir.bench.TopicDump",
                "--brokers", BROKERS, "--topic", topic]
    else:
        argv = [WEIR, "consume", "-q", "-t", topic, "-e", "-f", "{partition} {offset} 0 - {value}"]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=ENV)
    last, rows = {}, 0
    for text in p.stdout:
        _partition, _offset, ts, kind, value = text.rstrip("\n").split(" ", 4)
        if append_times and kind != "LogAppendTime":
            sys.exit("%s has %s timestamps, not LogAppendTime" % (topic, kind))
        row = json.loads(value)
        rows += 1
        key = (row["window_start"], row["key"])
        values = tuple(None if row.get(n) is None else float(row[n]) for n in names)
        if key not in last or last[key][0] != values:
            last[key] = (values, int(ts))
    if p.wait() != 0:
        sys.exit("reading %s failed" % topic)
    return last, rows


def compare(last, ref, aggs):
    """(differing (window, level)s, sum of the last rows' counts) over the
    reference's keys and any others before the closing records' window."""
    pick = {"count": 0, "sum": 1, "max": 2, "min": 3}
    want = {k: tuple(float(v[pick[a]]) for a in aggs) for k, v in ref.items()}
    closer = rfc3339(CLOSER_WINDOW)
    keys = set(want) | {k for k in last if k[0] < closer}
    wrong = sum(1 for k in keys if k not in last or k not in want or last[k][0] != want[k])
    c = aggs.index("count") if "count" in aggs else None
    counted = sum(last[k][0][c] or 0 for k in last if k[0] < closer) if c is not None else 0
    return wrong, int(counted)


def topic_sizes(*prefixes):
    """{topic: (bytes, records, records deleted from the front)} of the topics
    whose names start with a prefix."""
    r = subprocess.run(["java", "-Xmx64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", JAR,
                        "weir.bench.TopicSizes", "--brokers", BROKERS, *prefixes],
                       capture_output=True, text=True, check=True)
    sizes = {}
    for text in r.stdout.splitlines():
        topic, nbytes, records, start = text.split()
        sizes[topic] = (int(nbytes), int(records), int(start))
    return sizes


def internal(tool, group, before, after):
    """[bytes, records, records purged] the run wrote to its shuffle topics
    (Streams' repartition, weir's __weir_offsets-G-*) and its state topics
    (Streams' changelogs, weir's offsets topic's growth)."""
    shuffle, state = [0, 0, 0], [0, 0, 0]
    for topic, sizes in after.items():
        if tool == "streams" and topic.startswith(group + "-"):
            into = shuffle if topic.endswith("-repartition") else state if topic.endswith("-changelog") else None
        elif tool == "weir" and topic.startswith("__weir_offsets-%s-" % group):
            into = shuffle
        elif tool == "weir" and topic == "__weir_offsets":
            into = state
            sizes = [a - b for a, b in zip(sizes, before.get(topic, (0, 0, 0)))]
        else:
            into = None
        if into is not None:
            for j in range(3):
                into[j] += sizes[j]
    return shuffle, state


def measure(tool, aggs, instances, topic, ref):
    name = "count" if aggs == ["count"] else "-".join(aggs)
    group = "bench-aggg-%s-%s-%d-%s" % (tool, name, instances, RUN)
    out = group + "-out"
    weir("topics", "create", out, "--partitions", str(PARTITIONS), "--config", "message.timestamp.type=LogAppendTime")
    r = dict(tool=tool, aggs=aggs, instances=instances, records=N, emit=EMIT, group=group,
             command=" ".join(command(tool, aggs, topic, out, group, 0)))
    log("   %s x%d: %s" % (tool, instances, r["command"]))
    before = topic_sizes("__weir_offsets") if tool == "weir" else {}
    pos = Position(tool, group, topic)
    procs = [Proc("%s-%d" % (group, i), command(tool, aggs, topic, out, group, i)) for i in range(instances)]
    t0 = min(p.started for p in procs)
    deadline = time.time() + TIMEOUT
    failed = None

    def tick():
        for p in procs:
            p.sample()
        dead = [p for p in procs if not p.alive()]
        if dead:
            return "%s exited with %s:\n%s" % (tool, dead[0].proc.returncode, dead[0].stderr()[-3000:])
        if time.time() > deadline:
            return "%s: position %d after %.0f s" % (tool, pos.value, TIMEOUT)
        time.sleep(0.1)
        return None

    def until(target):
        last_poll = 0
        while True:
            if time.time() - last_poll >= (0.1 if tool == "streams" else 0.2):
                last_poll = time.time()
                if pos.poll() >= target:
                    return pos.at
            err = tick()
            if err:
                return err

    done = until(N)
    if isinstance(done, str):
        failed = done
    else:
        r["input_s"] = (done - t0) / 1000
        r["records_per_sec"] = N / max(r["input_s"], 1e-3)
        if EMIT == "final":
            extra = closers(topic)
            moved = until(N + extra)
            failed = moved if isinstance(moved, str) else None
    # The output: complete, or quiet for QUIET s.
    names = agg_names(aggs)
    last, rows, wrong, counted = {}, 0, None, 0
    changed = time.time()
    while failed is None:
        got, n = read_output(out, names)
        if n != rows:
            changed = time.time()
        last, rows = got, n
        wrong, counted = compare(last, ref, aggs)
        if wrong == 0 or time.time() - changed > QUIET:
            break
        for _ in range(10):
            failed = failed or tick()
    for p in procs:
        p.sample()
    if failed is None:
        # The same rows, with the broker's append times.
        last, rows = read_output(out, names, append_times=True)
        wrong, counted = compare(last, ref, aggs)
    r["cpu_s"] = sum(p.cpu_s for p in procs)
    r["cpu_s_per_m"] = r["cpu_s"] / (N / 1e6)
    r["rss_sum_mib"] = sum(p.hwm_kib for p in procs) / 1024
    r["rss_max_mib"] = max(p.hwm_kib for p in procs) / 1024
    r["rows"] = rows
    r["keys_out"] = len(last)
    r["keys_ref"] = len(ref)
    if failed is None:
        r["wrong_keys"] = wrong
        r["counted"] = counted
        r["check"] = "ok" if wrong == 0 else "MISMATCH"
        if wrong == 0:
            r["complete_s"] = (max(t for _, t in last.values()) - t0) / 1000
            r["after_input_s"] = r["complete_s"] - r["input_s"]
        else:
            log("!! %s x%d: %d of %d (window, level)s differ; the last rows count %d of %d records"
                % (tool, instances, wrong, len(ref), counted, N))
    else:
        r["check"] = "FAILED"
        log("!! " + failed)
    pos.close()
    # Clean stop: SIGTERM ends each process (Streams: close() in its hook, exit 143).
    statuses = [p.stop(60) for p in procs]
    r["sigterm_exit"] = statuses
    if tool == "weir":
        # How many members read records (the summary weir prints on exit):
        # on a short run the first member may read everything before the
        # others join, and then nothing crossed members.
        counted = [re.search(r"^weir: (?:counted|aggregated) (\d+) records", p.stderr(), re.M) for p in procs]
        r["members_read"] = sum(1 for m in counted if m and int(m.group(1)) > 0)
    r["clean_stop"] = all(s in (0, 143) for s in statuses)
    shuffle, state = internal(tool, group, before, topic_sizes(group + "-", "__weir_offsets"))
    r.update(shuffle_bytes=shuffle[0], shuffle_records=shuffle[1], shuffle_purged=shuffle[2],
             state_bytes=state[0], state_records=state[1],
             shuffle_bytes_per_record=shuffle[0] / N, state_bytes_per_record=state[0] / N)
    for t in topic_sizes(group + "-", "__weir_offsets-%s-" % group):
        if t != out:
            weir("topics", "delete", t)
    weir("topics", "delete", out)
    return r


def fmt(v, spec):
    return spec % v if v is not None else "–"


def main():
    os.makedirs(os.path.join(OUT, "agg-groups-logs"), exist_ok=True)
    jsonl = open(os.path.join(OUT, "agg-groups.jsonl"), "w")
    results = []
    shared = None
    for aggs in AGGS:
        for tool in TOOLS:
            for instances in INSTANCES:
                if EMIT == "final" or shared is None:
                    # With EMIT=final each run appends its closing records.
                    topic = "bench-aggg-in-%s-%d" % (RUN, len(results))
                    shared = (topic, fill(topic))
                topic, ref = shared
                r = measure(tool, aggs, instances, topic, ref)
                jsonl.write(json.dumps(r) + "\n")
                jsonl.flush()
                results.append(r)
                log("   %s x%d %s: %s rec/s, complete %s s, CPU %.1f s/M, RSS %.0f/%.0f MiB, "
                    "internal %.1f + %.1f B/rec, %s"
                    % (tool, instances, ",".join(aggs), fmt(r.get("records_per_sec"), "%.0f"),
                       fmt(r.get("complete_s"), "%.2f"), r["cpu_s_per_m"], r["rss_sum_mib"], r["rss_max_mib"],
                       r["shuffle_bytes_per_record"], r["state_bytes_per_record"], r["check"]))
                if EMIT == "final":
                    weir("topics", "delete", topic)
    if shared and EMIT != "final":
        weir("topics", "delete", shared[0])

    print()
    print("| aggregates | tool | instances | records/s | s to the input's end | s to the complete output "
          "(after the input's end) | CPU s per M records | peak RSS MiB, sum (max) "
          "| shuffle B/record (records) | state B/record (records) | rows out | check |")
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    for r in results:
        tool = "Kafka Streams" if r["tool"] == "streams" else "weir"
        check = r["check"]
        if r.get("members_read") is not None and r["instances"] > 1:
            check += " (%d of %d members read records)" % (r["members_read"], r["instances"])
        if check == "MISMATCH":
            check += ": %d of %d (window, level)s, last rows count %d of %d" % (
                r["wrong_keys"], r["keys_ref"], r["counted"], N)
        print("| %s | %s | %d | %s | %s | %s (%s) | %.1f | %.0f (%.0f) | %.2f (%d) | %.2f (%d) | %d | %s |" % (
            "+".join(r["aggs"]), tool, r["instances"], fmt(r.get("records_per_sec"), "%.0f"),
            fmt(r.get("input_s"), "%.2f"), fmt(r.get("complete_s"), "%.2f"), fmt(r.get("after_input_s"), "%.2f"),
            r["cpu_s_per_m"], r["rss_sum_mib"], r["rss_max_mib"], r["shuffle_bytes_per_record"],
            r["shuffle_records"], r["state_bytes_per_record"], r["state_records"], r["rows"], check))
    if any(r["check"] != "ok" or not r["clean_stop"] for r in results):
        sys.exit(1)


main()
