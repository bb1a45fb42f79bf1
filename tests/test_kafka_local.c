/*
 * flink-kafka-local end to end: starts the built tool ($FL_BUILD_DIR/tools/
 * flink-kafka-local, else ./tools/flink-kafka-local) as a child process and talks to it
 * with a real librdkafka producer and consumer and with kcat.
 *
 * Every server is started with --stdin-eof and a pipe on its standard input, so a test
 * process that dies takes its servers with it; every server a test starts is stopped by
 * that test and killed again on teardown. Waits have deadlines scaled by
 * FL_TEST_TIMEOUT_SCALE and wake on the event waited for (a line, end of file), never on
 * a fixed sleep.
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>

#include "fl_test_util.h"

#include "kafka_test_util.h"

/* Splits "h:p,h:p" into hosts and ports; returns the count. */
static int parse_bootstrap(const char *bs, char hosts[][64], int ports[], int max) {
  int n = 0;
  const char *p = bs;
  while (*p != '\0' && n < max) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    char entry[128];
    char *colon;
    assert_true(len < sizeof(entry));
    memcpy(entry, p, len);
    entry[len] = '\0';
    colon = strrchr(entry, ':');
    assert_non_null(colon);
    *colon = '\0';
    assert_true(strlen(entry) < 64);
    memcpy(hosts[n], entry, strlen(entry) + 1);
    ports[n] = atoi(colon + 1);
    n++;
    p += len;
    if (*p == ',') p++;
  }
  return n;
}

/* True when a TCP connection to 127.0.0.1:port is accepted. */
static bool port_open(int port) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool ok;
  assert_true(fd >= 0);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
  close(fd);
  return ok;
}

/* The server shared by the client tests: 2 brokers, "orders" with 3 partitions (the
 * librdkafka round trip) and "events" with 1 (the kcat round trip, in order). */
static child_t *g_server;
static char g_bootstrap[1024];

static int group_setup(void **state) {
  (void)state;
  tool_path();
  g_server = start_server(g_bootstrap, sizeof(g_bootstrap), "--brokers", "2", "--topic", "orders:3",
                          "--topic", "events", "--quiet", (char *)NULL);
  /* A failure inside start_server() fails the group setup through cmocka. The shared
   * server outlives the tests, so the per-test teardown must not kill it. */
  for (int i = 0; i < MAX_CHILDREN; i++)
    if (g_children[i] == g_server) g_children[i] = NULL;
  return g_server != NULL ? 0 : -1;
}

/* Stops the shared server and fails the group unless it exits 0: after real traffic,
 * this is where a sanitized server reports a leak or an error. */
static int group_teardown(void **state) {
  int rc = 0, status;
  (void)state;
  if (g_server != NULL && g_server->pid > 0) {
    kill(g_server->pid, SIGTERM);
    status = wait_exit(g_server, deadline_in(10000));
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr,
              "test_kafka_local: the shared server did not exit 0 after SIGTERM "
              "(wait status %d)\n",
              status);
      rc = -1;
    }
  }
  child_free(g_server);
  g_server = NULL;
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Tests                                                                              */

static void test_bootstrap_line_names_every_broker_on_loopback(void **state) {
  char hosts[8][64];
  int ports[8];
  int n = parse_bootstrap(g_bootstrap, hosts, ports, 8);
  (void)state;
  assert_int_equal(n, 2);
  for (int i = 0; i < n; i++) {
    assert_string_equal(hosts[i], "127.0.0.1");
    assert_true(ports[i] > 0 && ports[i] < 65536);
    assert_true(port_open(ports[i]));
  }
  assert_int_not_equal(ports[0], ports[1]);
}

static rd_kafka_t *client_new(rd_kafka_type_t type, const char *const *kv) {
  char errstr[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_t *rk;
  if (rd_kafka_conf_set(conf, "bootstrap.servers", g_bootstrap, errstr, sizeof(errstr)) !=
      RD_KAFKA_CONF_OK)
    fail_msg("bootstrap.servers: %s", errstr);
  for (; kv != NULL && kv[0] != NULL; kv += 2)
    if (rd_kafka_conf_set(conf, kv[0], kv[1], errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
      fail_msg("%s: %s", kv[0], errstr);
  rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
  if (rk == NULL) {
    rd_kafka_conf_destroy(conf);
    fail_msg("rd_kafka_new: %s", errstr);
  }
  return rk;
}

static void test_metadata_shows_requested_partition_counts(void **state) {
  rd_kafka_t *rk = client_new(RD_KAFKA_PRODUCER, NULL);
  const struct rd_kafka_metadata *md = NULL;
  bool seen_orders = false, seen_events = false;
  (void)state;

  /* all_topics = 1 lists the cluster's topics and never creates one. */
  assert_int_equal(rd_kafka_metadata(rk, 1, NULL, &md, (int)(10000 * timeout_scale())),
                   RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(md->broker_cnt, 2);
  for (int i = 0; i < md->topic_cnt; i++) {
    const rd_kafka_metadata_topic_t *t = &md->topics[i];
    assert_int_equal(t->err, RD_KAFKA_RESP_ERR_NO_ERROR);
    if (strcmp(t->topic, "orders") == 0) {
      seen_orders = true;
      assert_int_equal(t->partition_cnt, 3);
    } else if (strcmp(t->topic, "events") == 0) {
      seen_events = true;
      assert_int_equal(t->partition_cnt, 1);
    }
    for (int p = 0; p < t->partition_cnt; p++)
      assert_true(t->partitions[p].leader == 1 || t->partitions[p].leader == 2);
  }
  assert_true(seen_orders);
  assert_true(seen_events);
  rd_kafka_metadata_destroy(md);
  rd_kafka_destroy(rk);
}

#define N_MSGS 1000
#define N_KEYS 37
#define N_PARTS 3

typedef struct delivery {
  int32_t partition[N_MSGS];
  int64_t offset[N_MSGS];
  int delivered;
  int failed;
} delivery_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  delivery_t *d = opaque;
  int i = (int)(intptr_t)m->_private;
  (void)rk;
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR || i < 0 || i >= N_MSGS) {
    d->failed++;
    return;
  }
  d->partition[i] = m->partition;
  d->offset[i] = m->offset;
  d->delivered++;
}

static void test_librdkafka_keyed_messages_arrive_once_in_partition_order(void **state) {
  /* Idempotence keeps the producer's per-partition order through retries, which is the
   * order checked below. */
  const char *const producer_kv[] = {"enable.idempotence", "true", "linger.ms", "5", NULL};
  const char *const consumer_kv[] = {
      "group.id", "test-kafka-local",  "enable.auto.commit", "false", "enable.partition.eof",
      "true",     "auto.offset.reset", "earliest",           NULL};
  delivery_t *d = calloc(1, sizeof(*d));
  bool *seen = calloc(N_MSGS, sizeof(*seen));
  int32_t key_partition[N_KEYS];
  int last_seq[N_PARTS], per_part[N_PARTS];
  int64_t next_offset[N_PARTS];
  bool at_eof[N_PARTS] = {false};
  rd_kafka_t *prod, *cons;
  rd_kafka_conf_t *pconf;
  rd_kafka_topic_partition_list_t *parts;
  char errstr[512];
  int received = 0, duplicates = 0;
  int64_t deadline;
  (void)state;
  assert_non_null(d);
  assert_non_null(seen);

  /* Producer: message i has key "user-(i % N_KEYS)" and value "i". */
  pconf = rd_kafka_conf_new();
  rd_kafka_conf_set_dr_msg_cb(pconf, on_delivery);
  rd_kafka_conf_set_opaque(pconf, d);
  if (rd_kafka_conf_set(pconf, "bootstrap.servers", g_bootstrap, errstr, sizeof(errstr)) ||
      rd_kafka_conf_set(pconf, producer_kv[0], producer_kv[1], errstr, sizeof(errstr)) ||
      rd_kafka_conf_set(pconf, producer_kv[2], producer_kv[3], errstr, sizeof(errstr)))
    fail_msg("producer configuration: %s", errstr);
  prod = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, errstr, sizeof(errstr));
  assert_non_null(prod);
  for (int i = 0; i < N_MSGS; i++) {
    char key[32], val[32];
    snprintf(key, sizeof(key), "user-%d", i % N_KEYS);
    snprintf(val, sizeof(val), "%d", i);
    assert_int_equal(
        rd_kafka_producev(prod, RD_KAFKA_V_TOPIC("orders"), RD_KAFKA_V_KEY(key, strlen(key)),
                          RD_KAFKA_V_VALUE(val, strlen(val)),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_OPAQUE((void *)(intptr_t)i), RD_KAFKA_V_END),
        RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  assert_int_equal(rd_kafka_flush(prod, (int)(10000 * timeout_scale())),
                   RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(d->failed, 0);
  assert_int_equal(d->delivered, N_MSGS);
  rd_kafka_destroy(prod);

  /* Consumer: all three partitions from the beginning, until all N_MSGS arrived and
   * every partition reported its end (a duplicate would come before the end). */
  cons = client_new(RD_KAFKA_CONSUMER, consumer_kv);
  parts = rd_kafka_topic_partition_list_new(N_PARTS);
  for (int p = 0; p < N_PARTS; p++)
    rd_kafka_topic_partition_list_add(parts, "orders", p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  assert_int_equal(rd_kafka_assign(cons, parts), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(parts);

  for (int k = 0; k < N_KEYS; k++) key_partition[k] = -1;
  for (int p = 0; p < N_PARTS; p++) {
    last_seq[p] = -1;
    next_offset[p] = 0;
    per_part[p] = 0;
  }
  deadline = deadline_in(10000);
  while (mono_ms() < deadline && !(received == N_MSGS && at_eof[0] && at_eof[1] && at_eof[2])) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(cons, 100);
    char key[32], val[32], want_key[32];
    int i, p;
    if (m == NULL) continue;
    p = m->partition;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (p >= 0 && p < N_PARTS) at_eof[p] = true;
      rd_kafka_message_destroy(m);
      continue;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      char msg[256];
      snprintf(msg, sizeof(msg), "%s", rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      fail_msg("consume error: %s", msg);
    }
    assert_true(p >= 0 && p < N_PARTS);
    at_eof[p] = false;
    assert_true(m->key_len < sizeof(key) && m->len < sizeof(val));
    memcpy(key, m->key, m->key_len);
    key[m->key_len] = '\0';
    memcpy(val, m->payload, m->len);
    val[m->len] = '\0';
    i = atoi(val);
    assert_true(i >= 0 && i < N_MSGS);
    snprintf(want_key, sizeof(want_key), "user-%d", i % N_KEYS);
    assert_string_equal(key, want_key);
    if (seen[i]) duplicates++;
    seen[i] = true;
    /* Where the producer was told it went, and nowhere else. */
    assert_int_equal(p, d->partition[i]);
    assert_int_equal(m->offset, d->offset[i]);
    /* One key, one partition. */
    if (key_partition[i % N_KEYS] < 0) key_partition[i % N_KEYS] = p;
    assert_int_equal(p, key_partition[i % N_KEYS]);
    /* Per-partition order: produce order, at consecutive offsets from 0. */
    assert_true(i > last_seq[p]);
    last_seq[p] = i;
    assert_int_equal(m->offset, next_offset[p]);
    next_offset[p]++;
    per_part[p]++;
    received++;
    rd_kafka_message_destroy(m);
  }
  assert_int_equal(duplicates, 0);
  assert_int_equal(received, N_MSGS);
  for (int i = 0; i < N_MSGS; i++) assert_true(seen[i]);
  /* 37 fixed keys over 3 partitions with librdkafka's key hash: every partition holds
   * some (a topic created with fewer partitions fails here). */
  for (int p = 0; p < N_PARTS; p++) assert_true(per_part[p] > 0);
  assert_int_equal(per_part[0] + per_part[1] + per_part[2], N_MSGS);

  rd_kafka_consumer_close(cons);
  rd_kafka_destroy(cons);
  free(seen);
  free(d);
}

static void test_kcat_produces_and_consumes(void **state) {
  char kcat[4096];
  char *input = NULL, *output = NULL;
  size_t cap = 64 * 40, len = 0;
  int status;
  (void)state;
  if (!find_on_path("kcat", kcat, sizeof(kcat)))
    fail_msg(
        "kcat not found on PATH: install the Debian package 'kcat' "
        "(scripts/install-deps.sh installs it)");

  /* 40 keyed lines; "events" has one partition, so kcat must give them back in order. */
  input = malloc(cap);
  assert_non_null(input);
  input[0] = '\0';
  for (int i = 0; i < 40; i++)
    len += (size_t)snprintf(input + len, cap - len, "key%d:value %d\n", i % 7, i);

  {
    char *const argv[] = {kcat, "-P", "-b", g_bootstrap, "-t", "events", "-K:", NULL};
    char *ignored = NULL;
    status = run_capture(argv, input, &ignored);
    free(ignored);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
  }
  {
    char *const argv[] = {kcat,     "-C", "-q", "-b",        g_bootstrap, "-t",
                          "events", "-e", "-o", "beginning", "-K:",       NULL};
    status = run_capture(argv, NULL, &output);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
  }
  assert_string_equal(output, input);
  free(output);
  free(input);
}

static void test_sigterm_stops_with_exit_0_and_closes_the_port(void **state) {
  char dir[] = "/tmp/fl_test_kafka_local_XXXXXX";
  char port_file[128], bootstrap[1024], hosts[4][64], content[1100] = {0};
  int ports[4];
  child_t *c;
  FILE *f;
  struct stat st;
  (void)state;

  assert_non_null(mkdtemp(dir));
  snprintf(port_file, sizeof(port_file), "%s/bootstrap", dir);
  c = start_server(bootstrap, sizeof(bootstrap), "--topic", "t", "--port-file", port_file,
                   "--quiet", (char *)NULL);
  /* The file is written before the line is printed, whole (temp + rename). */
  f = fopen(port_file, "r");
  assert_non_null(f);
  assert_non_null(fgets(content, sizeof(content), f));
  fclose(f);
  content[strcspn(content, "\n")] = '\0';
  assert_string_equal(content, bootstrap);
  assert_int_equal(parse_bootstrap(bootstrap, hosts, ports, 4), 1);
  assert_string_equal(hosts[0], "127.0.0.1");
  assert_true(port_open(ports[0]));

  stop_server(c);
  child_free(c);
  assert_false(port_open(ports[0]));
  /* A clean shutdown removes the port file, so a stale one never names a dead broker. */
  assert_int_equal(stat(port_file, &st), -1);
  assert_int_equal(rmdir(dir), 0);
}

static void test_stdin_eof_stops_with_exit_0(void **state) {
  char bootstrap[1024], hosts[4][64];
  int ports[4], status;
  child_t *c;
  (void)state;

  c = start_server(bootstrap, sizeof(bootstrap), "--brokers", "3", "--quiet", (char *)NULL);
  assert_int_equal(parse_bootstrap(bootstrap, hosts, ports, 4), 3);
  close_fd(&c->in_fd); /* what the kernel does when the parent dies */
  status = wait_exit(c, deadline_in(10000));
  if (status == -1) fail_msg("the server did not exit after its stdin closed");
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  child_free(c);
  for (int i = 0; i < 3; i++) assert_false(port_open(ports[i]));
}

typedef struct bad_case {
  const char *args[6];
  const char *named; /* must appear in the message */
} bad_case_t;

static void test_bad_arguments_exit_2_naming_the_argument(void **state) {
  static const bad_case_t cases[] = {
      {{"--bogus"}, "--bogus"},
      {{"--brokers", "0"}, "--brokers 0"},
      {{"--brokers", "two"}, "--brokers two"},
      {{"--brokers"}, "--brokers: missing value"},
      {{"--topic", "a:0"}, "--topic a:0"},
      {{"--topic", "a:x"}, "--topic a:x"},
      {{"--topic", "a:1:0"}, "--topic a:1:0"},
      {{"--topic", "bad name"}, "--topic bad name"},
      {{"--topic", ":3"}, "--topic :3"},
      {{"--topic", "a:1:2"}, "--topic a:1:2"}, /* more replicas than brokers */
      {{"--topic", "a", "--topic", "a:2"}, "--topic a:2"},
      {{"--port-file", ""}, "--port-file"},
      {{"--no-auto-create"}, "--no-auto-create"},
  };
  (void)state;
  for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
    char *argv[8] = {g_tool};
    char *err = NULL;
    size_t len = 0;
    int argc = 1, status = -1;
    child_t *c;
    for (int j = 0; cases[k].args[j] != NULL; j++) argv[argc++] = (char *)cases[k].args[j];
    argv[argc] = NULL;
    c = spawn(argv, true);
    if (!read_all(c->err_fd, &err, &len, deadline_in(10000)))
      fail_msg("case %zu (%s): no exit in time", k, cases[k].named);
    status = wait_exit(c, deadline_in(10000));
    child_free(c);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 2 || strstr(err, cases[k].named) == NULL)
      fail_msg("case %zu: want exit 2 and a message naming '%s'; got status %d, stderr '%s'", k,
               cases[k].named, status, err);
    free(err);
  }
}

int main(void) {
  const struct CMUnitTest with_shared_server[] = {
      cmocka_unit_test_teardown(test_bootstrap_line_names_every_broker_on_loopback,
                                teardown_children),
      cmocka_unit_test_teardown(test_metadata_shows_requested_partition_counts, teardown_children),
      cmocka_unit_test_teardown(test_librdkafka_keyed_messages_arrive_once_in_partition_order,
                                teardown_children),
      cmocka_unit_test_teardown(test_kcat_produces_and_consumes, teardown_children),
  };
  const struct CMUnitTest own_servers[] = {
      cmocka_unit_test_teardown(test_sigterm_stops_with_exit_0_and_closes_the_port,
                                teardown_children),
      cmocka_unit_test_teardown(test_stdin_eof_stops_with_exit_0, teardown_children),
      cmocka_unit_test_teardown(test_bad_arguments_exit_2_naming_the_argument, teardown_children),
  };
  int failed;
  /* A reader that goes away must fail a test, not kill the test binary. */
  signal(SIGPIPE, SIG_IGN);
  tool_path();
  failed = cmocka_run_group_tests_name("kafka_local_clients", with_shared_server, group_setup,
                                       group_teardown);
  failed += cmocka_run_group_tests_name("kafka_local_lifecycle", own_servers, NULL, NULL);
  return failed;
}
