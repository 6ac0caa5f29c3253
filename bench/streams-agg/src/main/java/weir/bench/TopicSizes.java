package weir.bench;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.ReplicaInfo;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;

/**
 * bench/agg-groups.sh's measure of what a tool wrote to its internal
 * topics: for each topic whose name starts with one of the prefixes, the
 * bytes its partitions hold in the brokers' log directories (the Admin
 * client's DescribeLogDirs, what kafka-log-dirs --describe prints: the
 * size of the partition's log segments, record batches as stored) and its
 * records (the sum of the partitions' end offsets, which deleting records
 * from the front does not lower), from one JVM.
 *
 * <pre>
 * java -cp target/streams-agg.jar weir.bench.TopicSizes --brokers H:P PREFIX...
 * </pre>
 *
 * Prints one line per topic: "TOPIC BYTES RECORDS START", START the sum of
 * the partitions' log start offsets (records deleted from the front:
 * Streams purges its repartition topics as it commits).
 */
public final class TopicSizes {
    public static void main(String[] argv) throws Exception {
        String brokers = "127.0.0.1:9092";
        List<String> prefixes = new java.util.ArrayList<>();
        for (int i = 0; i < argv.length; i++) {
            if (argv[i].equals("--brokers") && i + 1 < argv.length) {
                brokers = argv[++i];
            } else {
                prefixes.add(argv[i]);
            }
        }
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
        try (Admin admin = Admin.create(p)) {
            Set<String> topics = admin.listTopics(new ListTopicsOptions().listInternal(true)).names().get().stream()
                    .filter(t -> prefixes.stream().anyMatch(t::startsWith))
                    .collect(Collectors.toSet());
            Map<String, Long> bytes = new TreeMap<>();
            for (String t : topics) {
                bytes.put(t, 0L);
            }
            List<Integer> nodes = admin.describeCluster().nodes().get().stream().map(Node::id).toList();
            Map<Integer, Map<String, LogDirDescription>> dirs = admin.describeLogDirs(nodes).allDescriptions().get();
            for (Map<String, LogDirDescription> byDir : dirs.values()) {
                for (LogDirDescription d : byDir.values()) {
                    for (Map.Entry<TopicPartition, ReplicaInfo> e : d.replicaInfos().entrySet()) {
                        bytes.computeIfPresent(e.getKey().topic(), (t, b) -> b + e.getValue().size());
                    }
                }
            }
            Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
            Map<TopicPartition, OffsetSpec> earliest = new HashMap<>();
            for (TopicDescription d : admin.describeTopics(topics).allTopicNames().get().values()) {
                d.partitions().forEach(pi -> {
                    latest.put(new TopicPartition(d.name(), pi.partition()), OffsetSpec.latest());
                    earliest.put(new TopicPartition(d.name(), pi.partition()), OffsetSpec.earliest());
                });
            }
            Map<TopicPartition, ListOffsetsResultInfo> ends = admin.listOffsets(latest).all().get();
            Map<TopicPartition, ListOffsetsResultInfo> starts = admin.listOffsets(earliest).all().get();
            for (Map.Entry<String, Long> e : bytes.entrySet()) {
                long records = ends.entrySet().stream().filter(x -> x.getKey().topic().equals(e.getKey()))
                        .mapToLong(x -> x.getValue().offset()).sum();
                long start = starts.entrySet().stream().filter(x -> x.getKey().topic().equals(e.getKey()))
                        .mapToLong(x -> x.getValue().offset()).sum();
                System.out.println(e.getKey() + " " + e.getValue() + " " + records + " " + start);
            }
        }
    }
}
