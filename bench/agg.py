#!/usr/bin/env python3
"""The measuring half of bench/agg.sh: weir agg against Kafka Streams.

Usage: agg.py WEIR STREAMS_JAR WORKDIR OUTDIR   (WEIR_BROKERS names the broker;
the settings come from the environment, as bench/agg.sh documents them)

For each number of distinct keys K, an input topic of 6 partitions gets N
records keyed k0000000..: ~100-byte JSON values with the key and a numeric
field "bytes", event timestamps spread evenly over SPAN seconds ending a
minute before now. Record i has key (i * 7919) % K (so every key appears,
and a window of the span holds min(K, records in it) distinct keys),
bytes (i * 37) % 10007, and goes to partition (key index % 6).

Then each tool, in turn, from a fresh group, state and output topic:

1. Throughput. Started at t0; done when its committed position in the input
   (the sum over partitions) reaches N: Streams' consumer group, read by
   GroupPosition (the Admin client's OffsetFetch, one JVM for the whole
   run); weir's, `weir offsets show -g G`. records/s = N / that time, so it
   includes start-up, the group join and up to one commit interval.
   Sampled every 100 ms meanwhile: VmHWM and CPU time from /proc/PID
   (peak RSS and user+system CPU at the end), and the first output record
   (Streams logs the time it hands the first to its sink; weir: the first
   byte of its --json stdout).
2. The output topic is read back (read_committed): rows, and the sum of
   their counts and sums, against what the tool's windows that have closed
   should hold (Streams closes a window per partition once that partition's
   stream time reaches its end plus the grace; weir once that holds in every
   partition). With EMIT=updates only the rows are reported.
3. Restore. The caught-up process is SIGKILLed, EXTRA more records are
   appended (timestamps continuing), and the same command is started again
   (same group, state dir kept unless STREAMS_WIPE_STATE=1). Restore time:
   from the restart until its committed position moves past N, i.e. it has
   processed new records again and committed them (up to one commit
   interval of it is the commit's wait). Streams also logs when it
   processed its first record and how many changelog records it restored.
   With STATIC=1 weir runs as a static member (--group-instance-id), so
   the restart takes its partitions back at once instead of waiting out
   the killed process's session.
   After it has caught up with the EXTRA records it is stopped with
   SIGTERM, which must end it cleanly within 60 s.

Results: one JSON line per tool and K in OUTDIR/agg.jsonl, each process's
stderr in OUTDIR/agg-logs/, a markdown table on stdout. Exits 1 (after the
table) when a tool's rows differ from its closed windows or a SIGTERM did
not stop it cleanly.
"""

import datetime
import json
import os
import signal
import subprocess
import sys
import threading
import time

WEIR, JAR, WORK, OUT = sys.argv[1:5]
BROKERS = os.environ["WEIR_BROKERS"]
N = int(os.environ.get("N", "1000000"))
KEYS = [int(k) for k in os.environ.get("KEYS", "100000 1000000").split()]
TOOLS = os.environ.get("TOOLS", "weir streams").split()
WINDOW_S = int(os.environ.get("WINDOW", "60"))
GRACE_S = int(os.environ.get("GRACE", "0"))
SPAN_S = int(os.environ.get("SPAN", "600"))
COMMIT_MS = int(os.environ.get("COMMIT_MS", "1000"))
EMIT = os.environ.get("EMIT", "final")
EOS = os.environ.get("GUARANTEE", "alos") == "eos"
EXTRA = int(os.environ.get("EXTRA", str(max(1000, N // 100))))
TIMEOUT = float(os.environ.get("TIMEOUT", "900"))
WEIR_AGG = os.environ.get("WEIR_AGG", "agg")
WEIR_BY = os.environ.get("WEIR_BY", "json:/key")
STREAMS_JAVA_OPTS = os.environ.get("STREAMS_JAVA_OPTS", "").split()
WIPE = os.environ.get("STREAMS_WIPE_STATE", "0") == "1"
RETENTION_MS = os.environ.get("STREAMS_RETENTION_MS", "")
STATIC = os.environ.get("STATIC", "0") == "1"
PARTITIONS = 6
FIELD = "/bytes"
CLK_TCK = os.sysconf("SC_CLK_TCK")
RUN = str(int(time.time()))
ENV = dict(os.environ, WEIR_BROKERS=BROKERS)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def weir(*args, **kw):
    return subprocess.run([WEIR, *args], check=True, capture_output=True, text=True, env=ENV, **kw)


def now_ms():
    return time.time() * 1000


# The input: record i of a run's records.
WINDOW_MS, GRACE_MS, SPAN_MS = WINDOW_S * 1000, GRACE_S * 1000, SPAN_S * 1000
BASE = (int(now_ms()) // 60000 - 1) * 60000 - SPAN_MS


def record(i, k):
    key = (i * 7919) % k
    return key, BASE + i * SPAN_MS // N, (i * 37) % 10007


def fill(topic, k, start, count):
    """Appends records start..start+count-1 to topic with `weir produce`."""
    p = subprocess.Popen([WEIR, "produce", "-q", "-t", topic, "--format", "json"], stdin=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=ENV)
    out = p.stdin
    for i in range(start, start + count):
        key, ts, nbytes = record(i, k)
        # ~100 bytes: the key, the summed field and some fields a log line has.
        value = ('{"key":"k%07d","bytes":%d,"service":"svc-%02d","status":%d,"path":"/api/v1/items/%07d"}'
                 % (key, nbytes, key % 17, 200 + (i % 7 == 0) * 300, key))
        out.write('{"key":"k%07d","value":%s,"partition":%d,"timestamp":%d}\n'
                  % (key, json.dumps(value), key % PARTITIONS, ts))
    out.close()
    err = p.stderr.read()
    if p.wait() != 0:
        sys.exit("weir produce failed: " + err)


def expected(k, tool):
    """(rows, sum of counts, sum of sums) of the windows the tool has closed
    once it has read the first N records (final rows only)."""
    last = [None] * PARTITIONS
    for i in range(N):
        key, ts, _ = record(i, k)
        last[key % PARTITIONS] = ts  # timestamps increase with i
    # Streams: per partition (a task's stream time); weir: every partition with records.
    watermark = [t - GRACE_MS if t is not None else None for t in last]
    floor = min(w for w in watermark if w is not None)
    rows, counts, sums = set(), 0, 0
    for i in range(N):
        key, ts, nbytes = record(i, k)
        start = ts // WINDOW_MS * WINDOW_MS
        closed_by = watermark[key % PARTITIONS] if tool == "streams" else floor
        if start + WINDOW_MS <= closed_by:
            rows.add((start, key))
            counts += 1
            sums += nbytes
    return len(rows), counts, sums


def read_output(topic):
    """(rows, sum of counts, sum of sums) in the output topic."""
    p = subprocess.Popen([WEIR, "consume", "-q", "-t", topic, "-e", "-f", "{value}"], stdout=subprocess.PIPE, text=True, env=ENV)
    rows = counts = sums = 0
    for line in p.stdout:
        row = json.loads(line)
        rows += 1
        counts += row["count"]
        s = row.get("sum", row.get("sum(json:%s)" % FIELD))
        sums += s or 0
    if p.wait() != 0:
        sys.exit("reading %s failed" % topic)
    return rows, counts, sums


class Proc:
    """A tool's process, its stdout and stderr in files, and its /proc samples."""

    def __init__(self, name, argv):
        self.name = name
        self.out_path = os.path.join(WORK, name + ".out")
        # Kept after the run (the rows on stdout are not).
        self.err_path = os.path.join(OUT, "agg-logs", name + ".err")
        self.started = now_ms()
        # weir: its default log filter, and the debug line that says when
        # a restart has read its state back ("counts restored").
        env = dict(ENV, RUST_LOG="warn,weir=info,weir::aggregate=debug,rskafka=off")
        self.proc = subprocess.Popen(argv, stdout=open(self.out_path, "w"), stderr=open(self.err_path, "w"),
                                     stdin=subprocess.DEVNULL, env=env)
        self.hwm_kib = 0
        self.cpu_s = 0.0

    def sample(self):
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        self.hwm_kib = max(self.hwm_kib, int(line.split()[1]))
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

    def weir_event_ms(self, message):
        """The time (ms since the epoch) of weir's first log line whose
        message is `message` (`TIME LEVEL MESSAGE FIELDS...`), or None."""
        for line in self.stderr().splitlines():
            fields = line.split()
            if len(fields) > 2 and (" ".join(fields[2:]) + " ").startswith(message + " "):
                stamp = fields[0].rstrip("Z")
                t = datetime.datetime.fromisoformat(stamp).replace(tzinfo=datetime.timezone.utc)
                return t.timestamp() * 1000
        return None

    def events(self, what):
        """Streams' log lines `streams-agg: WHAT MS ...`, split."""
        return [line.split()[2:] for line in self.stderr().splitlines()
                if line.startswith("streams-agg: " + what + " ")]

    def first_output_ms(self, tool):
        if tool == "streams":
            ev = self.events("first-output")
            return float(ev[0][0]) if ev else None
        return self.out_first if os.path.getsize(self.out_path) > 0 else None

    def kill(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


class Position:
    """The committed position of a tool's group in the input topic."""

    def __init__(self, tool, group, topic):
        self.tool, self.group, self.topic = tool, group, topic
        self.value, self.at = 0, now_ms()
        self.poller = None
        if tool == "streams":
            # One small JVM for the whole measurement, started (and warm)
            # before the application.
            self.poller = subprocess.Popen(
                ["java", "-Xmx64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", JAR,
                 "weir.bench.GroupPosition", "--brokers", BROKERS, "--group", group, "--topic", topic,
                 "--interval-ms", "100"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.value = int(self.poller.stdout.readline().split()[1])
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()

    def _read(self):
        for line in self.poller.stdout:
            ms, value = line.split()
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


def command(tool, topic, out, group):
    if tool == "streams":
        argv = ["java", *STREAMS_JAVA_OPTS, "-jar", JAR, "--brokers", BROKERS, "--from", topic, "--to", out,
                "--app-id", group, "--state-dir", os.path.join(WORK, "state", group),
                "--window-ms", str(WINDOW_MS), "--grace-ms", str(GRACE_MS), "--field", FIELD,
                "--commit-interval-ms", str(COMMIT_MS), "--records", str(N)]
        if RETENTION_MS:
            argv += ["--retention-ms", RETENTION_MS]
        if EMIT == "updates":
            argv.append("--no-suppress")
        if EOS:
            argv.append("--exactly-once")
        return argv
    argv = [WEIR, WEIR_AGG, "-t", topic, "--by", WEIR_BY]
    if WEIR_AGG == "agg":
        argv += ["--agg", "count", "--agg", "sum:json:" + FIELD]
    argv += ["--window", "%ds" % WINDOW_S, "--emit", EMIT, "-g", group, "--to-topic", out, "--json",
             "--commit-interval", "%dms" % COMMIT_MS]
    if GRACE_S:
        argv += ["--grace", "%ds" % GRACE_S]
    if STATIC:
        # The same id before and after the restart, as a pod's name.
        argv += ["--group-instance-id", "bench-agg-0"]
    if EOS:
        argv.append("--exactly-once")
    return argv


def watch(proc, pos, tool, until, deadline_s):
    """Samples proc every 100 ms until pos reaches until (returns the time
    it did, ms) or the process dies or the deadline passes (exits)."""
    deadline = time.time() + deadline_s
    proc.out_first = None
    last_poll = 0
    while True:
        proc.sample()
        if proc.out_first is None and tool != "streams" and os.path.getsize(proc.out_path) > 0:
            proc.out_first = now_ms()
        if time.time() - last_poll >= (0.1 if tool == "streams" else 0.2):
            last_poll = time.time()
            if pos.poll() >= until:
                return pos.at
        if not proc.alive():
            sys.exit("!! %s exited with %s before its position reached %d (at %d):\n%s"
                     % (tool, proc.proc.returncode, until, pos.value, proc.stderr()[-4000:]))
        if time.time() > deadline:
            proc.kill(signal.SIGKILL)
            sys.exit("!! %s: position %d of %d after %.0f s; stopped" % (tool, pos.value, until, deadline_s))
        time.sleep(0.1)


def measure(tool, k, topic):
    group = "bench-agg-%s-%d-%s" % (tool, k, RUN)
    out = group + "-out"
    weir("topics", "create", out, "--partitions", str(PARTITIONS))
    argv = command(tool, topic, out, group)
    log("   %s: %s" % (tool, " ".join(argv)))
    r = dict(tool=tool, keys=k, records=N, command=" ".join(argv))

    # 1. Throughput, first output, memory, CPU.
    pos = Position(tool, group, topic)
    proc = Proc(group + "-1", argv)
    done = watch(proc, pos, tool, N, TIMEOUT)
    proc.sample()
    r["seconds"] = (done - proc.started) / 1000
    r["records_per_sec"] = N / max(r["seconds"], 1e-3)
    first = proc.first_output_ms(tool)
    r["first_output_s"] = (first - proc.started) / 1000 if first else None
    r["rss_mib"] = proc.hwm_kib / 1024
    r["cpu_s"] = proc.cpu_s
    if tool == "streams":
        ev = proc.events("all-input")
        r["own_seconds"] = (float(ev[0][0]) - proc.started) / 1000 if ev else None
        ev = proc.events("state")
        r["running_s"] = next(((float(e[0]) - proc.started) / 1000 for e in ev if e[2] == "RUNNING"), None)

    # 3a. A crash while it runs (caught up, its last commit behind it).
    proc.kill(signal.SIGKILL)
    proc.wait(30)

    # 2. What it wrote.
    rows, counts, sums = read_output(out)
    r.update(rows=rows, rows_count_sum=counts, rows_sum_sum=sums)
    if EMIT == "final":
        want = expected(k, tool)
        r["expected"] = dict(rows=want[0], count_sum=want[1], sum_sum=want[2])
        got = (rows, counts, sums if tool == "streams" or WEIR_AGG == "agg" else want[2])
        r["check"] = "ok" if got == want else "MISMATCH"
        if got != want:
            log("!! %s K=%d: the output holds %s (rows, sum of counts, sum of sums), the closed windows %s"
                % (tool, k, got, want))

    # 3b. Restart after the crash, with new records waiting.
    fill(topic, k, N, EXTRA)
    if tool == "streams" and WIPE:
        subprocess.run(["rm", "-rf", os.path.join(WORK, "state", group)], check=True)
    if pos.poll() != N:
        sys.exit("!! %s: committed position %d after the kill, not %d" % (tool, pos.value, N))
    proc = Proc(group + "-2", argv)
    moved = watch(proc, pos, tool, N + 1, TIMEOUT)
    r["restore_s"] = (moved - proc.started) / 1000
    if tool == "streams":
        ev = proc.events("first-input")
        r["restart_first_input_s"] = (float(ev[0][0]) - proc.started) / 1000 if ev else None
        ev = proc.events("restore-end")
        r["restored_records"] = sum(int(e[3]) for e in ev)
        starts = proc.events("restore-start")
        r["restore_only_s"] = ((max(float(e[0]) for e in ev) - min(float(e[0]) for e in starts)) / 1000
                               if ev and starts else 0.0)
    else:
        # After the restart: joined the group (the broker's wait for the
        # killed member's session is behind it), then its state read back
        # from the offsets topic.
        joined = proc.weir_event_ms("joined")
        restored = proc.weir_event_ms("counts restored")
        r["restart_joined_s"] = (joined - proc.started) / 1000 if joined else None
        r["restore_only_s"] = (restored - joined) / 1000 if joined and restored else None
    watch(proc, pos, tool, N + EXTRA, TIMEOUT)
    proc.sample()
    r["restart_rss_mib"] = proc.hwm_kib / 1024
    # A clean stop: SIGTERM ends it (Streams: KafkaStreams.close() in its
    # shutdown hook; the JVM then exits 143).
    stopped = now_ms()
    proc.kill(signal.SIGTERM)
    status = proc.wait(60)
    r["sigterm_s"] = (now_ms() - stopped) / 1000
    clean = status in (0, 143) and (tool != "streams" or proc.events("closed"))
    r["sigterm_exit"] = status
    if not clean:
        log("!! %s did not stop cleanly on SIGTERM (exit %s):\n%s" % (tool, status, proc.stderr()[-3000:]))
    r["clean_stop"] = bool(clean)
    pos.close()
    if tool == "streams":
        # kafka-consumer-groups, from the broker's jars, agrees: no lag.
        r["consumer_groups_lag"] = consumer_groups_lag(group)
    weir("topics", "delete", out)
    return r


def consumer_groups_lag(group):
    r = subprocess.run(["scripts/kafka.sh", "tool", "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
                        "--bootstrap-server", BROKERS, "--describe", "--group", group],
                       capture_output=True, text=True)
    lag = 0
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) >= 6 and f[0] == group and f[5].isdigit():
            lag += int(f[5])
    return lag if r.returncode == 0 else None


def fmt(v, spec):
    return spec % v if v is not None else "–"


def main():
    results = []
    os.makedirs(os.path.join(OUT, "agg-logs"), exist_ok=True)
    jsonl = open(os.path.join(OUT, "agg.jsonl"), "w")
    for k in KEYS:
        for tool in TOOLS:
            # Each tool its own input: the restore appends to it.
            topic = "bench-agg-in-%d-%s-%s" % (k, tool, RUN)
            weir("topics", "create", topic, "--partitions", str(PARTITIONS))
            started = time.time()
            fill(topic, k, 0, N)
            log("== K=%d, %s: %s holds %d records (%.0f s to write)" % (k, tool, topic, N, time.time() - started))
            r = measure(tool, k, topic)
            jsonl.write(json.dumps(r) + "\n")
            jsonl.flush()
            results.append(r)
            log("   %s K=%d: %.0f rec/s (%.2f s), first output %s s, peak RSS %.0f MiB, CPU %.2f s, %d rows %s, "
                "restore %.2f s, SIGTERM %s in %.2f s"
                % (tool, k, r["records_per_sec"], r["seconds"], fmt(r["first_output_s"], "%.2f"), r["rss_mib"],
                   r["cpu_s"], r["rows"], r.get("check", ""), r["restore_s"],
                   "clean" if r["clean_stop"] else "NOT CLEAN", r["sigterm_s"]))
            weir("topics", "delete", topic)

    names = {"weir": "weir " + WEIR_AGG, "streams": "Kafka Streams"}
    print()
    print("| keys | tool | records/s | s to the end | first output s | peak RSS MiB | CPU s | rows out | check "
          "| restore s | Streams: s to process all; after the restart: s to its first record, of which "
          "restoring s, changelog records restored |")
    print("|--:|---|--:|--:|--:|--:|--:|--:|---|--:|---|")
    for r in results:
        extra = ""
        if r["tool"] == "weir":
            extra = "after the restart: s to join, of which restoring s: %s, %s" % (
                fmt(r.get("restart_joined_s"), "%.2f"), fmt(r.get("restore_only_s"), "%.2f"))
        if r["tool"] == "streams":
            extra = "%s; %s, %.2f, %d" % (fmt(r.get("own_seconds"), "%.2f"), fmt(r.get("restart_first_input_s"), "%.2f"),
                                         r.get("restore_only_s", 0), r.get("restored_records", 0))
        print("| %d | %s | %.0f | %.2f | %s | %.0f | %.2f | %d | %s | %.2f | %s |" % (
            r["keys"], names[r["tool"]], r["records_per_sec"], r["seconds"], fmt(r["first_output_s"], "%.2f"),
            r["rss_mib"], r["cpu_s"], r["rows"], r.get("check", ""), r["restore_s"], extra))
    if any(not r["clean_stop"] or r.get("check") == "MISMATCH" for r in results):
        sys.exit(1)


main()
