/* Stateless and keyed single-input operators: map, flat_map, filter, process,
 * keyed process, rolling aggregations, sinks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "operators/operators.h"

/* ---------------------------------------------------------------------------------- */
/* map / flat_map / filter                                                              */

static int map_process(fl_op_t *op, int input, const fl_record_t *rec) {
  op->ctx.emitted = 0;
  int rc = op->node->u.map.fn(&op->ctx, rec, op->node->u.map.opaque);
  if (rc < 0) return fl_op_user_failed(op, rc, "map function");
  if (op->ctx.emitted != 1)
    return fl_op_fail(op, FL_EUSER,
                      "map function emitted %zu records for one input; it must emit exactly "
                      "one (use flat_map for any number)",
                      op->ctx.emitted);
  return FL_OK;
}

static int flat_map_process(fl_op_t *op, int input, const fl_record_t *rec) {
  int rc = op->node->u.map.fn(&op->ctx, rec, op->node->u.map.opaque);
  if (rc < 0) return fl_op_user_failed(op, rc, "flat_map function");
  return FL_OK;
}

static int filter_process(fl_op_t *op, int input, const fl_record_t *rec) {
  int rc = op->node->u.filter.fn(&op->ctx, rec, op->node->u.filter.opaque);
  if (rc < 0) return fl_op_user_failed(op, rc, "filter function");
  if (rc > 0) return fl_op_emit(op, rec);
  return FL_OK;
}

/* A chained producer's emit calls the user's function itself (op.h's fl_hop_t): what
 * the process functions above do for a record, without their call. */
static void hop_open(fl_op_t *op, uint8_t hop, fl_hop_fn_t fn, void *const *arg, const char *what) {
  op->hop = hop;
  op->hop_fn = fn;
  op->hop_arg = arg;
  op->hop_what = what;
}

static int map_open(fl_op_t *op) {
  hop_open(op, FL_HOP_MAP, op->node->u.map.fn, &op->node->u.map.opaque, "map function");
  return FL_OK;
}

static int flat_map_open(fl_op_t *op) {
  hop_open(op, FL_HOP_CALL, op->node->u.map.fn, &op->node->u.map.opaque, "flat_map function");
  return FL_OK;
}

static int filter_open(fl_op_t *op) {
  hop_open(op, FL_HOP_FILTER, op->node->u.filter.fn, &op->node->u.filter.opaque, "filter function");
  return FL_OK;
}

const fl_op_class_t fl_op_map_class = {.kind = "map", .open = map_open, .process = map_process};
const fl_op_class_t fl_op_flat_map_class = {
    .kind = "flat_map", .open = flat_map_open, .process = flat_map_process};
const fl_op_class_t fl_op_filter_class = {
    .kind = "filter", .open = filter_open, .process = filter_process};

/* ---------------------------------------------------------------------------------- */
/* process / keyed process                                                              */

int fl_op_open_user(fl_op_t *op, int (*open)(fl_context_t *, void *, void **), void *opaque) {
  op->ctx.instance = opaque;
  if (!open) return 0;
  int rc = open(&op->ctx, opaque, &op->ctx.instance);
  return rc < 0 ? fl_op_user_failed(op, rc, "open") : 1;
}

int fl_op_user_on_timer(fl_op_t *op,
                        int (*on_timer)(fl_context_t *, int64_t, fl_time_domain_t, void *),
                        fl_time_domain_t d, const fl_timer_t *t) {
  if (!on_timer) return FL_OK;
  int rc = on_timer(&op->ctx, t->ts, d, op->ctx.instance);
  if (rc < 0) return fl_op_user_failed(op, rc, "on_timer function");
  return FL_OK;
}

static int process_open(fl_op_t *op) {
  int rc = fl_op_open_user(op, op->node->u.process.fn.open, op->node->u.process.opaque);
  if (rc > 0) op->state = (void *)1; /* close() calls the user's close */
  if (rc >= 0)
    hop_open(op, FL_HOP_CALL, op->node->u.process.fn.process, &op->ctx.instance,
             "process function");
  return rc < 0 ? rc : FL_OK;
}

static int process_process(fl_op_t *op, int input, const fl_record_t *rec) {
  int rc = op->node->u.process.fn.process(&op->ctx, rec, op->ctx.instance);
  if (rc < 0) return fl_op_user_failed(op, rc, "process function");
  return FL_OK;
}

static int process_on_timer(fl_op_t *op, fl_time_domain_t d, const fl_timer_t *t) {
  return fl_op_user_on_timer(op, op->node->u.process.fn.on_timer, d, t);
}

static void process_close(fl_op_t *op) {
  const fl_process_fn_t *fn = &op->node->u.process.fn;
  if (op->state && fn->close) fn->close(op->ctx.instance);
  op->state = NULL;
}

const fl_op_class_t fl_op_process_class = {
    .kind = "process", .open = process_open, .process = process_process, .close = process_close};
const fl_op_class_t fl_op_keyed_process_class = {.kind = "keyed_process",
                                                 .open = process_open,
                                                 .process = process_process,
                                                 .on_timer = process_on_timer,
                                                 .close = process_close};

/* ---------------------------------------------------------------------------------- */
/* Rolling aggregations: the key's aggregate lives in a value cell of the operator's own
 * state table. */

typedef struct {
  fl_kv_t *kv;
  uint32_t table;
  fl_buf_t out;
} rolling_state_t;

static int rolling_open(fl_op_t *op) {
  rolling_state_t *s = calloc(1, sizeof *s);
  if (!s) return FL_ENOMEM;
  op->state = s;
  fl_buf_init(&s->out);
  s->kv = op->kv;
  char name[64];
  snprintf(name, sizeof name, "%u/__rolling", op->node->id);
  return s->kv->ops->open_table(s->kv->self, name, &s->table);
}

static int rolling_process(fl_op_t *op, int input, const fl_record_t *rec) {
  rolling_state_t *s = op->state;
  const fl_node_t *n = op->node;
  fl_kkey_t k = {op->ctx.kg, op->ctx.key, op->ctx.key_len, NULL, 0};
  const void *cur = NULL;
  size_t cur_len = 0;
  int found = s->kv->ops->get(s->kv->self, s->table, &k, &cur, &cur_len);
  if (found < 0) return fl_op_fail(op, found, "state read failed");
  const void *val;
  size_t val_len;
  double num = 0;
  if (n->u.rolling.kind == FL_ROLL_REDUCE) {
    if (!found) {
      val = rec->value;
      val_len = rec->value_len;
    } else {
      s->out.len = 0;
      int rc = n->u.rolling.reduce(&op->ctx, cur, cur_len, rec->value, rec->value_len, &s->out,
                                   n->u.rolling.opaque);
      if (rc < 0) return fl_op_user_failed(op, rc, "reduce function");
      val = s->out.data;
      val_len = s->out.len;
    }
  } else {
    double x;
    if (n->u.rolling.number) {
      int rc = n->u.rolling.number(&op->ctx, rec, &x, n->u.rolling.opaque);
      if (rc < 0) return fl_op_user_failed(op, rc, "number function");
    } else {
      if (rec->value_len != sizeof(double))
        return fl_op_fail(op, FL_EINVAL,
                          "the value is %zu bytes, not a native double (8 bytes); give a "
                          "number function",
                          rec->value_len);
      memcpy(&x, rec->value, sizeof x);
    }
    if (!found) {
      num = x;
    } else {
      double acc;
      memcpy(&acc, cur, sizeof acc);
      switch (n->u.rolling.kind) {
      case FL_ROLL_SUM: num = acc + x; break;
      case FL_ROLL_MIN: num = x < acc ? x : acc; break;
      case FL_ROLL_MAX: num = x > acc ? x : acc; break;
      default: num = x; break;
      }
    }
    val = &num;
    val_len = sizeof num;
  }
  /* val never points into the stored cell (it is the input, s->out or num), so the put
   * cannot invalidate it. */
  fl_record_t out = {rec->key, rec->key_len, val, val_len, rec->timestamp};
  int rc = s->kv->ops->put(s->kv->self, s->table, &k, val, val_len);
  if (rc < 0) return fl_op_fail(op, rc, "state write failed");
  return fl_op_emit(op, &out);
}

static void rolling_close(fl_op_t *op) {
  rolling_state_t *s = op->state;
  if (!s) return;
  fl_buf_free(&s->out);
  free(s);
  op->state = NULL;
}

const fl_op_class_t fl_op_rolling_class = {
    .kind = "rolling", .open = rolling_open, .process = rolling_process, .close = rolling_close};

/* ---------------------------------------------------------------------------------- */
/* Sinks                                                                                */

static int sink_open(fl_op_t *op) {
  const fl_sink_fn_t *fn = &op->node->u.sink.fn;
  op->ctx.instance = op->node->u.sink.opaque;
  if (fn->open) {
    int rc = fn->open(&op->ctx, op->node->u.sink.opaque, &op->ctx.instance);
    if (rc < 0) return fl_op_user_failed(op, rc, "sink open");
    op->state = (void *)1;
  }
  hop_open(op, FL_HOP_CALL, fn->write, &op->ctx.instance, "sink write");
  return FL_OK;
}

static int sink_process(fl_op_t *op, int input, const fl_record_t *rec) {
  int rc = op->node->u.sink.fn.write(&op->ctx, rec, op->ctx.instance);
  if (rc < 0) return fl_op_user_failed(op, rc, "sink write");
  return FL_OK;
}

static int sink_end(fl_op_t *op) {
  const fl_sink_fn_t *fn = &op->node->u.sink.fn;
  if (!fn->flush || (fn->open && !op->state)) return FL_OK; /* no instance to flush */
  int rc = fn->flush(&op->ctx, op->ctx.instance);
  if (rc < 0) return fl_op_user_failed(op, rc, "sink flush");
  return FL_OK;
}

static void sink_close(fl_op_t *op) {
  const fl_sink_fn_t *fn = &op->node->u.sink.fn;
  if (op->state && fn->close) fn->close(op->ctx.instance);
  op->state = NULL;
}

/* Two-phase commit hooks (fl_sink_fn_t version 2). */
static int sink_snapshot(fl_op_t *op, int64_t id, fl_buf_t *out) {
  const fl_sink_fn_t *fn = &op->node->u.sink.fn;
  if (!fn->snapshot) return FL_OK;
  int rc = fn->snapshot(&op->ctx, op->ctx.instance, id, out);
  return rc < 0 ? fl_op_user_failed(op, rc, "sink snapshot (pre-commit)") : FL_OK;
}

static int sink_notify(fl_op_t *op, int64_t id, bool completed) {
  const fl_sink_fn_t *fn = &op->node->u.sink.fn;
  if (!completed) {
    if (fn->checkpoint_aborted) fn->checkpoint_aborted(&op->ctx, op->ctx.instance, id);
    return FL_OK;
  }
  if (!fn->checkpoint_complete) return FL_OK;
  int rc = fn->checkpoint_complete(&op->ctx, op->ctx.instance, id);
  return rc < 0 ? fl_op_user_failed(op, rc, "sink commit") : FL_OK;
}

static int sink_restore(fl_op_t *op, const fl_bytes_t *states, size_t n) {
  const fl_sink_fn_t *fn = &op->node->u.sink.fn;
  if (!fn->restore) return FL_OK;
  int rc = fn->restore(&op->ctx, op->ctx.instance, states, n);
  return rc < 0 ? fl_op_user_failed(op, rc, "sink restore") : FL_OK;
}

const fl_op_class_t fl_op_sink_class = {.kind = "sink",
                                        .flags = FL_OP_SINK | FL_OP_FLUSH_ON_FAILURE,
                                        .open = sink_open,
                                        .process = sink_process,
                                        .end_input = sink_end,
                                        .close = sink_close,
                                        .snapshot = sink_snapshot,
                                        .restore = sink_restore,
                                        .notify = sink_notify};
