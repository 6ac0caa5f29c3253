package weir.bench;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.time.Instant;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.processor.StateRestoreListener;
import org.apache.kafka.streams.state.WindowStore;

/**
 * The Kafka Streams side of bench/agg.sh: per record key and tumbling
 * event-time window, the count of the records and the sum of a numeric
 * field of their JSON values, as `weir agg -t IN --by json:/key --agg count
 * --agg sum:json:/FIELD --window W --emit final -g G --to-topic OUT` computes
 * them. The input is keyed by the group key, so the topology needs no
 * repartition topic:
 *
 * <pre>
 * stream(IN, String keys, String values)
 *   .groupByKey()
 *   .windowedBy(TimeWindows.ofSizeAndGrace(W, GRACE))
 *   .aggregate(count and sum, a RocksDB window store)
 *   .suppress(untilWindowCloses(unbounded()))      (unless --no-suppress)
 *   .toStream().map(to JSON) .to(OUT)
 * </pre>
 *
 * <pre>
 * java -jar target/streams-agg.jar --brokers H:P --from IN --to OUT --app-id ID
 *     --state-dir DIR --window-ms MS [--grace-ms MS] [--retention-ms MS] [--field /bytes]
 *     [--no-suppress] [--exactly-once] [--commit-interval-ms MS]
 *     [--progress-ms MS] [--records N]
 * </pre>
 *
 * The settings are the ones a user writes (everything else is the
 * library's default): application.id, bootstrap.servers, state.dir,
 * processing.guarantee (at_least_once, or exactly_once_v2 with
 * --exactly-once), num.stream.threads=1, and commit.interval.ms only when
 * --commit-interval-ms is given (Streams' defaults: 30 s at least once,
 * 100 ms exactly once).
 *
 * Output records: key {@code ["window start","key"]} (as weir count
 * --to-topic keys its rows), value {@code {"window_start":"…Z",
 * "window_end":"…Z","key":"k","count":N,"sum":S}}. A record whose value
 * has no number at FIELD (a JSON pointer; not JSON, missing, not a number)
 * is counted and adds nothing to the sum. With suppression each (window,
 * key) is written once, when stream time passes the window's end plus the
 * grace; without it, updates are written as the record cache flushes
 * (every commit, or when it fills).
 *
 * Progress on stderr, one line per event, each with the wall-clock time in
 * ms since the epoch, for the benchmark to read:
 * <pre>
 * streams-agg: start MS
 * streams-agg: state MS FROM TO
 * streams-agg: restore-start MS STORE PARTITION RECORDS   (changelog records to restore)
 * streams-agg: restore-end MS STORE PARTITION RECORDS
 * streams-agg: first-input MS                             (first record processed by this process)
 * streams-agg: first-output MS                            (first result handed to the sink)
 * streams-agg: all-input MS N                             (with --records N: the N-th record processed)
 * streams-agg: progress MS IN OUT                         (every --progress-ms, default 1000, while it changes)
 * streams-agg: closed MS IN OUT                           (after SIGTERM, KafkaStreams.close() returned)
 * </pre>
 */
public final class StreamsAgg {
    private String brokers = "127.0.0.1:9092";
    private String from;
    private String to;
    private String appId;
    private String stateDir;
    private long windowMs = -1;
    private long graceMs = 0;
    private long retentionMs = -1;
    private String[] field = {"bytes"};
    private boolean suppress = true;
    private boolean exactlyOnce;
    private long commitIntervalMs = -1;
    private long progressMs = 1000;
    private long records = -1;

    private final AtomicLong in = new AtomicLong();
    private final AtomicLong out = new AtomicLong();
    private final AtomicBoolean firstOutput = new AtomicBoolean();

    public static void main(String[] argv) throws Exception {
        StreamsAgg agg = new StreamsAgg();
        try {
            agg.parse(argv);
        } catch (IllegalArgumentException e) {
            System.err.println("streams-agg: " + e.getMessage());
            System.exit(2);
        }
        int status = agg.run();
        // After SIGTERM the JVM is already exiting (with 143, after the hook).
        if (status >= 0) {
            System.exit(status);
        }
    }

    private void parse(String[] argv) {
        for (int i = 0; i < argv.length; i++) {
            String flag = argv[i];
            switch (flag) {
                case "--no-suppress" -> {
                    suppress = false;
                    continue;
                }
                case "--exactly-once" -> {
                    exactlyOnce = true;
                    continue;
                }
                default -> { }
            }
            if (i + 1 >= argv.length) {
                throw new IllegalArgumentException(flag + " needs a value");
            }
            String value = argv[++i];
            switch (flag) {
                case "--brokers" -> brokers = value;
                case "--from" -> from = value;
                case "--to" -> to = value;
                case "--app-id" -> appId = value;
                case "--state-dir" -> stateDir = value;
                case "--window-ms" -> windowMs = Long.parseLong(value);
                case "--grace-ms" -> graceMs = Long.parseLong(value);
                case "--retention-ms" -> retentionMs = Long.parseLong(value);
                case "--field" -> {
                    if (!value.startsWith("/") || value.length() < 2) {
                        throw new IllegalArgumentException("--field takes a JSON pointer such as /bytes");
                    }
                    field = value.substring(1).split("/", -1);
                    for (int j = 0; j < field.length; j++) {
                        field[j] = field[j].replace("~1", "/").replace("~0", "~");
                    }
                }
                case "--commit-interval-ms" -> commitIntervalMs = Long.parseLong(value);
                case "--progress-ms" -> progressMs = Long.parseLong(value);
                case "--records" -> records = Long.parseLong(value);
                default -> throw new IllegalArgumentException("unknown flag " + flag);
            }
        }
        if (from == null || to == null || appId == null || stateDir == null || windowMs <= 0) {
            throw new IllegalArgumentException(
                    "--from, --to, --app-id, --state-dir and --window-ms are required");
        }
    }

    Properties config() {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG,
                exactlyOnce ? StreamsConfig.EXACTLY_ONCE_V2 : StreamsConfig.AT_LEAST_ONCE);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        if (commitIntervalMs >= 0) {
            p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, commitIntervalMs);
        }
        return p;
    }

    Topology topology() {
        StreamsBuilder builder = new StreamsBuilder();
        KTable<Windowed<String>, Agg> table = builder
                .stream(from, Consumed.with(Serdes.String(), Serdes.String()))
                .peek((k, v) -> {
                    long n = in.incrementAndGet();
                    if (n == 1) {
                        log("first-input " + System.currentTimeMillis());
                    }
                    if (n == records) {
                        log("all-input " + System.currentTimeMillis() + " " + n);
                    }
                })
                .groupByKey()
                .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(windowMs), Duration.ofMillis(graceMs)))
                .aggregate(Agg::new, (key, value, agg) -> agg.add(number(value, field)), store());
        if (suppress) {
            table = table.suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()));
        }
        table.toStream()
                // A window's update with no value (a deletion) never comes
                // from an aggregate without a subtractor; skipped regardless.
                .filter((k, v) -> v != null)
                .map((k, v) -> KeyValue.pair(
                        "[\"" + Instant.ofEpochMilli(k.window().start()) + "\"," + quote(k.key()) + "]",
                        row(k, v)))
                .peek((k, v) -> {
                    out.incrementAndGet();
                    if (firstOutput.compareAndSet(false, true)) {
                        log("first-output " + System.currentTimeMillis());
                    }
                })
                .to(to, Produced.with(Serdes.String(), Serdes.String()));
        return builder.build();
    }

    /**
     * The window store: RocksDB (the default), its retention the window
     * size plus the grace unless --retention-ms says otherwise. The store is
     * segmented by time (a RocksDB instance per segment of max(retention /
     * 2, 60 s)), so a backlog that moves event time fast opens and drops a
     * RocksDB instance per segment and task; a longer retention makes
     * segments longer.
     */
    private Materialized<String, Agg, WindowStore<Bytes, byte[]>> store() {
        Materialized<String, Agg, WindowStore<Bytes, byte[]>> m =
                Materialized.<String, Agg, WindowStore<Bytes, byte[]>>as("agg-store")
                        .withKeySerde(Serdes.String())
                        .withValueSerde(new AggSerde());
        return retentionMs >= 0 ? m.withRetention(Duration.ofMillis(retentionMs)) : m;
    }

    /** The exit status, or -1 when a signal stopped it (the JVM is exiting). */
    private int run() throws InterruptedException {
        log("start " + System.currentTimeMillis());
        Topology topology = topology();
        System.err.print(topology.describe());
        KafkaStreams streams = new KafkaStreams(topology, config());
        CountDownLatch stopped = new CountDownLatch(1);
        AtomicBoolean failed = new AtomicBoolean();
        streams.setStateListener((now, before) -> {
            log("state " + System.currentTimeMillis() + " " + before + " " + now);
            if (now == KafkaStreams.State.ERROR) {
                failed.set(true);
                stopped.countDown();
            }
        });
        streams.setUncaughtExceptionHandler(e -> {
            System.err.println("streams-agg: stream thread failed: " + e);
            e.printStackTrace();
            failed.set(true);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.setGlobalStateRestoreListener(new StateRestoreListener() {
            @Override
            public void onRestoreStart(TopicPartition tp, String store, long start, long end) {
                log("restore-start " + System.currentTimeMillis() + " " + store + " " + tp + " " + (end - start));
            }

            @Override
            public void onBatchRestored(TopicPartition tp, String store, long batchEnd, long n) { }

            @Override
            public void onRestoreEnd(TopicPartition tp, String store, long total) {
                log("restore-end " + System.currentTimeMillis() + " " + store + " " + tp + " " + total);
            }
        });

        // SIGTERM (and SIGINT): close the instance, which commits what was
        // processed and leaves the group, then let the JVM exit.
        AtomicBoolean closing = new AtomicBoolean();
        CountDownLatch closed = new CountDownLatch(1);
        Thread hook = new Thread(() -> {
            closing.set(true);
            stopped.countDown();
            streams.close(Duration.ofSeconds(60));
            log("closed " + System.currentTimeMillis() + " " + in.get() + " " + out.get());
            closed.countDown();
        }, "streams-agg-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);

        Thread progress = new Thread(() -> {
            long lastIn = -1;
            long lastOut = -1;
            while (true) {
                try {
                    Thread.sleep(progressMs);
                } catch (InterruptedException e) {
                    return;
                }
                long i = in.get();
                long o = out.get();
                if (i != lastIn || o != lastOut) {
                    log("progress " + System.currentTimeMillis() + " " + i + " " + o);
                    lastIn = i;
                    lastOut = o;
                }
            }
        }, "streams-agg-progress");
        progress.setDaemon(true);
        progress.start();

        streams.start();
        stopped.await();
        if (closing.get()) {
            // The hook closes the instance; the JVM exits when it returns.
            closed.await(90, TimeUnit.SECONDS);
            return -1;
        }
        Runtime.getRuntime().removeShutdownHook(hook);
        streams.close(Duration.ofSeconds(30));
        return failed.get() ? 1 : 0;
    }

    private static void log(String line) {
        System.err.println("streams-agg: " + line);
    }

    private static final JsonFactory JSON = new JsonFactory();

    /**
     * The number at pointer in the JSON value, or null when the value is
     * not JSON, has nothing there, or something other than a number.
     * Jackson's streaming parser (which kafka-streams brings): it stops at
     * the field and skips the objects and arrays on the way.
     */
    static Number number(String value, String[] pointer) {
        if (value == null) {
            return null;
        }
        try (JsonParser p = JSON.createParser(value)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                return null;
            }
            int depth = 0;
            while (true) {
                JsonToken t = p.nextToken();
                if (t == null || t == JsonToken.END_OBJECT) {
                    return null;
                }
                // t is a field name of the object at depth.
                String name = p.currentName();
                JsonToken v = p.nextToken();
                if (!name.equals(pointer[depth])) {
                    p.skipChildren();
                    continue;
                }
                if (depth == pointer.length - 1) {
                    return switch (v) {
                        case VALUE_NUMBER_INT -> p.getNumberType() == JsonParser.NumberType.BIG_INTEGER
                                ? (Number) p.getDoubleValue() : (Number) p.getLongValue();
                        case VALUE_NUMBER_FLOAT -> p.getDoubleValue();
                        default -> null;
                    };
                }
                if (v != JsonToken.START_OBJECT) {
                    return null;
                }
                depth++;
            }
        } catch (IOException e) {
            return null;
        }
    }

    private static String row(Windowed<String> k, Agg v) {
        return "{\"window_start\":\"" + Instant.ofEpochMilli(k.window().start())
                + "\",\"window_end\":\"" + Instant.ofEpochMilli(k.window().end())
                + "\",\"key\":" + quote(k.key())
                + ",\"count\":" + v.count
                + ",\"sum\":" + v.sumText() + "}";
    }

    /** s as a JSON string (null as null). */
    static String quote(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder(s.length() + 2).append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }

    /** A window's count and sum: integers summed exactly, others as doubles. */
    static final class Agg {
        long count;
        long intSum;
        double floatSum;
        boolean anyFloat;

        Agg add(Number n) {
            count++;
            if (n instanceof Long l) {
                intSum += l;
            } else if (n != null) {
                floatSum += n.doubleValue();
                anyFloat = true;
            }
            return this;
        }

        String sumText() {
            return anyFloat ? Double.toString(intSum + floatSum) : Long.toString(intSum);
        }
    }

    /** Agg as 25 bytes: count, integer sum, double sum, a flag. */
    static final class AggSerde implements Serde<Agg> {
        @Override
        public Serializer<Agg> serializer() {
            return (topic, a) -> a == null ? null
                    : ByteBuffer.allocate(25).putLong(a.count).putLong(a.intSum)
                            .putDouble(a.floatSum).put((byte) (a.anyFloat ? 1 : 0)).array();
        }

        @Override
        public Deserializer<Agg> deserializer() {
            return (topic, bytes) -> {
                if (bytes == null) {
                    return null;
                }
                ByteBuffer b = ByteBuffer.wrap(bytes);
                Agg a = new Agg();
                a.count = b.getLong();
                a.intSum = b.getLong();
                a.floatSum = b.getDouble();
                a.anyFloat = b.get() != 0;
                return a;
            };
        }

        @Override
        public void configure(Map<String, ?> configs, boolean isKey) { }

        @Override
        public void close() { }
    }
}
