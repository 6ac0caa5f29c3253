package weir.bench;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * bench/agg-groups.sh's reader of an output topic with the times the
 * broker appended its records: the Java consumer, read_committed, every
 * partition from its start to its end at the start, no group.
 *
 * <pre>
 * java -cp target/streams-agg.jar weir.bench.TopicDump --brokers H:P --topic T
 * </pre>
 *
 * Prints "PARTITION OFFSET TIMESTAMP TYPE VALUE" per record, in offset
 * order within a partition; TIMESTAMP is the append time on a topic with
 * message.timestamp.type=LogAppendTime (TYPE says which it is).
 */
public final class TopicDump {
    public static void main(String[] argv) {
        String brokers = "127.0.0.1:9092";
        String topic = null;
        for (int i = 0; i + 1 < argv.length; i += 2) {
            switch (argv[i]) {
                case "--brokers" -> brokers = argv[i + 1];
                case "--topic" -> topic = argv[i + 1];
                default -> {
                    System.err.println("topic-dump: unknown flag " + argv[i]);
                    System.exit(2);
                }
            }
        }
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        try (KafkaConsumer<String, String> c =
                     new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer())) {
            List<TopicPartition> parts = c.partitionsFor(topic).stream()
                    .map(pi -> new TopicPartition(pi.topic(), pi.partition())).toList();
            c.assign(parts);
            c.seekToBeginning(parts);
            Map<TopicPartition, Long> ends = c.endOffsets(parts);
            StringBuilder out = new StringBuilder();
            while (parts.stream().anyMatch(tp -> c.position(tp) < ends.get(tp))) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) {
                    out.append(r.partition()).append(' ').append(r.offset()).append(' ').append(r.timestamp())
                            .append(' ').append(r.timestampType().name).append(' ').append(r.value()).append('\n');
                }
                System.out.print(out);
                out.setLength(0);
            }
            System.out.flush();
        }
    }
}
