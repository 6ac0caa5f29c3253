#!/usr/bin/env python3
"""Groups through the broker's coordinator, measured (`just bench`).

Usage: groups.py WEIR OUT.md   (WEIR_BROKERS names the cluster)

1. Takeover: three `weir consume -g` members read a 12-partition topic that
   a producer fills at a steady rate (every record's value is its send time
   in ms). Each member's output lines are stamped with the time they were
   read. For a SIGKILL of a member, a SIGTERM of a member, and a member
   joining, the outage is the longest time any partition went unread
   around the event (from 1 s before to 12 s after it): how long the
   event stopped the reading of some partition.
2. Scale-out: the records/s of one member and of three members reading
   the same 3,000,000 records, until the group's commits reach the end
   (joining, and commits every second, included), on this machine.
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

WEIR, OUT = sys.argv[1], sys.argv[2]
PARTITIONS = 12
RATE = 2000  # records/s while measuring takeover
SESSION = "6s"
MEMBER_FLAGS = ["--session-timeout", SESSION, "--heartbeat-interval", "500ms", "--commit-interval", "1s"]


def weir(*args, **kw):
    return subprocess.run([WEIR, *args], check=True, capture_output=True, text=True, **kw)


def topic(name):
    weir("topics", "create", name, "--partitions", str(PARTITIONS))
    return name


def feed(name, stop):
    """Writes RATE records/s, keyed round the partitions, value = send ms."""
    p = subprocess.Popen([WEIR, "produce", "-t", name, "-K", ":", "--linger", "1ms"],
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    i = 0
    while not stop.is_set():
        now = int(time.time() * 1000)
        p.stdin.write("".join("k%d:%d\n" % (i + j, now) for j in range(RATE // 50)))
        p.stdin.flush()
        i += RATE // 50
        time.sleep(0.02)
    p.stdin.close()
    p.wait()


class Member:
    """A `weir consume -g` member whose output lines are stamped on read."""

    def __init__(self, name, group, dir):
        self.reads = []  # (read ms, partition)
        self.proc = subprocess.Popen(
            [WEIR, "consume", "-t", name, "-g", group, "-f", "{partition}\\n", *MEMBER_FLAGS],
            stdout=subprocess.PIPE, stderr=open(os.path.join(dir, "%s.err" % id(self)), "w"), text=True)
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        for line in self.proc.stdout:
            self.reads.append((time.time() * 1000, int(line)))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def end(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()
        self.thread.join()


def outage(members, at, window=12000):
    """The longest time any partition went unread from 1 s before `at`
    (ms) to `window` ms after it: the pause the event caused."""
    reads = sorted(r for m in members for r in m.reads)
    worst = 0.0
    for p in range(PARTITIONS):
        times = [t for t, q in reads if q == p and at - 1000 <= t <= at + window]
        if not any(t > at for t in times):
            return float("inf")
        times = [min(times[0], at)] + times
        worst = max(worst, max(b - a for a, b in zip(times, times[1:])))
    return worst / 1000


def takeover(dir):
    results = {}
    for event in ("SIGKILL", "SIGTERM", "join"):
        samples = []
        for rnd in range(3):
            name = topic("bench-groups-%s-%d-%d" % (event.lower(), rnd, os.getpid()))
            stop = threading.Event()
            producer = threading.Thread(target=feed, args=(name, stop))
            producer.start()
            group = name + "-g"
            members = [Member(name, group, dir) for _ in range(3)]
            time.sleep(8)  # joined and balanced, reading at the rate
            at = time.time() * 1000
            if event == "SIGKILL":
                members[0].signal(signal.SIGKILL)
            elif event == "SIGTERM":
                members[0].signal(signal.SIGTERM)
            else:
                members.append(Member(name, group, dir))
            time.sleep(15)
            stop.set()
            producer.join()
            for m in members:
                m.end()
            samples.append(outage(members, at))
            weir("topics", "delete", name)
        results[event] = samples
    return results


def committed(group):
    """The sum of `group`'s committed offsets in weir's offsets topic."""
    out = subprocess.run([WEIR, "offsets", "show", "-g", group, "--output", "json"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return 0
    return sum(p.get("committed") or 0 for p in json.loads(out.stdout)["partitions"])


def scale_out(dir):
    records = 3_000_000
    name = topic("bench-groups-scale-%d" % os.getpid())
    weir("bench", "produce", "-t", name, "-n", str(records), "--size", "100")
    rates = {}
    for n in (1, 3):
        group = "%s-%d" % (name, n)
        start = time.time()
        procs = [subprocess.Popen([WEIR, "consume", "-t", name, "-g", group, *MEMBER_FLAGS],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(n)]
        while committed(group) < records:
            time.sleep(0.2)
        rates[n] = records / (time.time() - start)
        for p in procs:
            p.send_signal(signal.SIGTERM)
            p.wait()
    weir("topics", "delete", name)
    return rates


def main():
    with tempfile.TemporaryDirectory() as dir:
        take = takeover(dir)
        rates = scale_out(dir)
    lines = [
        "| event (3 members, 12 partitions, %d records/s, session timeout %s) | longest time a partition went unread, s (3 runs) | median |" % (RATE, SESSION),
        "|---|---|--:|",
    ]
    for event, samples in take.items():
        lines.append("| %s | %s | %.2f |" % (event, ", ".join("%.2f" % s for s in samples), statistics.median(samples)))
    lines += [
        "",
        "| members reading 3,000,000 records of 100 B | records/s until the commits reach the end (joins included) |",
        "|---|--:|",
    ]
    for n, r in rates.items():
        lines.append("| %d | %.0f |" % (n, r))
    text = "\n".join(lines) + "\n"
    open(OUT, "w").write(text)
    print(text)


main()
