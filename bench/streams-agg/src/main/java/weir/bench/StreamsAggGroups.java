package weir.bench;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
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
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindowedKStream;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.state.WindowStore;

/**
 * The Kafka Streams side of bench/agg-groups.sh: per field of the JSON
 * value (not the record key) and tumbling event-time window, the count of
 * the records, or their count, sum, min and max of a numeric field, as
 * {@code weir count -t IN --by json:/level --window W -g G --to-topic OUT}
 * (or {@code weir agg ... --agg count --agg sum:json:/bytes --agg
 * max:json:/bytes}) computes them across the members of a group. The
 * grouping key is not the record key, so Streams repartitions every record
 * through an internal topic before the aggregation:
 *
 * <pre>
 * stream(IN, String keys, String values)
 *   .groupBy((k, v) -> the string at --group-by in v, Grouped.as("by"))   (APP-by-repartition)
 *   .windowedBy(TimeWindows.ofSizeAndGrace(W, GRACE))
 *   .count(Materialized.as("counts"))                                (APP-counts-changelog)
 *     or .aggregate(count, sum, min, max, Materialized.as("aggs"))   (APP-aggs-changelog)
 *   [.suppress(untilWindowCloses(unbounded()).withName("final"))]     (APP-final-store-changelog)
 *   .toStream().map(to JSON).to(OUT)
 * </pre>
 *
 * <pre>
 * java -cp target/streams-agg.jar weir.bench.StreamsAggGroups --brokers H:P --from IN --to OUT
 *     --app-id ID --state-dir DIR --window-ms MS [--grace-ms MS] --group-by /level
 *     [--agg count|count,sum,min,max (any of them)] [--field /bytes] [--suppress]
 *     [--exactly-once] [--commit-interval-ms MS] [--progress-ms MS] [--records N]
 * </pre>
 *
 * Several processes with the same --app-id share the work (each its own
 * --state-dir, as on separate hosts). Settings as StreamsAgg: the ones a
 * user writes, one stream thread, everything else the library's default.
 *
 * Output records: key {@code ["window start","level"]}, value {@code
 * {"window_start":"…Z","window_end":"…Z","key":"level","count":N}} with
 * the other aggregates named as weir names them ({@code "sum(json:/bytes)"},
 * {@code "min(json:/bytes)"}, {@code "max(json:/bytes)"}). Without
 * --suppress a (window, key) is written again at every flush of the record
 * cache (each commit) in which it changed, so its last row is its value; with
 * it, once when stream time passes its end plus the grace. A record whose
 * value has no string or number at --group-by is dropped (Streams drops
 * null keys in groupBy); one with no number at --field is counted and adds
 * nothing to the sum, min or max.
 *
 * Progress on stderr, as StreamsAgg's ({@code streams-agg: EVENT MS ...}):
 * start, state, first-input, first-output, all-input (the --records-th
 * record read from IN by this process), progress IN OUT, closed IN OUT.
 */
public final class StreamsAggGroups {
    private String brokers = "127.0.0.1:9092";
    private String from;
    private String to;
    private String appId;
    private String stateDir;
    private long windowMs = -1;
    private long graceMs = 0;
    private String[] groupBy;
    private String fieldText = "/bytes";
    private String[] field = {"bytes"};
    private final List<String> aggs = new ArrayList<>(List.of("count"));
    private boolean suppress;
    private boolean exactlyOnce;
    private long commitIntervalMs = -1;
    private long progressMs = 1000;
    private long records = -1;

    private final AtomicLong in = new AtomicLong();
    private final AtomicLong out = new AtomicLong();
    private final AtomicBoolean firstOutput = new AtomicBoolean();

    public static void main(String[] argv) throws Exception {
        StreamsAggGroups agg = new StreamsAggGroups();
        try {
            agg.parse(argv);
        } catch (IllegalArgumentException e) {
            System.err.println("streams-agg-groups: " + e.getMessage());
            System.exit(2);
        }
        int status = agg.run();
        if (status >= 0) {
            System.exit(status);
        }
    }

    private void parse(String[] argv) {
        for (int i = 0; i < argv.length; i++) {
            String flag = argv[i];
            switch (flag) {
                case "--suppress" -> {
                    suppress = true;
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
                case "--group-by" -> groupBy = pointer("--group-by", value);
                case "--field" -> {
                    field = pointer("--field", value);
                    fieldText = value;
                }
                case "--agg" -> {
                    aggs.clear();
                    for (String a : value.split(",")) {
                        if (!List.of("count", "sum", "min", "max").contains(a)) {
                            throw new IllegalArgumentException("--agg takes count, sum, min and max, comma-separated");
                        }
                        aggs.add(a);
                    }
                }
                case "--commit-interval-ms" -> commitIntervalMs = Long.parseLong(value);
                case "--progress-ms" -> progressMs = Long.parseLong(value);
                case "--records" -> records = Long.parseLong(value);
                default -> throw new IllegalArgumentException("unknown flag " + flag);
            }
        }
        if (from == null || to == null || appId == null || stateDir == null || windowMs <= 0 || groupBy == null) {
            throw new IllegalArgumentException(
                    "--from, --to, --app-id, --state-dir, --window-ms and --group-by are required");
        }
    }

    /** A JSON pointer (/a/b) as its unescaped tokens. */
    private static String[] pointer(String flag, String value) {
        if (!value.startsWith("/") || value.length() < 2) {
            throw new IllegalArgumentException(flag + " takes a JSON pointer such as /level");
        }
        String[] tokens = value.substring(1).split("/", -1);
        for (int j = 0; j < tokens.length; j++) {
            tokens[j] = tokens[j].replace("~1", "/").replace("~0", "~");
        }
        return tokens;
    }

    private Properties config() {
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

    private Topology topology() {
        StreamsBuilder builder = new StreamsBuilder();
        TimeWindowedKStream<String, String> windowed = builder
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
                .groupBy((k, v) -> text(v, groupBy), Grouped.with("by", Serdes.String(), Serdes.String()))
                .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(windowMs), Duration.ofMillis(graceMs)));
        KTable<Windowed<String>, Aggs> table;
        if (aggs.equals(List.of("count"))) {
            KTable<Windowed<String>, Long> counts = windowed
                    .count(Materialized.<String, Long, WindowStore<Bytes, byte[]>>as("counts")
                            .withKeySerde(Serdes.String()));
            if (suppress) {
                counts = counts.suppress(final_());
            }
            table = counts.mapValues(n -> n == null ? null : Aggs.counted(n));
        } else {
            table = windowed.aggregate(Aggs::new, (key, value, a) -> a.add(StreamsAgg.number(value, field)),
                    Materialized.<String, Aggs, WindowStore<Bytes, byte[]>>as("aggs")
                            .withKeySerde(Serdes.String())
                            .withValueSerde(new AggsSerde()));
            if (suppress) {
                table = table.suppress(final_());
            }
        }
        table.toStream()
                .filter((k, v) -> v != null)
                .map((k, v) -> KeyValue.pair(
                        "[\"" + Instant.ofEpochMilli(k.window().start()) + "\"," + StreamsAgg.quote(k.key()) + "]",
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

    /** Each window once, when stream time passes its end plus the grace. */
    private static Suppressed<Windowed<?>> final_() {
        return Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()).withName("final");
    }

    private String row(Windowed<String> k, Aggs v) {
        StringBuilder b = new StringBuilder(160)
                .append("{\"window_start\":\"").append(Instant.ofEpochMilli(k.window().start()))
                .append("\",\"window_end\":\"").append(Instant.ofEpochMilli(k.window().end()))
                .append("\",\"key\":").append(StreamsAgg.quote(k.key()));
        for (String a : aggs) {
            b.append(',').append(a.equals("count") ? "\"count\"" : "\"" + a + "(json:" + fieldText + ")\"").append(':');
            switch (a) {
                case "count" -> b.append(v.count);
                case "sum" -> b.append(v.anyFloat ? Double.toString(v.intSum + v.floatSum) : Long.toString(v.intSum));
                case "min" -> b.append(v.numbers == 0 ? "null" : number(v.min));
                default -> b.append(v.numbers == 0 ? "null" : number(v.max));
            }
        }
        return b.append('}').toString();
    }

    private static String number(double d) {
        return d == Math.rint(d) && Math.abs(d) < 9.0e15 ? Long.toString((long) d) : Double.toString(d);
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
            System.err.println("streams-agg-groups: stream thread failed: " + e);
            e.printStackTrace();
            failed.set(true);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        AtomicBoolean closing = new AtomicBoolean();
        CountDownLatch closed = new CountDownLatch(1);
        Thread hook = new Thread(() -> {
            closing.set(true);
            stopped.countDown();
            streams.close(Duration.ofSeconds(60));
            log("closed " + System.currentTimeMillis() + " " + in.get() + " " + out.get());
            closed.countDown();
        }, "streams-agg-groups-shutdown");
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
        }, "streams-agg-groups-progress");
        progress.setDaemon(true);
        progress.start();

        streams.start();
        stopped.await();
        if (closing.get()) {
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
     * The string (or a number's text) at pointer in the JSON value, or null
     * when the value is not JSON or has no string or number there.
     */
    static String text(String value, String[] pointer) {
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
                String name = p.currentName();
                JsonToken v = p.nextToken();
                if (!name.equals(pointer[depth])) {
                    p.skipChildren();
                    continue;
                }
                if (depth == pointer.length - 1) {
                    return switch (v) {
                        case VALUE_STRING, VALUE_NUMBER_INT, VALUE_NUMBER_FLOAT -> p.getText();
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

    /** A window's count, and the sum (integers exactly), min and max of the field's numbers. */
    static final class Aggs {
        long count;
        long intSum;
        double floatSum;
        boolean anyFloat;
        long numbers;
        double min;
        double max;

        static Aggs counted(long n) {
            Aggs a = new Aggs();
            a.count = n;
            return a;
        }

        Aggs add(Number n) {
            count++;
            if (n == null) {
                return this;
            }
            if (n instanceof Long l) {
                intSum += l;
            } else {
                floatSum += n.doubleValue();
                anyFloat = true;
            }
            double d = n.doubleValue();
            min = numbers == 0 ? d : Math.min(min, d);
            max = numbers == 0 ? d : Math.max(max, d);
            numbers++;
            return this;
        }
    }

    /** Aggs as 49 bytes: count, integer sum, double sum, numbers, min, max, a flag. */
    static final class AggsSerde implements Serde<Aggs> {
        @Override
        public Serializer<Aggs> serializer() {
            return (topic, a) -> a == null ? null
                    : ByteBuffer.allocate(49).putLong(a.count).putLong(a.intSum).putDouble(a.floatSum)
                            .putLong(a.numbers).putDouble(a.min).putDouble(a.max)
                            .put((byte) (a.anyFloat ? 1 : 0)).array();
        }

        @Override
        public Deserializer<Aggs> deserializer() {
            return (topic, bytes) -> {
                if (bytes == null) {
                    return null;
                }
                ByteBuffer b = ByteBuffer.wrap(bytes);
                Aggs a = new Aggs();
                a.count = b.getLong();
                a.intSum = b.getLong();
                a.floatSum = b.getDouble();
                a.numbers = b.getLong();
                a.min = b.getDouble();
                a.max = b.getDouble();
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
