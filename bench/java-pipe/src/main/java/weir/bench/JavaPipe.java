package weir.bench;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.Callback;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The Java baseline of bench/pipe.sh: a consume-transform-produce loop on
 * Kafka's own client, doing what `weir pipe -t FROM --to TO -g G --grep
 * STRING -e` does: keep the records whose value contains STRING, write
 * them to TO with their key, headers and timestamp (placed by the key,
 * murmur2, the client's default), commit the input positions, and stop
 * once N input records are read, written and committed.
 *
 * <pre>
 * java -jar target/java-pipe.jar --brokers H:P --from IN --to OUT --group G
 *     --contains STRING --records N [--exactly-once] [--commit-interval-ms MS]
 * </pre>
 *
 * At least once (the default): every commit interval (5 s, weir pipe's
 * default), producer.flush() and then the consumer's commitSync of the
 * positions read so far, so no position is committed before its output
 * is acknowledged. Exactly once: everything between two commits is one
 * transaction whose input positions go in with
 * sendOffsetsToTransaction(offsets, groupMetadata()); a commit every
 * 100 ms, Kafka Streams' default commit.interval.ms under exactly_once_v2.
 *
 * Settings (everything not named is the client's default):
 * <ul>
 *   <li>producer: acks=all and enable.idempotence=true (the defaults since
 *       Kafka 3.0, weir's only mode), linger.ms=5 (the default since 4.0,
 *       weir's default), batch.size=1032192 (weir's default --batch-bytes,
 *       1 MiB less 16 KiB; the client's 16 KiB default caps a batch at
 *       about 150 of these records), compression.type=none (both
 *       defaults); exactly once adds transactional.id=java-pipe-GROUP.</li>
 *   <li>consumer: group.id, subscribe() to FROM (one member, so it gets
 *       every partition), enable.auto.commit=false (positions are
 *       committed by the loop), auto.offset.reset=earliest,
 *       isolation.level=read_committed (weir's default; the input holds
 *       no transactions, so it changes nothing there). Fetch sizes and
 *       waits are the defaults, which equal weir's: 1 MiB per partition
 *       (max.partition.fetch.bytes), 500 ms wait; max.poll.records=500.</li>
 * </ul>
 *
 * Prints one JSON line on stdout: records read, records written (acknowledged,
 * and under exactly once committed), seconds from before subscribe() to
 * the last commit, records read per second of that, commits, and the
 * seconds until the first records arrived (the group join and, under
 * exactly once, initTransactions).
 */
public final class JavaPipe {
    private String brokers = "127.0.0.1:9092";
    private String from;
    private String to;
    private String group;
    private byte[] needle;
    private long records = -1;
    private boolean exactlyOnce;
    private long commitIntervalMs = -1;

    public static void main(String[] argv) {
        JavaPipe pipe = new JavaPipe();
        try {
            pipe.parse(argv);
        } catch (IllegalArgumentException e) {
            System.err.println("java-pipe: " + e.getMessage());
            System.exit(2);
        }
        try {
            pipe.run();
        } catch (Exception e) {
            System.err.println("java-pipe: " + e);
            e.printStackTrace();
            System.exit(1);
        }
    }

    private void parse(String[] argv) {
        for (int i = 0; i < argv.length; i++) {
            String flag = argv[i];
            if (flag.equals("--exactly-once")) {
                exactlyOnce = true;
                continue;
            }
            if (i + 1 >= argv.length) {
                throw new IllegalArgumentException(flag + " needs a value");
            }
            String value = argv[++i];
            switch (flag) {
                case "--brokers" -> brokers = value;
                case "--from" -> from = value;
                case "--to" -> to = value;
                case "--group" -> group = value;
                case "--contains" -> needle = value.getBytes(StandardCharsets.UTF_8);
                case "--records" -> records = Long.parseLong(value);
                case "--commit-interval-ms" -> commitIntervalMs = Long.parseLong(value);
                default -> throw new IllegalArgumentException("unknown flag " + flag);
            }
        }
        if (from == null || to == null || group == null || needle == null || records < 0) {
            throw new IllegalArgumentException(
                    "--from, --to, --group, --contains and --records are required");
        }
        if (commitIntervalMs < 0) {
            commitIntervalMs = exactlyOnce ? 100 : 5000;
        }
    }

    private Properties consumerConfig() {
        Properties c = new Properties();
        c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
        c.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        c.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        return c;
    }

    private Properties producerConfig() {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        p.put(ProducerConfig.BATCH_SIZE_CONFIG, "1032192");
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, "none");
        if (exactlyOnce) {
            p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "java-pipe-" + group);
        }
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        return p;
    }

    private void run() throws Exception {
        AtomicLong acknowledged = new AtomicLong();
        AtomicReference<Exception> failed = new AtomicReference<>();
        Callback delivered = (meta, e) -> {
            if (e == null) {
                acknowledged.incrementAndGet();
            } else {
                failed.compareAndSet(null, e);
            }
        };
        long read = 0;
        long commits = 0;
        double seconds;
        double firstRecord = -1;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(consumerConfig());
                KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(producerConfig())) {
            long started = System.nanoTime();
            if (exactlyOnce) {
                producer.initTransactions();
            }
            // One member: the first assignment is every partition, and no
            // rebalance follows, so no revocation handling is needed.
            consumer.subscribe(List.of(from));
            Map<TopicPartition, OffsetAndMetadata> positions = new HashMap<>();
            boolean inTransaction = false;
            long lastCommit = System.nanoTime();
            long interval = commitIntervalMs * 1_000_000L;
            while (read < records) {
                ConsumerRecords<byte[], byte[]> batch = consumer.poll(Duration.ofMillis(100));
                if (firstRecord < 0 && !batch.isEmpty()) {
                    firstRecord = (System.nanoTime() - started) / 1e9;
                }
                if (exactlyOnce && !inTransaction && !batch.isEmpty()) {
                    producer.beginTransaction();
                    inTransaction = true;
                }
                for (ConsumerRecord<byte[], byte[]> r : batch) {
                    if (contains(r.value(), needle)) {
                        producer.send(new ProducerRecord<>(to, null, r.timestamp(), r.key(), r.value(), r.headers()), delivered);
                    }
                    positions.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                    // A bounded run: records past the N-th are neither written
                    // nor committed (the next run reads them).
                    if (++read == records) {
                        break;
                    }
                }
                if (failed.get() != null) {
                    throw failed.get();
                }
                if (System.nanoTime() - lastCommit >= interval && !positions.isEmpty()) {
                    commit(consumer, producer, positions, failed);
                    inTransaction = false;
                    commits++;
                    lastCommit = System.nanoTime();
                }
            }
            if (!positions.isEmpty()) {
                commit(consumer, producer, positions, failed);
                commits++;
            }
            seconds = (System.nanoTime() - started) / 1e9;
        }
        System.out.printf(
                "{\"tool\": \"java-pipe\", \"mode\": \"%s\", \"records\": %d, \"written\": %d, \"seconds\": %.3f, \"records_per_sec\": %.0f, \"commits\": %d, \"first_record_seconds\": %.3f}%n",
                exactlyOnce ? "exactly-once" : "at-least-once",
                read, acknowledged.get(), seconds, read / seconds, commits, firstRecord);
    }

    /**
     * At least once: flush, so every record handed to the producer is
     * acknowledged, then commit the positions. Exactly once: the positions
     * join the open transaction, which commits (flushing first).
     */
    private void commit(KafkaConsumer<byte[], byte[]> consumer, KafkaProducer<byte[], byte[]> producer,
            Map<TopicPartition, OffsetAndMetadata> positions, AtomicReference<Exception> failed)
            throws Exception {
        if (exactlyOnce) {
            producer.sendOffsetsToTransaction(positions, consumer.groupMetadata());
            producer.commitTransaction();
        } else {
            producer.flush();
            if (failed.get() != null) {
                throw failed.get();
            }
            consumer.commitSync(positions);
        }
        positions.clear();
    }

    /** Whether value holds needle's bytes (a null value holds nothing). */
    static boolean contains(byte[] value, byte[] needle) {
        if (value == null) {
            return false;
        }
        if (needle.length == 0) {
            return true;
        }
        byte first = needle[0];
        outer:
        for (int i = 0, last = value.length - needle.length; i <= last; i++) {
            if (value[i] != first) {
                continue;
            }
            for (int j = 1; j < needle.length; j++) {
                if (value[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return true;
        }
        return false;
    }
}
