package weir.bench;

import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.GroupIdNotFoundException;

/**
 * bench/agg.sh's clock for Kafka Streams: how far a consumer group's
 * committed positions in one topic have come, polled with the Admin client
 * (OffsetFetch, what kafka-consumer-groups --describe reads) from one JVM
 * that stays up for the whole measurement, so no tool start-up (a second
 * or more of CPU on a small machine) competes with the application
 * measured, and the poll interval stays short.
 *
 * <pre>
 * java -cp target/streams-agg.jar weir.bench.GroupPosition --brokers H:P --group G --topic T [--interval-ms 100]
 * </pre>
 *
 * Prints "MS COMMITTED" whenever the sum of the group's committed offsets
 * in T changes (and once at the start), MS the wall-clock time in ms since
 * the epoch; a group without commits is at 0. Runs until killed or stdin
 * closes.
 */
public final class GroupPosition {
    public static void main(String[] argv) throws Exception {
        String brokers = "127.0.0.1:9092";
        String group = null;
        String topic = null;
        long interval = 100;
        for (int i = 0; i + 1 < argv.length; i += 2) {
            switch (argv[i]) {
                case "--brokers" -> brokers = argv[i + 1];
                case "--group" -> group = argv[i + 1];
                case "--topic" -> topic = argv[i + 1];
                case "--interval-ms" -> interval = Long.parseLong(argv[i + 1]);
                default -> {
                    System.err.println("group-position: unknown flag " + argv[i]);
                    System.exit(2);
                }
            }
        }
        if (group == null || topic == null) {
            System.err.println("group-position: --group and --topic are required");
            System.exit(2);
        }
        Thread stdin = new Thread(() -> {
            try {
                while (System.in.read() >= 0) {
                    // Only its end matters.
                }
            } catch (java.io.IOException e) {
                // Closed.
            }
            System.exit(0);
        });
        stdin.setDaemon(true);
        stdin.start();
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
        try (Admin admin = Admin.create(p)) {
            long last = -1;
            while (true) {
                long sum = 0;
                try {
                    Map<TopicPartition, OffsetAndMetadata> offsets =
                            admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
                    for (Map.Entry<TopicPartition, OffsetAndMetadata> e : offsets.entrySet()) {
                        if (e.getKey().topic().equals(topic) && e.getValue() != null) {
                            sum += e.getValue().offset();
                        }
                    }
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof GroupIdNotFoundException)) {
                        System.err.println("group-position: " + e.getCause());
                    }
                }
                if (sum != last) {
                    System.out.println(System.currentTimeMillis() + " " + sum);
                    System.out.flush();
                    last = sum;
                }
                Thread.sleep(interval);
            }
        }
    }
}
