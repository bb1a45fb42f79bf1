/*
 * flink.h - an embeddable stream-processing library in C.
 *
 * Copyright 2026 The libflink authors. Licensed under the Apache License, Version 2.0.
 *
 * This header is the manual. A program describes a dataflow on an environment
 * (fl_env_t): sources, transformations, keyed processing with state and timers,
 * event-time windows and sinks, then calls fl_env_execute(), which runs the job on
 * `parallelism` worker threads inside the calling process and returns when the job
 * has ended (bounded input consumed, an error, or fl_env_stop()).
 *
 * Conventions
 *  - Fallible calls return int: 0 (FL_OK) or a negative fl_err_t. Calls that return a
 *    pointer return NULL on failure.
 *  - Inputs are const and copied unless a comment says otherwise. A caller always
 *    destroys what it created, on success and on failure.
 *  - Builder calls (fl_stream_*, fl_keyed_*, fl_window_*) never fail on their own:
 *    invalid arguments record a sticky error on the environment, which
 *    fl_env_execute() reports (FL_EINVAL) with a message naming the operator and the
 *    cause. They return NULL only when given a NULL stream.
 *  - Every callback takes its opaque pointer last. Where the library keeps an opaque
 *    pointer, the function table has a `destroy` member, called exactly once when the
 *    environment is destroyed (if non-NULL), whether or not the job ever ran. A builder
 *    call that does not keep it (a NULL stream or environment, a call after execute, an
 *    invalid function table) calls destroy at once, before it returns.
 *  - Threads: an environment and everything built on it belong to the thread that
 *    created it, except fl_env_stop(), fl_env_savepoint(), fl_env_metrics_json(),
 *    fl_env_metrics_prometheus(), fl_env_rest_port() and fl_env_prometheus_port(),
 *    which any thread may call while fl_env_execute() runs; fl_env_stop() is also
 *    async-signal-safe.
 *    User functions run on worker threads: one call at a time per operator instance
 *    (subtask), but different subtasks of one operator run concurrently. Per-subtask
 *    instances come from the `open` member of a function table; plain function
 *    pointers (map, filter, key selectors) share their opaque pointer between all
 *    subtasks, so it must be read-only or thread-safe.
 */
#ifndef FLINK_H
#define FLINK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(FL_BUILDING_LIBRARY) && defined(__GNUC__)
#define FL_API __attribute__((visibility("default")))
#else
#define FL_API
#endif

/* ---------------------------------------------------------------------------------- */
/* Version                                                                            */

#define FL_VERSION_MAJOR 0
#define FL_VERSION_MINOR 1
#define FL_VERSION_PATCH 0

/* "MAJOR.MINOR.PATCH" of the library the program runs with. Static storage. */
FL_API const char *fl_version_str(void);

/* ---------------------------------------------------------------------------------- */
/* Errors                                                                             */

#define FL_ERRNO_MAP(X)                                                            \
  X(OK, 0, "success")                                                              \
  X(EINVAL, -1, "invalid argument")                                                \
  X(ENOMEM, -2, "out of memory")                                                   \
  X(EUSER, -3, "a user function failed")                                           \
  X(EIO, -4, "input/output error")                                                 \
  X(EPARSE, -5, "malformed input")                                                 \
  X(ECONFIG, -6, "invalid configuration")                                          \
  X(ESTATE, -7, "state access outside a keyed context or with a wrong descriptor") \
  X(ECANCELED, -8, "the job was stopped")                                          \
  X(ESYS, -9, "a system call failed")                                              \
  X(EPLAN, -10, "the job graph is invalid")                                        \
  X(ENOTFOUND, -11, "not found")                                                   \
  X(ENOTSUP, -12, "not supported")

typedef enum fl_err {
#define FL_ERR_ENUM_(name, code, msg) FL_##name = (code),
  FL_ERRNO_MAP(FL_ERR_ENUM_)
#undef FL_ERR_ENUM_
  FL_ERR_LAST_ = -13
} fl_err_t;

/* A sentence for an error code; "unknown error" for other values. Static storage. */
FL_API const char *fl_strerror(int err);
/* The code's name without prefix, e.g. "EINVAL". Static storage. */
FL_API const char *fl_err_name(int err);

/* Frees memory the library allocated and handed over (e.g. fl_env_metrics_json()). */
FL_API void fl_free(void *p);

/* ---------------------------------------------------------------------------------- */
/* Time                                                                               */

/* No timestamp: a record that has none, or a watermark before any event. INT64_MIN is
 * therefore never an event time: a record whose time is read from data (a parser, a
 * deserializer, a timestamp function) must treat that value as bad input, since a
 * record carrying it is a record without a timestamp (an event-time window fails the
 * job on it). fl_stream_assign_timestamps() fails the job, naming the operator and the
 * value, when its timestamp function returns it. Every other int64_t is a valid event
 * time; windows near either end saturate their bounds. */
#define FL_TS_NONE INT64_MIN
/* The largest watermark: the end of a bounded input. */
#define FL_TS_MAX INT64_MAX

typedef enum fl_time_domain {
  FL_EVENT_TIME = 0,
  FL_PROCESSING_TIME = 1
} fl_time_domain_t;

/* ---------------------------------------------------------------------------------- */
/* Configuration                                                                      */
/*
 * String key/value pairs. Every key, its default and its meaning (docs/configuration.md
 * has the same list; a test keeps both equal to the library's table):
 *   parallelism "1"  worker threads, 1..256
 *   pipeline.max-parallelism "128"  key groups, 1..32768, >= parallelism
 *   pipeline.auto-watermark-interval "200ms"  periodic watermark emission, in processing
 *       time; "0": after every record
 *   execution.batch-size "1024"  records per channel batch, 1..65536
 *   execution.channel-capacity "16"  batches a channel holds before the sender is
 *       back-pressured, 2..4096
 *   state.backend "hashmap"  or "rocksdb"
 *   state.backend.rocksdb.localdir ""  where RocksDB instances work ("": /tmp); each job
 *       attempt locks its own directory there, and the next start removes those of dead
 *       processes
 *   state.backend.incremental "false"  RocksDB: a checkpoint stores only the SST files
 *       earlier retained ones do not hold (savepoints are always complete)
 *   state.backend.rocksdb.block-cache-size "64mb"  shared by all workers
 *   state.backend.rocksdb.writebuffer.size "16mb"  per state (column family)
 *   state.backend.rocksdb.writebuffer.count "2"  memtables per state
 *   state.backend.rocksdb.compression.per.level "SNAPPY_COMPRESSION"  compression of
 *       RocksDB's table files, every level: SNAPPY_COMPRESSION, NO_COMPRESSION (files
 *       read through mmap: less CPU per cold read, 2.5-3x the disk), LZ4_COMPRESSION or
 *       ZSTD_COMPRESSION (one value; Flink's per-level list is not taken)
 *   state.backend.rocksdb.memory.partitioned-index-filters "true"  RocksDB: each table
 *       file's index and filter in 4 KiB partitions; "false": whole blocks, one cache
 *       lookup each per read, about 15 % less CPU per cold read while the stores' indexes
 *       and filters fit the block cache, many times more once they do not; not taken
 *       with NO_COMPRESSION (every get of a mapped file reads the whole blocks again)
 *   state.backend.rocksdb.compaction.low-priority "false"  RocksDB's compaction
 *       threads at the lowest CPU priority (nice 19): they take the time the workers
 *       leave instead of a core for seconds at a time, which shortens the latency spikes
 *       of a job that shares its cores with them; process-wide, and for the rest of the
 *       process's life once a job asked for it
 *   state.backend.rocksdb.cache.size "64mb"  per worker: a write-back cache of state
 *       cells in front of its RocksDB stores, so hot keys are read and written at memory
 *       speed; dirty cells go to RocksDB when evicted and at each checkpoint barrier
 *       (and ahead of it while the worker is idle, with dirty-target);
 *       "0": none, else at least 64kb
 *   state.backend.rocksdb.cache.dirty-target "0"  per worker: while it has nothing
 *       else to do, a worker writes dirty cells of its state cache to RocksDB, in key order,
 *       down to this, so the next checkpoint barrier has less to write and holds its
 *       records shorter (it can cost more than it saves: measure it on the job); "0":
 *       never
 *   state.backend.rocksdb.cache.dirty-limit "0"  per worker: a bound on the state
 *       cache's dirty bytes, kept as cells are written, busy or not, so a checkpoint
 *       barrier writes at most about this many (the writing then takes time from the
 *       records); "0": none but cache.size
 *   state.backend.rocksdb.timer-service.factory "ROCKSDB"  where a RocksDB job keeps its
 *       timers: "ROCKSDB" in the store, with the earliest 128 per key group cached in
 *       memory; "HEAP" all in memory (faster when every event makes a timer)
 *   state.checkpoints.dir ""  where checkpoints are written
 *   state.checkpoints.num-retained "1"  complete checkpoints kept
 *   state.checkpoints.restore-latest "false"  "true": at start, restore from the newest
 *       complete checkpoint under state.checkpoints.dir (required then) if there is one,
 *       else start fresh; a damaged newest checkpoint is skipped for the one before it
 *       (logged), as execution.savepoint.path does with a checkpoint root. A checkpoint
 *       found there wins over execution.savepoint.path when its id is larger than the
 *       savepoint's (a run started from the savepoint wrote it), so the savepoint only
 *       says where the first run starts. One line makes any job resume after a kill (see
 *       docs/configuration.md)
 *   execution.checkpointing.interval "0"  0: no periodic checkpoints
 *   execution.checkpointing.min-pause "0"  between the end of one and the next
 *   execution.checkpointing.timeout "10min"  a slower checkpoint is aborted
 *   execution.checkpointing.tolerable-failed-checkpoints "0"  more in a row fail the job
 *   execution.savepoint.path ""  start from this checkpoint or savepoint directory, or
 *       from the newest usable checkpoint under this checkpoint root
 *   restart-strategy.type "none"  fixed-delay | exponential-delay | failure-rate: a
 *       failure restores the last checkpoint in-process and goes on
 *   restart-strategy.fixed-delay.attempts "3"
 *   restart-strategy.fixed-delay.delay "1s"
 *   restart-strategy.exponential-delay.initial-backoff "1s"
 *   restart-strategy.exponential-delay.max-backoff "5min"
 *   restart-strategy.exponential-delay.backoff-multiplier "2.0"
 *   restart-strategy.exponential-delay.reset-backoff-threshold "1h"
 *   restart-strategy.exponential-delay.attempts "2147483647"
 *   restart-strategy.failure-rate.max-failures-per-interval "1"
 *   restart-strategy.failure-rate.failure-rate-interval "1min"
 *   restart-strategy.failure-rate.delay "1s"
 *   metrics.latency.interval "0"  sources send latency markers this often; 0: off
 *   rest.port "-1"  HTTP endpoint (/metrics, REST API, dashboard); -1: off, 0: any free port
 *   rest.address "127.0.0.1"  address the HTTP endpoint listens on
 *   rest.allow-control "false"  allow POST savepoints and PATCH cancel over HTTP
 *   rest.max-connections "16"  HTTP connections served at once; more are refused
 *   metrics.reporter.prom.port "-1"  a second listener serving only /metrics; -1: off, 0: any free
 *       port
 *   state.backend.rocksdb.metrics.block-cache-usage "false"  bytes in the RocksDB block cache
 *   state.backend.rocksdb.metrics.block-cache-hit "true"  RocksDB block cache hits (on by
 *       default; the four block-cache-* counts cost about 3 % of a RocksDB-bound run)
 *   state.backend.rocksdb.metrics.block-cache-miss "true"  RocksDB block cache misses
 *   state.backend.rocksdb.metrics.block-cache-index-miss "true"  RocksDB block cache misses of
 *       index blocks
 *   state.backend.rocksdb.metrics.block-cache-filter-miss "true"  RocksDB block cache misses of
 *       filter blocks
 *   state.backend.rocksdb.metrics.estimate-num-keys "false"  RocksDB estimate of the keys a store
 *       holds
 *   state.backend.rocksdb.metrics.cur-size-all-mem-tables "false"  bytes in RocksDB memtables
 *   state.backend.rocksdb.metrics.estimate-pending-compaction-bytes "false"  bytes RocksDB
 *       compaction has to rewrite
 *   state.backend.rocksdb.metrics.num-running-compactions "false"  RocksDB compactions running
 *   state.backend.rocksdb.metrics.total-sst-files-size "false"  bytes of all RocksDB SST files
 *   state.backend.rocksdb.metrics.is-write-stopped "false"  1 while RocksDB stops writes (too
 *       many level-0 files or memtables, or too much compaction pending), else 0
 *   state.backend.rocksdb.metrics.actual-delayed-write-rate "false"  bytes/s RocksDB slows
 *       writes to while compaction falls behind; 0: not slowed
 *   state.backend.rocksdb.metrics.cache-hit "true"  state cache: reads it answered
 *   state.backend.rocksdb.metrics.cache-miss "true"  state cache: reads that went to RocksDB
 *   state.backend.rocksdb.metrics.cache-usage "true"  state cache: bytes it holds for the store
 *   state.backend.rocksdb.metrics.cache-dirty-bytes "true"  state cache: bytes not yet in
 *       RocksDB
 *   state.backend.rocksdb.metrics.cache-evictions "true"  state cache: cells evicted
 *   state.backend.rocksdb.metrics.cache-flush-us "true"  state cache: microseconds the last
 *       flush at a checkpoint barrier took
 *   state.backend.rocksdb.metrics.cache-written-ahead "true"  state cache: cells written
 *       ahead of a barrier, down to cache.dirty-target or under cache.dirty-limit
 * Memory sizes are Flink's: a number of bytes with an optional unit b, k/kb, m/mb, g/gb,
 * t/tb (powers of 1024, any case, blanks allowed before it), e.g. "1048576", "512kb",
 * "64 mb", "2TB"; a size larger than the machine's physical memory is refused.
 * Durations are Flink's: a number with an optional unit ms, s/sec, m/min, h/hour, d/day
 * (singular or plural, any case, blanks allowed), e.g. "250", "250 ms", "5s",
 * "10 min", "1h". Unknown keys and bad values are rejected with a message in errstr that
 * gives the reason first, then names the key and quotes the value (shortened when long).
 */
typedef struct fl_config fl_config_t;

FL_API fl_config_t *fl_config_new(void);
FL_API void fl_config_destroy(fl_config_t *conf);
FL_API int fl_config_set(fl_config_t *conf, const char *key, const char *value, char *errstr,
                         size_t errstr_size);
/* The value set for key, or NULL. Borrowed from conf until the next set or destroy. */
FL_API const char *fl_config_get(const fl_config_t *conf, const char *key);
/* The i-th key set (in the order first set) and its value, borrowed like fl_config_get;
 * FL_ENOTFOUND when i is past the last. For listing a configuration. */
FL_API int fl_config_entry(const fl_config_t *conf, size_t i, const char **key, const char **value);

/* Parses a duration in the format above ("250", "250 ms", "5s", "10 min", "1h", "2 days")
 * into milliseconds. Returns FL_EINVAL for anything else, including negative values,
 * units below a millisecond and overflow. */
FL_API int fl_parse_duration(const char *s, int64_t *out_ms);

/* ---------------------------------------------------------------------------------- */
/* Environment                                                                        */

typedef struct fl_env fl_env_t;
typedef struct fl_stream fl_stream_t;                   /* a DataStream */
typedef struct fl_keyed_stream fl_keyed_stream_t;       /* a KeyedStream */
typedef struct fl_windowed_stream fl_windowed_stream_t; /* a WindowedStream */
typedef struct fl_output_tag fl_output_tag_t;           /* names a side output */
typedef struct fl_state_desc fl_state_desc_t;           /* declares keyed state */
typedef struct fl_context fl_context_t;                 /* what a user function sees */
typedef struct fl_buf fl_buf_t;                         /* a growable byte buffer */

/* Creates an environment. conf may be NULL (all defaults) and is copied; the caller
 * destroys it. On failure *out is NULL and errstr says why. */
FL_API int fl_env_new(fl_env_t **out, const fl_config_t *conf, char *errstr, size_t errstr_size);

/* Destroys the environment, its streams, tags, descriptors, and calls the `destroy`
 * members of the function tables given to it. NULL-safe. Not while executing. */
FL_API void fl_env_destroy(fl_env_t *env);

/* Runs the job and returns when it ends: 0 when every source ended and every record
 * reached the sinks; FL_ECANCELED after fl_env_stop(); another code on failure, with
 * fl_env_error() naming the operator, the subtask and the cause. An environment runs
 * once. */
FL_API int fl_env_execute(fl_env_t *env, const char *job_name);

/* The message of the last failure (builder or execution), or "" if none. Borrowed. */
FL_API const char *fl_env_error(const fl_env_t *env);

/* Stops a running job: sources stop, sinks are flushed and closed, and
 * fl_env_execute() returns FL_ECANCELED. Thread-safe and async-signal-safe; before
 * fl_env_execute() it makes the next execute return FL_ECANCELED at once. */
FL_API void fl_env_stop(fl_env_t *env);

/* Takes a savepoint of the running job into the directory path (which must not exist):
 * a checkpoint in the canonical, backend-independent format that a job can start from
 * (configuration key execution.savepoint.path) with another state backend or
 * parallelism. Blocks until the savepoint is complete (0) or failed (an error, with
 * fl_env_error()-style text in errstr). Thread-safe; call it from a thread other than
 * the one in fl_env_execute(). FL_ESTATE when the job is not running, or when some
 * operator already ended and periodic checkpoints are off (only they keep an ended
 * operator's final state). A savepoint does not make sinks commit: the next completed
 * checkpoint commits what they pre-committed for it. */
FL_API int fl_env_savepoint(fl_env_t *env, const char *path, char *errstr, size_t errstr_size);

/* Replaces the processing-time clock (milliseconds) used for processing-time timers,
 * windows, watermark intervals, idleness and state TTL. now_ms is called from worker
 * threads and must be thread-safe. For tests and replays; the default is the
 * CLOCK_REALTIME wall clock. Before execute only. */
FL_API int fl_env_set_clock(fl_env_t *env, int64_t (*now_ms)(void *opaque), void *opaque);

/* Log lines the library writes about a job for the people running it: restarts,
 * checkpoints that failed or were skipped on restore, restores, connector trouble (a
 * broker that cannot be reached). */
typedef enum fl_log_level {
  FL_LOG_ERROR = 0,
  FL_LOG_WARN = 1,
  FL_LOG_INFO = 2
} fl_log_level_t;
/* Receives one line (no newline; borrowed for the call). Called from any of the job's
 * threads, and from a Kafka client's own, possibly at once: it must be thread-safe. */
typedef void (*fl_log_fn)(fl_log_level_t level, const char *line, void *opaque);

/* Sends the environment's log lines to fn instead of the default, which writes
 * "flink: <line>" to stderr; fn NULL restores the default. The library writes to no
 * stream but through this. Before execute only (FL_EINVAL after). */
FL_API int fl_env_set_log(fl_env_t *env, fl_log_fn fn, void *opaque);

/* A JSON document with per-operator metrics, e.g.
 *   {"job":"x","job_id":"<32 hex>","state":"running","operators":[{"id":3,
 *    "name":"window","task":2,"parallelism":2,"records_in":10,"records_out":4,
 *    "records_in_per_second":5.0,"records_out_per_second":2.0,
 *    "late_records_dropped":1,"fired_timers":3,"fired_timers_per_second":1.0,
 *    "current_input_watermark":1999,"current_output_watermark":1999,
 *    "watermark_lag_ms":null,
 *    "busy_time_ms_per_second":12.5,"idle_time_ms_per_second":987.5,
 *    "back_pressured_time_ms_per_second":0,"is_back_pressured":false,
 *    "subtasks":[{...the same per subtask...}]}],"checkpoints":{...}}
 * Watermarks are null before the first; watermark_lag_ms is processing time minus the
 * watermark, for sources (their output) and windows (their input). Rates and times per second are over the last
 * five seconds, updated once a second (docs/metrics.md); the times are those of the
 * operator's task (its chain: "task" is the id of the chain's first operator) and add up
 * to 1000 per subtask; an operator's are the maximum over its subtasks. With
 * metrics.latency.interval set, "latency_ms" gives {"p50","p95","p99","max","count"} of
 * the time from the sources to this operator. User metrics (fl_ctx_counter_add,
 * fl_ctx_gauge_set, fl_ctx_histogram_update) appear as a "metrics" object of name: value
 * in a subtask and in its operator (counters summed, gauges at their maximum;
 * histograms as {"count","min","max","mean","p50","p95","p99"}, per subtask only). A
 * "checkpoints" object counts completed, failed and in-progress checkpoints and
 * restarts, names the checkpoint the job was restored from, and gives the last
 * checkpoint's id, duration and size (last_size_bytes: everything it references;
 * last_new_bytes: what it wrote). Callable from any thread before, during and after
 * execute. The caller frees the string with fl_free(). */
FL_API char *fl_env_metrics_json(fl_env_t *env);

/* The same metrics in the Prometheus text format 0.0.4, named as Flink's
 * PrometheusReporter names them (flink_taskmanager_job_task_operator_numRecordsIn{
 * job_name="...",operator_name="...",subtask_index="0",...}; docs/metrics.md lists
 * them): what GET /metrics of the HTTP endpoint returns. Any thread; free with
 * fl_free(). */
FL_API char *fl_env_metrics_prometheus(fl_env_t *env);

/* The HTTP endpoint (rest.port, rest.address; off by default) serves, while
 * fl_env_execute runs: GET /metrics (Prometheus), a subset of Flink's REST API (/jobs,
 * /jobs/overview, /jobs/<id>, .../plan, .../checkpoints, .../metrics?get=,
 * .../vertices/<vid>/backpressure and /watermarks), the web dashboard at /, and with
 * rest.allow-control=true POST /jobs/<id>/savepoints and PATCH /jobs/<id>?mode=cancel
 * (docs/metrics.md). metrics.reporter.prom.port adds a listener for /metrics alone.
 * These return the port a listener is bound to (useful with port 0: any free port)
 * while it listens, else FL_ENOTFOUND. Any thread. */
FL_API int fl_env_rest_port(fl_env_t *env);
FL_API int fl_env_prometheus_port(fl_env_t *env);

/* ---------------------------------------------------------------------------------- */
/* Records                                                                            */

/* A record is key bytes, value bytes and an event timestamp. What the bytes mean is the
 * user's choice. A record handed to a callback is borrowed for the duration of the call;
 * copy what must outlive it. */
typedef struct fl_record {
  const void *key;
  size_t key_len;
  const void *value;
  size_t value_len;
  int64_t timestamp; /* FL_TS_NONE when the record has none */
} fl_record_t;

typedef struct fl_bytes {
  const void *data;
  size_t len;
} fl_bytes_t;

/* A window [start, end): max timestamp is end - 1. */
typedef struct fl_window {
  int64_t start;
  int64_t end;
} fl_window_t;

/* Byte buffers, used where a callback produces bytes (reduce results). */
FL_API int fl_buf_set(fl_buf_t *buf, const void *data, size_t len);
FL_API int fl_buf_append(fl_buf_t *buf, const void *data, size_t len);
/* Makes the content len bytes long and returns it for writing; NULL on ENOMEM. */
FL_API void *fl_buf_resize(fl_buf_t *buf, size_t len);
FL_API const void *fl_buf_data(const fl_buf_t *buf, size_t *len);

/* ---------------------------------------------------------------------------------- */
/* The context of a user function                                                     */

/* Emits a record downstream (bytes are copied). ts is the event timestamp of the
 * output, usually the input's (fl_ctx_timestamp()). Returns 0 or FL_ENOMEM. */
FL_API int fl_emit(fl_context_t *ctx, const void *key, size_t key_len, const void *value,
                   size_t value_len, int64_t ts);
FL_API int fl_emit_record(fl_context_t *ctx, const fl_record_t *rec);
/* Emits to the side output named by tag (process functions and windows). */
FL_API int fl_emit_side(fl_context_t *ctx, const fl_output_tag_t *tag, const fl_record_t *rec);

/* Records a message for the failure the function is about to return, and returns
 * FL_EUSER so a function can `return fl_ctx_fail(ctx, "bad price %d", p);`. The job
 * fails with the operator's name, the subtask and this message. */
FL_API int fl_ctx_fail(fl_context_t *ctx, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The timestamp of the element (or timer) being processed; FL_TS_NONE if it has none. */
FL_API int64_t fl_ctx_timestamp(const fl_context_t *ctx);
/* The operator's current event-time watermark; FL_TS_NONE before the first one. */
FL_API int64_t fl_ctx_watermark(const fl_context_t *ctx);
/* The processing-time clock, ms. */
FL_API int64_t fl_ctx_processing_time(const fl_context_t *ctx);
/* The current key in a keyed operator (borrowed for the call), NULL elsewhere. */
FL_API const void *fl_ctx_key(const fl_context_t *ctx, size_t *key_len);
/* This subtask's index in [0, parallelism) and the parallelism. */
FL_API int fl_ctx_subtask(const fl_context_t *ctx);
FL_API int fl_ctx_parallelism(const fl_context_t *ctx);

/* User metrics of this subtask (Flink's metric group counters and gauges), shown in
 * fl_env_metrics_json() under the subtask's "metrics" object and, for the operator, as
 * the sum of its subtasks' counters and the maximum of their gauges. A name (at most 95
 * bytes) is registered at its first use; a subtask holds up to 4096 names, later new
 * names return FL_ENOMEM and are not shown. Cheap enough for every record: an update
 * takes no lock and, after the name's first use, no allocation. */
FL_API int fl_ctx_counter_add(fl_context_t *ctx, const char *name, int64_t delta);
FL_API int fl_ctx_gauge_set(fl_context_t *ctx, const char *name, int64_t value);
/* A user histogram (Flink's Histogram): adds value to the distribution of name. It keeps
 * the last 128 values, from which readers compute min, max, mean and quantiles, and
 * counts every update. No lock and no allocation after the name's first use. */
FL_API int fl_ctx_histogram_update(fl_context_t *ctx, const char *name, int64_t value);

/* Timers of a keyed operator, for the current key. Registering the same (domain, ts)
 * twice for a key keeps one timer. An event-time timer fires when the watermark
 * reaches ts; a processing-time timer when the clock does. FL_ESTATE outside a keyed
 * process function. */
FL_API int fl_timer_register(fl_context_t *ctx, fl_time_domain_t domain, int64_t ts);
FL_API int fl_timer_delete(fl_context_t *ctx, fl_time_domain_t domain, int64_t ts);

/* ---------------------------------------------------------------------------------- */
/* Sources                                                                            */

/* Return values of a source's run function. */
#define FL_SOURCE_END 0  /* no more records, ever */
#define FL_SOURCE_MORE 1 /* call again soon */
/* Nothing now: call again when fl_ctx_source_wait_fd()'s fd is readable, or after a short
 * pause if none was set. */
#define FL_SOURCE_WAIT 2

typedef struct fl_source_fn {
  int version; /* FL_SOURCE_FN_VERSION */
  /* Optional: makes the per-subtask instance (default: the opaque pointer). */
  int (*open)(fl_context_t *ctx, void *opaque, void **instance);
  /* Emits at most fl_ctx_source_budget() records with fl_emit(), returns FL_SOURCE_*
   * or a negative error. */
  int (*run)(fl_context_t *ctx, void *instance);
  void (*close)(void *instance); /* optional; per instance that open made */
  void (*destroy)(void *opaque); /* optional */
  /* Version 2 (checkpoints), optional. snapshot: a checkpoint barrier is about to be
   * emitted between two run() calls; append the instance's position (what restore needs
   * to go on from exactly here) to out. restore: called after open and before the first
   * run() when the job starts from a checkpoint or savepoint; states[i] is what subtask
   * i of the job that wrote it appended (n = that job's parallelism, which may differ;
   * a single reader gets only its own state, n = 1). Each instance picks what it owns. */
  int (*snapshot)(fl_context_t *ctx, void *instance, fl_buf_t *out);
  int (*restore)(fl_context_t *ctx, void *instance, const struct fl_bytes *states, size_t n);
  /* Version 3, optional: checkpoint `checkpoint_id` is complete (its manifest is
   * durable), so the positions snapshot appended for it will never be replayed before;
   * e.g. commit them to an external system for monitoring. Called between run() calls;
   * a failure fails the job. Not called for savepoints. Without periodic checkpoints it
   * is called once with INT64_MAX when the whole job ended well. */
  int (*checkpoint_complete)(fl_context_t *ctx, void *instance, int64_t checkpoint_id);
} fl_source_fn_t;
#define FL_SOURCE_FN_VERSION 3

/* How many records run() may emit in this call. */
FL_API size_t fl_ctx_source_budget(const fl_context_t *ctx);
/* In a source's snapshot(): the id of the checkpoint or savepoint being taken (what a
 * later checkpoint_complete(id) refers to); 0 elsewhere. */
FL_API int64_t fl_ctx_checkpoint_id(const fl_context_t *ctx);
/* Asks to be called again when fd is readable (level-triggered, once). */
FL_API int fl_ctx_source_wait_fd(fl_context_t *ctx, int fd);
/* Watermarks generated by the source itself (Flink's SourceContext.emitWatermark and
 * markAsTemporarilyIdle), e.g. the minimum of per-partition watermarks. Call from run():
 * a watermark is forwarded after the records emitted before it, only when larger than
 * the last one the subtask emitted. mark_idle(1) tells downstream operators not to wait
 * for this subtask's watermark; it is active again at its next watermark or
 * mark_idle(0), which it must call before emitting records again. FL_EINVAL outside a
 * source. */
FL_API int fl_ctx_emit_watermark(fl_context_t *ctx, int64_t watermark);
FL_API int fl_ctx_mark_idle(fl_context_t *ctx, int idle);

/* A source with a run function. parallel = 1: one instance per subtask, each told its
 * subtask index; parallel = 0: one instance on subtask 0 (a single reader, in order). */
FL_API fl_stream_t *fl_source(fl_env_t *env, const char *name, const fl_source_fn_t *fn,
                              void *opaque, int parallel);

/* A bounded single-reader source of n records, copied now. */
FL_API fl_stream_t *fl_source_collection(fl_env_t *env, const char *name,
                                         const fl_record_t *records, size_t n);

/* A bounded single-reader source of lines from a file, or stdin when path is "-".
 * Each line (without its "\n" or "\r\n") is one record: empty key, the line as value,
 * no timestamp. Records are read in file order. A line longer than 16 MiB fails the job
 * naming the path and the line number. The same as fl_source_lines_opts() with only
 * version and path set. */
FL_API fl_stream_t *fl_source_lines(fl_env_t *env, const char *name, const char *path);

/* What a lines source does with a line longer than max_line_bytes, or one its parse
 * function fails (as fl_kafka_error_policy_t for messages). */
typedef enum fl_lines_error_policy {
  FL_LINES_ON_ERROR_FAIL = 0,       /* the job fails naming the path and the line number */
  FL_LINES_ON_ERROR_SKIP = 1,       /* dropped, counted ("lines-skipped") */
  FL_LINES_ON_ERROR_DEAD_LETTER = 2 /* emitted to the side output named by dead_letter,
                                       counted ("lines-dead-lettered") */
} fl_lines_error_policy_t;

/* Turns a line (without its end of line; borrowed for the call) into at most one record:
 * return 1 with *out set, 0 to drop the line, or a negative error, for which the error
 * policy applies (fl_ctx_fail() sets the message). *out comes set to the record the line
 * would be without a parse function (empty key, the line, FL_TS_NONE); what it points to
 * must stay valid until the next call. line_no counts every line of the input from 1 (it
 * goes on after a restore). Runs on the source's thread, one call at a time. */
typedef int (*fl_lines_parse_fn)(fl_context_t *ctx, const void *line, size_t len, uint64_t line_no,
                                 fl_record_t *out, void *opaque);

typedef struct fl_lines_source_opts {
  int version;      /* FL_LINES_SOURCE_OPTS_VERSION */
  const char *path; /* a file, or "-" for stdin; required */
  /* The longest line, without its end of line; 0: 16 MiB; at most 1 GiB. The source
   * holds at most this much of a line (plus a read buffer of 256 KiB): a longer one is
   * read and discarded up to its end, keeping only its first bytes for a dead letter. */
  size_t max_line_bytes;
  fl_lines_parse_fn parse;             /* NULL: every line is a record */
  void *parse_opaque;                  /* for parse */
  void (*parse_destroy)(void *opaque); /* optional: called once, when env is destroyed */
  fl_lines_error_policy_t on_error;
  const fl_output_tag_t *dead_letter; /* FL_LINES_ON_ERROR_DEAD_LETTER: required */
  size_t dead_letter_head_bytes;      /* of an over-long line a dead letter keeps; 0: 4096 */
} fl_lines_source_opts_t;
#define FL_LINES_SOURCE_OPTS_VERSION 1

/* A lines source with a line limit, a parse function and an error policy (as
 * fl_source_kafka() has for messages). Bad lines never wedge the job: once one has been
 * skipped or dead-lettered, the position later checkpoints record is past it, so a job
 * restored from them does not meet it again (an over-long line being discarded when a
 * checkpoint is taken is read again from its start after a restore). With
 * FL_LINES_ON_ERROR_DEAD_LETTER every bad line becomes one record of
 * fl_stream_side_output(source, opts->dead_letter): its value is the line as read (an
 * over-long one cut to its first dead_letter_head_bytes), its timestamp FL_TS_NONE, and
 * its key holds the line number, the byte offset, the whole length and the error text,
 * which fl_lines_dead_letter_read() gives back; a lines sink of that stream writes the
 * bad lines as they were. Metrics: counters "lines-skipped" and "lines-dead-lettered" of
 * the source. opts is copied; the parse function's opaque is the source's from this call
 * on (parse_destroy is called at once when the call fails). */
FL_API fl_stream_t *fl_source_lines_opts(fl_env_t *env, const char *name,
                                         const fl_lines_source_opts_t *opts);

/* A dead letter of a lines source, read back from its record. */
typedef struct fl_lines_dead_letter {
  uint64_t line_no;  /* from 1 */
  uint64_t offset;   /* byte offset of the line's start in the input */
  uint64_t line_len; /* the whole line's length, without its end of line */
  const void *line;  /* its first kept_len bytes (all of it unless it was too long) */
  size_t kept_len;
  const char *error; /* why it is bad, NUL-terminated */
} fl_lines_dead_letter_t;

/* Fills *out from a record of a lines source's dead-letter stream (in any operator
 * downstream; its pointers borrow from rec). FL_EINVAL when rec is not one. */
FL_API int fl_lines_dead_letter_read(const fl_record_t *rec, fl_lines_dead_letter_t *out);

/* ---------------------------------------------------------------------------------- */
/* Watermarks                                                                         */

typedef enum fl_watermark_kind {
  FL_WATERMARKS_NONE = 0,       /* no watermarks (event time never advances until end) */
  FL_WATERMARKS_MONOTONOUS = 1, /* max_ts - 1 */
  FL_WATERMARKS_BOUNDED = 2     /* max_ts - max_out_of_orderness - 1 */
} fl_watermark_kind_t;

/* Extracts the event timestamp (ms) of a record. Return 0, or a negative error (the
 * job fails; use fl_ctx_fail() for the message). *ts = FL_TS_NONE is not a timestamp
 * and fails the job (see FL_TS_NONE): a record whose time cannot be read is failed
 * here or filtered out before. */
typedef int (*fl_timestamp_fn)(fl_context_t *ctx, const fl_record_t *rec, int64_t *ts,
                               void *opaque);

typedef struct fl_watermark_strategy {
  int version; /* FL_WATERMARK_STRATEGY_VERSION */
  fl_watermark_kind_t kind;
  int64_t max_out_of_orderness_ms; /* FL_WATERMARKS_BOUNDED */
  int64_t idle_timeout_ms;         /* 0: never idle */
  fl_timestamp_fn timestamp;       /* NULL: keep the record's timestamp */
  void *opaque;                    /* for timestamp; shared by all subtasks */
} fl_watermark_strategy_t;
#define FL_WATERMARK_STRATEGY_VERSION 1

/* assignTimestampsAndWatermarks: sets each record's timestamp and generates
 * watermarks per subtask, emitted every pipeline.auto-watermark-interval (after every
 * record when it is 0), only when larger than the last. The record is forwarded before
 * the watermark it produced. A subtask that saw no record for idle_timeout_ms is
 * marked idle downstream until it produces again. Upstream watermarks are not
 * forwarded; the end of input is (watermark FL_TS_MAX). */
FL_API fl_stream_t *fl_stream_assign_timestamps(fl_stream_t *in, const char *name,
                                                const fl_watermark_strategy_t *strategy);

/* ---------------------------------------------------------------------------------- */
/* Transformations                                                                    */

/* map and flatMap: emit with fl_emit(). map must emit exactly one record per call (the
 * job fails otherwise); flat_map any number. Return 0 or a negative error. */
typedef int (*fl_map_fn)(fl_context_t *ctx, const fl_record_t *in, void *opaque);
/* Returns 1 to keep, 0 to drop, a negative error to fail. */
typedef int (*fl_filter_fn)(fl_context_t *ctx, const fl_record_t *in, void *opaque);
/* Selects the key of a record: sets *key and *key_len to bytes inside `in` or to memory
 * that stays valid until the selector is called again on the same thread. Return 0 or
 * a negative error. */
typedef int (*fl_key_fn)(fl_context_t *ctx, const fl_record_t *in, const void **key,
                         size_t *key_len, void *opaque);

FL_API fl_stream_t *fl_stream_map(fl_stream_t *in, const char *name, fl_map_fn fn, void *opaque);
FL_API fl_stream_t *fl_stream_flat_map(fl_stream_t *in, const char *name, fl_map_fn fn,
                                       void *opaque);
FL_API fl_stream_t *fl_stream_filter(fl_stream_t *in, const char *name, fl_filter_fn fn,
                                     void *opaque);

/* Both streams' records, merged; event time is the minimum of both. */
FL_API fl_stream_t *fl_stream_union(fl_stream_t *a, fl_stream_t *b);
/* Spreads records round-robin over the subtasks. */
FL_API fl_stream_t *fl_stream_rebalance(fl_stream_t *in);

/* Partitions by key: the selector's bytes become the record's key (fn NULL: keep the
 * record's key). Keys map to pipeline.max-parallelism key groups by a stable 64-bit
 * hash; key group g runs on subtask g * parallelism / max_parallelism. */
FL_API fl_keyed_stream_t *fl_stream_key_by(fl_stream_t *in, fl_key_fn fn, void *opaque);

/* Output tags name side outputs. Owned by env; the same name gives the same tag. */
FL_API fl_output_tag_t *fl_output_tag(fl_env_t *env, const char *name);
/* The records an operator emitted with fl_emit_side(tag, ...) (or a window's late
 * data), as a stream. */
FL_API fl_stream_t *fl_stream_side_output(fl_stream_t *op, const fl_output_tag_t *tag);

/* A ProcessFunction (on a DataStream) or KeyedProcessFunction (on a KeyedStream). */
typedef struct fl_process_fn {
  int version;                                                   /* FL_PROCESS_FN_VERSION */
  int (*open)(fl_context_t *ctx, void *opaque, void **instance); /* optional */
  int (*process)(fl_context_t *ctx, const fl_record_t *in, void *instance);
  /* Keyed only, optional: a timer of the current key fired at ts; fl_ctx_timestamp()
   * is ts. Records emitted here default to timestamp ts. */
  int (*on_timer)(fl_context_t *ctx, int64_t ts, fl_time_domain_t domain, void *instance);
  void (*close)(void *instance); /* optional */
  void (*destroy)(void *opaque); /* optional */
} fl_process_fn_t;
#define FL_PROCESS_FN_VERSION 1

FL_API fl_stream_t *fl_stream_process(fl_stream_t *in, const char *name, const fl_process_fn_t *fn,
                                      void *opaque);
FL_API fl_stream_t *fl_keyed_process(fl_keyed_stream_t *in, const char *name,
                                     const fl_process_fn_t *fn, void *opaque);

/* Reduce: combines two values into out (fl_buf_set()). Return 0 or negative error. */
typedef int (*fl_reduce_fn)(fl_context_t *ctx, const void *a, size_t a_len, const void *b,
                            size_t b_len, fl_buf_t *out, void *opaque);
/* Reads a number from a record. NULL where one is expected: the value is a native
 * double (8 bytes). Return 0 or a negative error. */
typedef int (*fl_number_fn)(fl_context_t *ctx, const fl_record_t *in, double *out, void *opaque);

/* Rolling aggregations on a KeyedStream: for each input, the updated aggregate of its
 * key is emitted with the input's key and timestamp. reduce emits the reduced value;
 * sum, min and max emit the aggregate as a native double (8 bytes). */
FL_API fl_stream_t *fl_keyed_reduce(fl_keyed_stream_t *in, const char *name, fl_reduce_fn fn,
                                    void *opaque);
FL_API fl_stream_t *fl_keyed_sum(fl_keyed_stream_t *in, const char *name, fl_number_fn fn,
                                 void *opaque);
FL_API fl_stream_t *fl_keyed_min(fl_keyed_stream_t *in, const char *name, fl_number_fn fn,
                                 void *opaque);
FL_API fl_stream_t *fl_keyed_max(fl_keyed_stream_t *in, const char *name, fl_number_fn fn,
                                 void *opaque);

/* ---------------------------------------------------------------------------------- */
/* Sinks                                                                              */

typedef struct fl_sink_fn {
  int version;                                                   /* FL_SINK_FN_VERSION */
  int (*open)(fl_context_t *ctx, void *opaque, void **instance); /* optional */
  int (*write)(fl_context_t *ctx, const fl_record_t *in, void *instance);
  /* optional: called when the input ended or the job stops; return 0 or error */
  int (*flush)(fl_context_t *ctx, void *instance);
  void (*close)(void *instance); /* optional */
  void (*destroy)(void *opaque); /* optional */
  /* Version 2 (checkpoints), optional: the two-phase-commit hooks of Flink's
   * TwoPhaseCommitSinkFunction. snapshot (pre-commit): barrier `checkpoint_id` reached
   * the sink: everything written before it must become durable-but-uncommitted, and
   * what is needed to commit or abort it later is appended to out. checkpoint_complete:
   * checkpoint `checkpoint_id` is complete (its manifest is durable): commit everything
   * pre-committed up to it; without periodic checkpoints it is called once with
   * checkpoint_id INT64_MAX when every operator of the job ended well (the job's end is
   * then the commit point). checkpoint_aborted: it will never complete. restore: the job
   * starts from a checkpoint; states[i] is what subtask i appended at that checkpoint
   * (n = that job's parallelism): those pre-commits belong to a complete checkpoint and
   * must be committed (idempotently) by exactly one instance (e.g. i % parallelism ==
   * subtask), and anything written after them discarded. */
  int (*snapshot)(fl_context_t *ctx, void *instance, int64_t checkpoint_id, fl_buf_t *out);
  int (*checkpoint_complete)(fl_context_t *ctx, void *instance, int64_t checkpoint_id);
  void (*checkpoint_aborted)(fl_context_t *ctx, void *instance, int64_t checkpoint_id);
  int (*restore)(fl_context_t *ctx, void *instance, const struct fl_bytes *states, size_t n);
} fl_sink_fn_t;
#define FL_SINK_FN_VERSION 2

FL_API int fl_stream_sink(fl_stream_t *in, const char *name, const fl_sink_fn_t *fn, void *opaque);
/* Writes each record's value followed by '\n' to a file (created or truncated), or to
 * stdout when path is "-". Subtasks write whole lines; the order of one subtask's
 * records is kept. */
FL_API int fl_stream_sink_lines(fl_stream_t *in, const char *name, const char *path);

/* An exactly-once file sink (Flink's FileSink with two-phase commit): each subtask
 * writes lines (value + '\n') to an in-progress file in dir; at each checkpoint barrier
 * it closes it as pending, and when that checkpoint completes the pending file is
 * renamed to its final name "part-<subtask>-<checkpoint id>" (the file written after the
 * last checkpoint of a bounded input is "part-<subtask>-end"). Only final files count as
 * output: after a crash and a restore, files of checkpoints that never completed are
 * deleted and pre-committed ones of the restored checkpoint are committed, so the final
 * files hold every record exactly once. Without checkpoints the single file is
 * committed when the whole job ended well (a failed job commits nothing). Names starting
 * with '.' are in-progress/pending. */
FL_API int fl_stream_sink_files(fl_stream_t *in, const char *name, const char *dir);

/* ---------------------------------------------------------------------------------- */
/* Kafka (librdkafka)                                                                 */
/*
 * Sources and sinks of Kafka topics. Both take librdkafka properties as a
 * NULL-terminated array of key, value pairs (e.g. {"security.protocol", "SASL_SSL",
 * "sasl.password", pw, NULL}), applied after the library's own settings; errors and
 * logs never show the values of properties whose name contains "password", "secret",
 * "key" (but not "key.location" paths) or "token". Builder errors name the operator and
 * the property. `flink-kafka-local` (tools/) runs a local mock cluster for tests and
 * demos; see README for which guarantees were proven only against it.
 *
 * Brokers that do not answer: librdkafka retries for as long as it takes, and the job
 * waits. While a broker a source or sink needs has not answered for five statistics
 * intervals (statistics.interval.ms, 1 s unless props set it; 0 turns this off) the job's
 * log (fl_env_set_log) gets a warning naming it, again every thirty intervals while it
 * lasts, and an info line when it answers again.
 */

/* A Kafka message, as a source hands it to its deserializer and a sink's serializer
 * fills it. Borrowed for the duration of the call. */
typedef struct fl_kafka_header {
  const char *name;
  const void *value; /* NULL: a header without value */
  size_t value_len;
} fl_kafka_header_t;

typedef struct fl_kafka_message {
  const char *topic; /* sink: NULL sends to the sink's topic */
  int32_t partition; /* sink: -1 chooses by key hash (see fl_stream_sink_kafka) */
  int64_t offset;    /* source only */
  int64_t timestamp; /* ms; FL_TS_NONE: none (sink: the broker's time) */
  const void *key;   /* NULL: no key */
  size_t key_len;
  const void *value; /* NULL: a tombstone */
  size_t value_len;
  const fl_kafka_header_t *headers;
  size_t n_headers;
} fl_kafka_message_t;

typedef enum fl_kafka_start {
  FL_KAFKA_START_EARLIEST = 0,  /* the oldest retained offset */
  FL_KAFKA_START_LATEST = 1,    /* only messages produced after the start */
  FL_KAFKA_START_COMMITTED = 2, /* the group's committed offset, else `fallback` */
  FL_KAFKA_START_TIMESTAMP = 3  /* the first message with timestamp >= start_timestamp_ms
                                   (the end when there is none) */
} fl_kafka_start_t;

typedef enum fl_kafka_error_policy {
  FL_KAFKA_ON_ERROR_FAIL = 0,       /* the job fails naming topic, partition and offset */
  FL_KAFKA_ON_ERROR_SKIP = 1,       /* dropped, counted ("deserialize-errors-skipped") */
  FL_KAFKA_ON_ERROR_DEAD_LETTER = 2 /* the original key, value, timestamp and headers
                                       are produced to dead_letter_topic with headers
                                       fl.error (the message), fl.topic, fl.partition,
                                       fl.offset (decimal text); counted
                                       ("dead-lettered"). Delivered before the
                                       checkpoint that covers the offset completes. */
} fl_kafka_error_policy_t;

/* Turns a message into at most one record: return 1 with *out set (its bytes must stay
 * valid until the next call on the same subtask), 0 to drop the message, or a negative
 * error, for which the error policy applies (fl_ctx_fail() sets the message). Runs on
 * the source's worker threads, one call at a time per subtask. */
typedef int (*fl_kafka_deserialize_fn)(fl_context_t *ctx, const fl_kafka_message_t *msg,
                                       fl_record_t *out, void *opaque);

typedef struct fl_kafka_source_opts {
  int version;          /* FL_KAFKA_SOURCE_OPTS_VERSION */
  const char *brokers;  /* bootstrap.servers, required */
  const char *topics;   /* comma-separated topic names, or one regular expression
                           starting with '^' (matched against the topics at start) */
  const char *group_id; /* consumer group for committed offsets; NULL: the source's
                           name */
  fl_kafka_start_t start;
  fl_kafka_start_t fallback;  /* START_COMMITTED without a committed offset: EARLIEST
                                 or LATEST */
  int64_t start_timestamp_ms; /* START_TIMESTAMP */
  int bounded;                /* 1: stop at the end offsets seen at start, then end */
  const char *const *props;
  /* Event time: NULL: records keep the message timestamp and no watermarks are made
   * (event time advances only at the end of a bounded source). Else the strategy's
   * timestamp function (or the message timestamp) and watermarks generated per
   * partition; the subtask's watermark is the minimum over its partitions that are not
   * idle (no message for idle_timeout_ms), and the subtask is idle when all are. A
   * timestamp function that fails, or that gives FL_TS_NONE (never an event time), makes
   * its message a bad one for on_error, as a failed deserialization does. */
  const fl_watermark_strategy_t *watermarks;
  fl_kafka_deserialize_fn deserialize;       /* NULL: key, value, timestamp of the message */
  void *deserialize_opaque;                  /* shared by all subtasks */
  void (*deserialize_destroy)(void *opaque); /* optional */
  fl_kafka_error_policy_t on_error;
  const char *dead_letter_topic; /* FL_KAFKA_ON_ERROR_DEAD_LETTER */
  int timeout_ms;                /* metadata and start-up calls; 0: 30000 */
} fl_kafka_source_opts_t;
#define FL_KAFKA_SOURCE_OPTS_VERSION 1

/* Kafka source (Flink's KafkaSource). Each subtask has one consumer; the partitions of
 * the topics, sorted by (topic, partition), are assigned to subtasks round-robin (the
 * i-th to subtask i % parallelism); partitions created after the start are not read.
 * Positions are part of checkpoints and restored from them (at any parallelism: each
 * subtask takes the partitions it owns now); when a checkpoint completes, the positions
 * it holds are also committed to the consumer group, for lag tools, but never read back
 * except for START_COMMITTED on a fresh start. Metrics per subtask: counters
 * "records-consumed", "deserialize-errors-skipped", "dead-lettered", "commits-succeeded"
 * and "commits-failed" (group commits by their result); gauges "records-lag-max" and,
 * per partition, "records-lag.<topic>.<partition>", "current-offset.<topic>.<partition>"
 * (the next offset to read) and "committed-offset.<topic>.<partition>" (last committed,
 * -1 before the first commit). opts is copied. */
FL_API fl_stream_t *fl_source_kafka(fl_env_t *env, const char *name,
                                    const fl_kafka_source_opts_t *opts);

typedef enum fl_kafka_guarantee {
  FL_KAFKA_AT_LEAST_ONCE = 0, /* flush at every checkpoint barrier and at the end */
  FL_KAFKA_EXACTLY_ONCE = 1,  /* one transaction per checkpoint epoch, see below */
  FL_KAFKA_NO_GUARANTEE = 2   /* fire and forget; still flushed at the end */
} fl_kafka_guarantee_t;

/* Fills the message for a record: return 1 to send it, 0 to drop the record, or a
 * negative error (the job fails). What *out points to must stay valid until the call
 * returns. */
typedef int (*fl_kafka_serialize_fn)(fl_context_t *ctx, const fl_record_t *in,
                                     fl_kafka_message_t *out, void *opaque);

typedef struct fl_kafka_sink_opts {
  int version;         /* FL_KAFKA_SINK_OPTS_VERSION */
  const char *brokers; /* bootstrap.servers, required */
  const char *topic;   /* where messages without a topic go; required unless the
                          serializer names one for every message */
  fl_kafka_guarantee_t guarantee;
  /* EXACTLY_ONCE: subtask s uses transactional.id "<prefix>-<s>"; NULL: the sink's
   * name. Must be unique among the jobs writing to one cluster; no whitespace or '/'. */
  const char *transactional_id_prefix;
  /* EXACTLY_ONCE: where committed transactions are logged, shared by every process of
   * the job, like the checkpoint directory; NULL: "<state.checkpoints.dir>/kafka-txn". */
  const char *txn_log_dir;
  const char *const *props;
  fl_kafka_serialize_fn serialize;         /* NULL: the record's key, value and timestamp */
  void *serialize_opaque;                  /* shared by all subtasks */
  void (*serialize_destroy)(void *opaque); /* optional */
  /* Flush, transaction and start-up calls; 0: 60000. AT_LEAST_ONCE and NO_GUARANTEE:
   * also how long a message may take to be delivered (message.timeout.ms, unless props
   * set it or delivery.timeout.ms): one that is not fails the job, also while no record
   * arrives. */
  int timeout_ms;
  /* Version 2. EXACTLY_ONCE: what a start does when it would write again output this
   * sink already committed. That is a restore from checkpoint N while the transaction
   * log shows transactions committed at later checkpoints (the restore fell back past
   * damaged or deleted checkpoints, or an older checkpoint or savepoint was chosen), or
   * a start without any checkpoint while the transaction log, or, when there is no log
   * (it was deleted with the checkpoint directory), the last record of a partition of
   * `topic` (its fl.txn header), shows committed output of this transactional_id_prefix.
   * 0: the job fails, naming the checkpoints or the partition, and the choices: restore
   * from (a repaired copy of) the newest checkpoint, start new output under a new
   * transactional_id_prefix, or set this. 1: the job goes on and writes that output
   * again (duplicates for read_committed consumers), with a warning in the log. A
   * version 1 table reads as 0. */
  int accept_duplicates;
} fl_kafka_sink_opts_t;
#define FL_KAFKA_SINK_OPTS_VERSION 2

/* Kafka sink (Flink's KafkaSink). Messages without a partition go where librdkafka's
 * default partitioner puts them (murmur2 of the key as the Java client does, random
 * without a key), so keyed output lands in the same partition as from a Java producer.
 * A delivery error fails the job naming the topic and the broker's error. A job that
 * fails or is stopped still delivers what it can within min(timeout_ms, 10 s), and
 * says on its log how many messages it could not (they are lost; with AT_LEAST_ONCE
 * and checkpoints, a restore writes them again).
 *
 * EXACTLY_ONCE: each subtask runs a transactional producer and writes everything
 * between two checkpoint barriers in one transaction, committed when that checkpoint
 * completes and aborted when it fails, so read_committed consumers see each record
 * once. Every message carries the header fl.txn "<transactional.id>/<checkpoint id>/
 * <attempt>" (the checkpoint expected to commit it when it began). Because librdkafka
 * cannot resume another producer's transaction, the records of a pre-committed
 * transaction are also kept in the checkpoint (bounded by what is written between two
 * completed checkpoints), with the offsets the broker gave them. The commit is logged
 * in txn_log_dir: "intent" (fsync'd) before the commit is sent, "committed" after the
 * broker acknowledged it. On restore, each transaction of the
 * restored checkpoint is resolved after init_transactions() (which completes or aborts
 * whatever the crashed producer left open): logged committed: nothing to do; no intent:
 * it was never committed, so its records are written again in a new transaction and
 * committed; intent without commit (the crash came between "checkpoint complete" and
 * "commit acknowledged"): a read_committed consumer reads its first record's offset
 * back; if that record is visible it was committed, else it is written again. Loss and
 * duplicates are thereby excluded on a broker that implements read_committed. A start
 * that would write again output the sink already committed (a restore that skipped
 * checkpoints whose transactions committed, or a start without a checkpoint over
 * committed output) fails, naming what it found, unless accept_duplicates is set.
 * EXACTLY_ONCE needs state.checkpoints.dir or txn_log_dir (else FL_EINVAL); without
 * periodic checkpoints one transaction is committed when the job ended well (and a
 * savepoint fails the job: it would have to hold every record). opts is copied. */
FL_API int fl_stream_sink_kafka(fl_stream_t *in, const char *name,
                                const fl_kafka_sink_opts_t *opts);

/* ---------------------------------------------------------------------------------- */
/* Keyed state                                                                        */
/*
 * State is declared by descriptors (owned by env) and used from keyed functions
 * (KeyedProcessFunction, rolling aggregations): every call addresses the state of the
 * current key in the calling operator. Using a descriptor in two operators gives each
 * its own state. Pointers returned by a get are borrowed until the next state call on
 * the same context. Calls outside a keyed context, or with a descriptor of another
 * kind, return FL_ESTATE.
 */
typedef enum fl_state_kind {
  FL_STATE_VALUE = 0,
  FL_STATE_LIST = 1,
  FL_STATE_MAP = 2,
  FL_STATE_REDUCING = 3,
  FL_STATE_AGGREGATING = 4
} fl_state_kind_t;

/* An aggregate function with a fixed-size accumulator. */
typedef struct fl_aggregate_fn {
  int version;     /* FL_AGGREGATE_FN_VERSION */
  size_t acc_size; /* bytes, 1..65536 */
  void (*init)(void *acc, void *opaque);
  int (*add)(fl_context_t *ctx, void *acc, const fl_record_t *in, void *opaque);
  /* Required for session windows: folds `other` into acc. */
  void (*merge)(void *acc, const void *other, void *opaque);
  /* Windows: emit the result of the window (any number of records, usually one). For
   * AggregatingState it is not called. */
  int (*result)(fl_context_t *ctx, const fl_window_t *window, const void *acc, void *opaque);
  void (*destroy)(void *opaque); /* optional */
} fl_aggregate_fn_t;
#define FL_AGGREGATE_FN_VERSION 1

FL_API fl_state_desc_t *fl_state_value(fl_env_t *env, const char *name);
FL_API fl_state_desc_t *fl_state_list(fl_env_t *env, const char *name);
FL_API fl_state_desc_t *fl_state_map(fl_env_t *env, const char *name);
FL_API fl_state_desc_t *fl_state_reducing(fl_env_t *env, const char *name, fl_reduce_fn fn,
                                          void *opaque);
FL_API fl_state_desc_t *fl_state_aggregating(fl_env_t *env, const char *name,
                                             const fl_aggregate_fn_t *fn, void *opaque);

/* State TTL (Flink's StateTtlConfig), in processing time. */
typedef enum fl_ttl_update {
  FL_TTL_ON_CREATE_AND_WRITE = 0,
  FL_TTL_ON_READ_AND_WRITE = 1
} fl_ttl_update_t;
typedef enum fl_ttl_visibility {
  FL_TTL_NEVER_RETURN_EXPIRED = 0,
  FL_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP = 1
} fl_ttl_visibility_t;
typedef struct fl_ttl_config {
  int version; /* FL_TTL_CONFIG_VERSION */
  int64_t ttl_ms;
  fl_ttl_update_t update;
  fl_ttl_visibility_t visibility;
  /* Incremental cleanup: after each state access (and after each record when
   * cleanup_every_record), up to this many entries are checked and expired ones
   * removed. 0 disables; expired entries are then removed only when read. */
  size_t incremental_cleanup_size;
  int cleanup_every_record;
} fl_ttl_config_t;
#define FL_TTL_CONFIG_VERSION 1

/* Sets TTL on a descriptor before execute. FL_EINVAL for ttl_ms <= 0. */
FL_API int fl_state_desc_set_ttl(fl_state_desc_t *desc, const fl_ttl_config_t *ttl);

/* ValueState. get: 1 and the value, or 0 when there is none. */
FL_API int fl_value_get(fl_context_t *ctx, const fl_state_desc_t *d, const void **value,
                        size_t *len);
FL_API int fl_value_set(fl_context_t *ctx, const fl_state_desc_t *d, const void *value, size_t len);
/* Clears the current key's state of any kind. */
FL_API int fl_state_clear(fl_context_t *ctx, const fl_state_desc_t *d);

/* ListState: items in insertion order. get: *items is an array of *n views. */
FL_API int fl_list_add(fl_context_t *ctx, const fl_state_desc_t *d, const void *item, size_t len);
FL_API int fl_list_get(fl_context_t *ctx, const fl_state_desc_t *d, const fl_bytes_t **items,
                       size_t *n);
FL_API int fl_list_update(fl_context_t *ctx, const fl_state_desc_t *d, const fl_bytes_t *items,
                          size_t n);

/* MapState. get: 1 and the value, or 0. foreach: cb returns 0 to go on, non-zero to
 * stop (that value is returned); the map must not be changed from cb. */
FL_API int fl_map_get(fl_context_t *ctx, const fl_state_desc_t *d, const void *ukey,
                      size_t ukey_len, const void **value, size_t *len);
FL_API int fl_map_put(fl_context_t *ctx, const fl_state_desc_t *d, const void *ukey,
                      size_t ukey_len, const void *value, size_t len);
FL_API int fl_map_remove(fl_context_t *ctx, const fl_state_desc_t *d, const void *ukey,
                         size_t ukey_len);
FL_API int fl_map_foreach(fl_context_t *ctx, const fl_state_desc_t *d,
                          int (*cb)(const void *ukey, size_t ukey_len, const void *value,
                                    size_t len, void *arg),
                          void *arg);

/* ReducingState: add folds the value in with the descriptor's reduce function. */
FL_API int fl_reducing_add(fl_context_t *ctx, const fl_state_desc_t *d, const void *value,
                           size_t len);
FL_API int fl_reducing_get(fl_context_t *ctx, const fl_state_desc_t *d, const void **value,
                           size_t *len);

/* AggregatingState: add runs the aggregate's add on the accumulator; get returns the
 * accumulator (acc_size bytes): 1, or 0 when there is none. */
FL_API int fl_aggregating_add(fl_context_t *ctx, const fl_state_desc_t *d, const fl_record_t *in);
FL_API int fl_aggregating_get(fl_context_t *ctx, const fl_state_desc_t *d, const void **acc);

/* ---------------------------------------------------------------------------------- */
/* Windows                                                                            */
/*
 * Event-time semantics are Flink's (WindowOperator with the default triggers): a window
 * fires when the watermark passes its max timestamp (end - 1), and again for every
 * element added within the allowed lateness; its state is removed when the watermark
 * passes max timestamp + allowed lateness. Elements that fall only into removed
 * windows are dropped, counted in late_records_dropped, and emitted to the late-data
 * side output when one is set. Session windows that overlap or touch merge.
 * Processing-time windows fire by the clock; at the end of a bounded input every
 * pending window fires.
 */
FL_API fl_windowed_stream_t *fl_window_tumbling(fl_keyed_stream_t *in, fl_time_domain_t domain,
                                                int64_t size_ms, int64_t offset_ms);
FL_API fl_windowed_stream_t *fl_window_sliding(fl_keyed_stream_t *in, fl_time_domain_t domain,
                                               int64_t size_ms, int64_t slide_ms,
                                               int64_t offset_ms);
FL_API fl_windowed_stream_t *fl_window_session(fl_keyed_stream_t *in, fl_time_domain_t domain,
                                               int64_t gap_ms);
/* Event time only; default 0. */
FL_API void fl_window_allowed_lateness(fl_windowed_stream_t *w, int64_t lateness_ms);
FL_API void fl_window_late_output(fl_windowed_stream_t *w, const fl_output_tag_t *tag);

/* Emits one record per firing: the window's key, the reduced value, timestamp
 * end - 1. */
FL_API fl_stream_t *fl_window_reduce(fl_windowed_stream_t *w, const char *name, fl_reduce_fn fn,
                                     void *opaque);
/* Calls fn->result at each firing, which emits what it wants (key: fl_ctx_key()). */
FL_API fl_stream_t *fl_window_aggregate(fl_windowed_stream_t *w, const char *name,
                                        const fl_aggregate_fn_t *fn, void *opaque);
/* A ProcessWindowFunction: gets all elements of the window, in arrival order. */
typedef int (*fl_window_process_fn)(fl_context_t *ctx, const fl_window_t *window,
                                    const fl_record_t *elements, size_t n, void *opaque);
FL_API fl_stream_t *fl_window_process(fl_windowed_stream_t *w, const char *name,
                                      fl_window_process_fn fn, void *opaque);

/* ---------------------------------------------------------------------------------- */
/* Two inputs                                                                         */
/*
 * An operator with two inputs sees the minimum of both inputs' watermarks (an idle input
 * does not hold it back) and ends when both inputs ended.
 *
 * The builders below follow the other builder calls: name may be NULL or "" (a name
 * "<kind>-<id>" is made); invalid arguments record a sticky error naming the operator.
 * They return NULL only when given a NULL stream, or streams of two environments (a
 * sticky error on the first stream's environment); a function table that is not kept
 * then has its destroy called at once.
 */

/* A CoProcessFunction (connect of two DataStreams) or KeyedCoProcessFunction (connect of
 * two KeyedStreams). process1 gets the records of the first input, process2 those of the
 * second; both are required. In the keyed form both inputs must be keyed the same way
 * (the same key bytes mean the same key): keyed state and timers are shared by both
 * inputs, and on_timer runs with the timer's key. In the non-keyed form keyed state and
 * timers return FL_ESTATE and on_timer is never called. */
typedef struct fl_co_process_fn {
  int version;                                                   /* FL_CO_PROCESS_FN_VERSION */
  int (*open)(fl_context_t *ctx, void *opaque, void **instance); /* optional */
  int (*process1)(fl_context_t *ctx, const fl_record_t *in, void *instance);
  int (*process2)(fl_context_t *ctx, const fl_record_t *in, void *instance);
  /* Keyed only, optional: a timer of the current key fired at ts. */
  int (*on_timer)(fl_context_t *ctx, int64_t ts, fl_time_domain_t domain, void *instance);
  void (*close)(void *instance); /* optional */
  void (*destroy)(void *opaque); /* optional */
} fl_co_process_fn_t;
#define FL_CO_PROCESS_FN_VERSION 1

/* Records of a and b go forward (each keeps its partitioning), as Flink's connect. */
FL_API fl_stream_t *fl_connect_process(fl_stream_t *a, fl_stream_t *b, const char *name,
                                       const fl_co_process_fn_t *fn, void *opaque);
FL_API fl_stream_t *fl_keyed_connect_process(fl_keyed_stream_t *a, fl_keyed_stream_t *b,
                                             const char *name, const fl_co_process_fn_t *fn,
                                             void *opaque);

/* Called for each joined pair: a from the first stream, b from the second, with equal
 * keys (fl_ctx_key()). a and b are borrowed for the call; their key is the join key (the
 * key selector's bytes), their timestamps the elements' own. fl_ctx_timestamp() is the
 * pair's timestamp, which emitted records normally carry. Emits what it wants; a
 * negative return fails the job. */
typedef int (*fl_join_fn)(fl_context_t *ctx, const fl_record_t *a, const fl_record_t *b,
                          void *opaque);

typedef enum fl_window_assigner_kind {
  FL_ASSIGNER_TUMBLING = 0,
  FL_ASSIGNER_SLIDING = 1,
  FL_ASSIGNER_SESSION = 2
} fl_window_assigner_kind_t;

/* A window assigner by value, for operators that take one as a parameter. */
typedef struct fl_window_assigner {
  fl_window_assigner_kind_t kind;
  fl_time_domain_t domain;
  int64_t size_ms;   /* tumbling, sliding */
  int64_t slide_ms;  /* sliding */
  int64_t offset_ms; /* tumbling, sliding */
  int64_t gap_ms;    /* session */
} fl_window_assigner_t;

/* Window join (Flink's a.join(b).where(..).equalTo(..).window(w).apply(fn)): an inner
 * join of the elements of a and b that have the same key and fall into the same window;
 * fn runs for every pair when the window fires, with fl_ctx_timestamp() = the window's
 * max timestamp (end - 1): each element of a in arrival order with each element of b in
 * arrival order. Windows follow the rules of the Windows section with allowed lateness
 * 0: an element of a sliding window is paired once per window both elements fall into,
 * and session windows of both inputs merge with each other. Late elements (their windows
 * already fired) are dropped and counted in late_records_dropped. In the metrics the
 * join is two operators: "<name>.sides", which receives both inputs, and "<name>", the
 * window (late_records_dropped is counted there). */
FL_API fl_stream_t *fl_window_join(fl_keyed_stream_t *a, fl_keyed_stream_t *b, const char *name,
                                   const fl_window_assigner_t *w, fl_join_fn fn, void *opaque);

/* Interval join (Flink's a.intervalJoin(b).between(lower, upper)): joins a's element
 * at time t with b's elements of the same key at times in [t + lower, t + upper] (event
 * time; a record without a timestamp fails the job); the pair's timestamp is
 * max(a.ts, b.ts). An element is paired, when it arrives, with the buffered elements of
 * the other input in range, in their time order. Elements behind the watermark when
 * they arrive (ts < watermark) are late: not joined, counted in late_records_dropped,
 * and sent to the side output of their side when one is set. An element is kept in
 * state only until the watermark passes the last time it could still join (Flink's
 * cleanup times: an element of a until t + upper, or t when upper <= 0; of b until
 * t - lower, or t when lower >= 0). */
typedef struct fl_interval_join_opts {
  int version;                /* FL_INTERVAL_JOIN_OPTS_VERSION */
  int64_t lower_ms, upper_ms; /* lower <= upper, else the build fails */
  /* Non-zero: the bound is excluded (lower + 1 ms, upper - 1 ms, as Flink's
   * lowerBoundExclusive()/upperBoundExclusive(); bounds 1 ms apart then join nothing). */
  int lower_exclusive, upper_exclusive;
  const fl_output_tag_t *left_late, *right_late; /* optional */
} fl_interval_join_opts_t;
#define FL_INTERVAL_JOIN_OPTS_VERSION 1
FL_API fl_stream_t *fl_interval_join(fl_keyed_stream_t *a, fl_keyed_stream_t *b, const char *name,
                                     const fl_interval_join_opts_t *opts, fl_join_fn fn,
                                     void *opaque);

/* Broadcast state (Flink's keyed.connect(stream.broadcast(desc)).process(..)): every
 * element of the broadcast stream reaches every parallel instance, where
 * process_broadcast may change the broadcast state (map state descriptors made with
 * fl_state_map, used with the fl_broadcast_* calls); it runs without a key, so keyed
 * state and timers return FL_ESTATE there. process (required, like process_broadcast)
 * runs for the keyed stream's elements, and on_timer for their timers, with the key's
 * keyed state and timers; both may only read broadcast state. Each instance keeps its
 * own copy of the broadcast state; for every instance to hold the same, process_broadcast
 * must update it the same way on every instance (as in Flink). The copy is part of the
 * instance's checkpoints; a restore at another parallelism gives instance i the copy of
 * old instance i mod the old parallelism. Nothing orders the two inputs' records: an
 * element that needs the rules broadcast before it can wait for them in event time. */
typedef struct fl_broadcast_process_fn {
  int version; /* FL_BROADCAST_PROCESS_FN_VERSION */
  int (*open)(fl_context_t *ctx, void *opaque, void **instance); /* optional */
  int (*process)(fl_context_t *ctx, const fl_record_t *in, void *instance);
  int (*process_broadcast)(fl_context_t *ctx, const fl_record_t *in, void *instance);
  int (*on_timer)(fl_context_t *ctx, int64_t ts, fl_time_domain_t domain,
                  void *instance); /* optional */
  void (*close)(void *instance);   /* optional */
  void (*destroy)(void *opaque);   /* optional */
} fl_broadcast_process_fn_t;
#define FL_BROADCAST_PROCESS_FN_VERSION 1

FL_API fl_stream_t *fl_keyed_broadcast_process(fl_keyed_stream_t *keyed, fl_stream_t *broadcast,
                                               const char *name,
                                               const fl_broadcast_process_fn_t *fn, void *opaque);
/* Broadcast state access, in a broadcast process function only, with a map descriptor
 * (else FL_ESTATE). get: 1 and a view valid until the next state call, 0 if absent.
 * put and remove: FL_ESTATE outside process_broadcast (read-only there) and from a
 * foreach callback. foreach: cb returns 0 to go on, non-zero to stop (that value is
 * returned); views are valid during the callback. */
FL_API int fl_broadcast_get(fl_context_t *ctx, const fl_state_desc_t *d, const void *ukey,
                            size_t ukey_len, const void **value, size_t *value_len);
FL_API int fl_broadcast_put(fl_context_t *ctx, const fl_state_desc_t *d, const void *ukey,
                            size_t ukey_len, const void *value, size_t value_len);
FL_API int fl_broadcast_remove(fl_context_t *ctx, const fl_state_desc_t *d, const void *ukey,
                               size_t ukey_len);
FL_API int fl_broadcast_foreach(fl_context_t *ctx, const fl_state_desc_t *d,
                                int (*cb)(const void *ukey, size_t ukey_len, const void *value,
                                          size_t value_len, void *arg),
                                void *arg);

/* ---------------------------------------------------------------------------------- */
/* SQL                                                                                */
/*
 * Flink SQL on the same runtime: scripts of CREATE TABLE / CREATE VIEW / SET / INSERT
 * statements and queries are compiled onto the operators above (sources, maps, keyed
 * windows with incremental aggregates, interval and window joins, keyed process
 * functions), so SQL jobs get the same checkpoints, exactly-once Kafka, savepoints and
 * speed, and SQL and DataStream code mix in one job. docs/sql.md lists the supported
 * SQL and where it differs from Flink's.
 *
 * Rows travel between operators in a compact binary layout (not JSON text); a record of
 * a SQL stream has an empty key, the row as value and the row time (the time attribute,
 * e.g. window_end - 1 after a window aggregation) as timestamp. Read rows with
 * fl_sql_row_get() and build them with a row builder; the layout is described in
 * docs/sql.md.
 *
 * Threads: a SQL environment belongs to the thread that created it, like its fl_env_t.
 * Compiled queries are read by the job's worker threads while it runs: destroy the SQL
 * environment after the job ended (fl_sql_env_destroy() keeps what a job built on it
 * alive until its fl_env_t is destroyed, so either order is safe).
 */
typedef struct fl_sql_env fl_sql_env_t;
typedef struct fl_sql_schema fl_sql_schema_t;

/* A SQL environment with its own fl_env_t, created when a statement first builds part
 * of the job, from the configuration given by fl_sql_set() and the script's SET
 * statements (which therefore come first). */
FL_API int fl_sql_env_new(fl_sql_env_t **out, char *errstr, size_t errstr_size);
/* A SQL environment over an existing environment (borrowed: it must outlive the SQL
 * environment's use), to mix SQL with DataStream code; SET of a configuration key is then
 * an error (set it on env's configuration). */
FL_API int fl_sql_env_wrap(fl_sql_env_t **out, fl_env_t *env, char *errstr, size_t errstr_size);
/* NULL-safe. Not while the job runs on a thread other than the caller's. */
FL_API void fl_sql_env_destroy(fl_sql_env_t *s);
/* The environment jobs are built on (created now for fl_sql_env_new; NULL with the
 * reason in errstr when the configuration is invalid). Borrowed from s. Run the job with
 * fl_env_execute(), stop it with fl_env_stop(), save it with fl_env_savepoint(). */
FL_API fl_env_t *fl_sql_env_env(fl_sql_env_t *s, char *errstr, size_t errstr_size);

/* SET key = value, as the statement: configuration keys of fl_config_set() (Flink's
 * parallelism.default and state.backend.type are accepted for parallelism and
 * state.backend; only before the environment exists), and the SQL keys
 * table.local-time-zone ('UTC' or a fixed offset such as '+08:00'),
 * table.exec.source.idle-timeout and pipeline.name. A bad key or value is refused with
 * errstr naming it. */
FL_API int fl_sql_set(fl_sql_env_t *s, const char *key, const char *value, char *errstr,
                      size_t errstr_size);
/* The value SET for key, or NULL. Borrowed until the next SET. */
FL_API const char *fl_sql_get(const fl_sql_env_t *s, const char *key);

/* Compiles a script: statements separated by ';'. DDL (CREATE TABLE / VIEW, DROP, SET,
 * RESET) changes the catalog; INSERT INTO (alone or in EXECUTE STATEMENT SET) and bare
 * queries add pipelines to the job, which runs when fl_env_execute() is called. The whole
 * script is parsed and checked first: on an error (FL_EPARSE for syntax, FL_EINVAL for
 * names and types, FL_ENOTSUP for what is not supported) nothing of it takes effect, and
 * errstr names the line, the column and the cause. Can be called several times; each
 * call adds to the same job. */
FL_API int fl_sql_execute(fl_sql_env_t *s, const char *script, char *errstr, size_t errstr_size);

/* 1 when compiled statements added operators to the job (so there is a job to run with
 * fl_env_execute()), else 0. */
FL_API int fl_sql_has_job(const fl_sql_env_t *s);

/* Where the rows of a bare query (a SELECT that is not INSERTed) go: fn is called for
 * each row (rec->value a row of schema), on the sink's worker threads, one call at a time
 * per subtask. Default (fn NULL): JSON lines on stdout. Set before fl_sql_execute(). */
typedef int (*fl_sql_row_fn)(fl_context_t *ctx, const fl_sql_schema_t *schema,
                             const fl_record_t *rec, void *opaque);
FL_API int fl_sql_on_select(fl_sql_env_t *s, fl_sql_row_fn fn, void *opaque);

/* Registers a DataStream as a table. Its records must be rows (built with a row builder
 * of fl_sql_schema_new(schema)) of the physical columns of `schema`, a CREATE TABLE
 * column list such as
 *   "user_id STRING, amount DOUBLE, ts TIMESTAMP(3),
 *    WATERMARK FOR ts AS ts - INTERVAL '5' SECOND"
 * with computed columns (AS expr), "rowtime TIMESTAMP_LTZ(3) METADATA" (the record's
 * timestamp) and "WATERMARK FOR rowtime AS SOURCE_WATERMARK()" (keep the stream's
 * timestamps and watermarks) allowed. A record that is not a row of that schema fails
 * the job naming the table. stream is consumed as by any builder call. */
FL_API int fl_sql_register_stream(fl_sql_env_t *s, const char *name, fl_stream_t *stream,
                                  const char *schema, char *errstr, size_t errstr_size);
/* Compiles a query and returns its result as a DataStream of rows (records: empty key,
 * the row, the row time), with *schema (borrowed from s) describing them. Updating
 * results (regular joins, unbounded GROUP BY) are refused (FL_ENOTSUP in errstr). NULL
 * on error, with errstr set. */
FL_API fl_stream_t *fl_sql_query(fl_sql_env_t *s, const char *query, const fl_sql_schema_t **schema,
                                 char *errstr, size_t errstr_size);

/* Schemas: columns by index, Flink type names ("BIGINT", "TIMESTAMP(3)", ...). */
FL_API fl_sql_schema_t *fl_sql_schema_new(const char *columns, char *errstr, size_t errstr_size);
FL_API void fl_sql_schema_destroy(fl_sql_schema_t *schema); /* only those from _new */
FL_API int fl_sql_schema_columns(const fl_sql_schema_t *schema);
FL_API const char *fl_sql_schema_name(const fl_sql_schema_t *schema, int col);
FL_API const char *fl_sql_schema_type(const fl_sql_schema_t *schema, int col);
/* The index of the column named name, or FL_ENOTFOUND. */
FL_API int fl_sql_schema_find(const fl_sql_schema_t *schema, const char *name);

/* A value of a SQL type as C sees it. */
typedef struct fl_sql_value {
  int is_null;
  /* BOOLEAN (0 or 1), TINYINT .. BIGINT, DATE (days since 1970-01-01), TIME (ms of the
   * day), TIMESTAMP and TIMESTAMP_LTZ (ms since the epoch), DECIMAL with precision <= 18
   * (the unscaled value: 12.50 in DECIMAL(5, 2) is 1250) */
  int64_t i;
  double d;      /* FLOAT, DOUBLE */
  const char *s; /* CHAR, VARCHAR, STRING, BINARY, BYTES (not NUL-terminated); ROW: the
                    nested row, readable with fl_sql_row_get() and the field's schema */
  size_t len;
} fl_sql_value_t;

/* Reads column col of a row: 0, FL_EINVAL for a malformed row or a column out of range,
 * FL_ENOTSUP for DECIMAL with precision > 18. Pointers are into the row. */
FL_API int fl_sql_row_get(const fl_sql_schema_t *schema, const void *row, size_t len, int col,
                          fl_sql_value_t *out);
/* Writes the row as a JSON object (json.timestamp-format.standard SQL) into out,
 * snprintf style: returns the length it needs without the terminator (the text is cut
 * and terminated at cap), or FL_EINVAL for a malformed row. */
FL_API int fl_sql_row_to_json(const fl_sql_schema_t *schema, const void *row, size_t len, char *out,
                              size_t cap);

/* Builds rows of a schema: set every column (unset ones are NULL), then finish. The row
 * is valid until the next set after finish, or destroy. One builder per thread. */
typedef struct fl_sql_row_builder fl_sql_row_builder_t;
FL_API fl_sql_row_builder_t *fl_sql_row_builder_new(const fl_sql_schema_t *schema);
FL_API void fl_sql_row_builder_destroy(fl_sql_row_builder_t *b);
/* FL_EINVAL for a column out of range or a string longer than 4 GiB. */
FL_API int fl_sql_row_set(fl_sql_row_builder_t *b, int col, const fl_sql_value_t *v);
FL_API const void *fl_sql_row_finish(fl_sql_row_builder_t *b, size_t *len);

/* User-defined scalar functions, called like built-ins: NAME(args). arg_types is a type
 * list ("STRING, INT"), result_type one type; arguments are converted to those types
 * implicitly. fn sets *out (out->s must stay valid until fn is called again on the same
 * thread; the library copies it) and returns 0, or a negative error that fails the job
 * (use fl_ctx_fail() for the message). A NULL argument gives NULL without calling fn
 * unless call_on_null. fn runs on worker threads, concurrently: opaque must be read-only
 * or thread-safe. destroy (optional) is called once when s is destroyed. */
typedef int (*fl_sql_scalar_fn)(fl_context_t *ctx, const fl_sql_value_t *args, size_t n,
                                fl_sql_value_t *out, void *opaque);
FL_API int fl_sql_create_function(fl_sql_env_t *s, const char *name, const char *arg_types,
                                  const char *result_type, int call_on_null, fl_sql_scalar_fn fn,
                                  void *opaque, void (*destroy)(void *opaque), char *errstr,
                                  size_t errstr_size);

/* User-defined aggregate functions with a fixed-size accumulator, used like SUM in
 * window aggregations and OVER windows. accumulate skips rows whose arguments are all
 * NULL. merge is needed for SESSION windows, retract for OVER windows. */
typedef struct fl_sql_aggregate_fn {
  int version;     /* FL_SQL_AGGREGATE_FN_VERSION */
  size_t acc_size; /* bytes, 1..65536 */
  void (*init)(void *acc, void *opaque);
  int (*accumulate)(void *acc, const fl_sql_value_t *args, size_t n, void *opaque);
  int (*retract)(void *acc, const fl_sql_value_t *args, size_t n, void *opaque); /* optional */
  void (*merge)(void *acc, const void *other, void *opaque);                     /* optional */
  /* The result; out->s as for scalar functions. */
  int (*get_value)(const void *acc, fl_sql_value_t *out, void *opaque);
  void (*destroy)(void *opaque); /* optional, once when s is destroyed */
} fl_sql_aggregate_fn_t;
#define FL_SQL_AGGREGATE_FN_VERSION 1
FL_API int fl_sql_create_aggregate(fl_sql_env_t *s, const char *name, const char *arg_types,
                                   const char *result_type, const fl_sql_aggregate_fn_t *fn,
                                   void *opaque, char *errstr, size_t errstr_size);

#ifdef __cplusplus
}
#endif

#endif /* FLINK_H */
