/* flink-bench kafka: Kafka -> keyBy -> window -> Kafka against librdkafka alone. */
#ifndef FL_BENCH_KAFKA_H
#define FL_BENCH_KAFKA_H
int fl_bench_kafka_main(int argc, char **argv);
#endif
