/* workqueue.c — see workqueue.h.
 *
 * One record per known key holds its state bits, failure count and delayed
 * add timer; the FIFO is a ring of record pointers. A record is freed once
 * it is idle (not queued, not processing, no failures, no timer), so the map
 * holds only keys that matter.
 */
#include "workqueue.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "strmap.h"

struct item {
  struct workqueue *q;
  const char *key; /* the map's copy */
  bool dirty;      /* queued, or to be re-queued at done */
  bool processing;
  unsigned failures;
  uint64_t timer;
  uint64_t timer_when;
};

struct workqueue {
  struct gpc_loop *loop;
  struct strmap *items;
  struct item **ring;
  size_t ring_cap, head, len;
  uint64_t base_ms, cap_ms;
  workqueue_ready_cb ready;
  void *ready_ud;
  uint64_t ready_timer;
  struct workqueue_stats stats;
};

static void free_item(void *val, void *ud) {
  struct item *it = val;
  struct workqueue *q = ud;
  if (it->timer) gpc_loop_cancel_timer(q->loop, it->timer);
  free(it);
}

struct workqueue *workqueue_new(struct gpc_loop *loop, uint64_t base_ms, uint64_t cap_ms,
                                workqueue_ready_cb ready, void *ud) {
  struct workqueue *q = gpc_calloc(1, sizeof *q);
  q->loop = loop;
  q->items = strmap_new();
  q->base_ms = base_ms ? base_ms : 5;
  q->cap_ms = cap_ms ? cap_ms : 1000u * 1000u;
  q->ready = ready;
  q->ready_ud = ud;
  return q;
}

void workqueue_free(struct workqueue *q) {
  if (!q) return;
  if (q->ready_timer) gpc_loop_cancel_timer(q->loop, q->ready_timer);
  strmap_free(q->items, free_item, q);
  free(q->ring);
  free(q);
}

static struct item *item_get(struct workqueue *q, const char *key) {
  struct item *it = strmap_get(q->items, key);
  if (it) return it;
  it = gpc_calloc(1, sizeof *it);
  it->q = q;
  strmap_put(q->items, key, it);
  it->key = strmap_key(q->items, key);
  return it;
}

static void item_maybe_free(struct workqueue *q, struct item *it) {
  if (it->dirty || it->processing || it->failures || it->timer) return;
  strmap_del(q->items, it->key); /* it->key dies here */
  free(it);
}

static void on_ready(struct gpc_loop *loop, uint64_t id, void *ud) {
  struct workqueue *q = ud;
  q->ready_timer = 0;
  if (q->len && q->ready) q->ready(q, q->ready_ud);
}

static void push(struct workqueue *q, struct item *it) {
  if (q->len == q->ring_cap) {
    size_t ncap = q->ring_cap ? q->ring_cap * 2 : 16;
    struct item **r = gpc_malloc(ncap * sizeof *r);
    for (size_t i = 0; i < q->len; i++)
      r[i] = q->ring[(q->head + i) % q->ring_cap];
    free(q->ring);
    q->ring = r;
    q->ring_cap = ncap;
    q->head = 0;
  }
  q->ring[(q->head + q->len) % q->ring_cap] = it;
  q->len++;
  if (q->ready && !q->ready_timer) q->ready_timer = gpc_loop_add_timer(q->loop, 0, on_ready, q);
}

static void add_item(struct workqueue *q, struct item *it) {
  q->stats.adds++;
  if (it->dirty) return;
  it->dirty = true;
  if (!it->processing) push(q, it);
}

void workqueue_add(struct workqueue *q, const char *key) {
  add_item(q, item_get(q, key));
}

static void on_delay(struct gpc_loop *loop, uint64_t id, void *ud) {
  struct item *it = ud;
  it->timer = 0;
  add_item(it->q, it);
}

void workqueue_add_after(struct workqueue *q, const char *key, uint64_t delay_ms) {
  if (delay_ms == 0) {
    workqueue_add(q, key);
    return;
  }
  struct item *it = item_get(q, key);
  uint64_t when = gpc_loop_now_ms() + delay_ms;
  if (it->timer) {
    if (it->timer_when <= when) return; /* the earlier deadline wins */
    gpc_loop_cancel_timer(q->loop, it->timer);
  }
  it->timer_when = when;
  it->timer = gpc_loop_add_timer(q->loop, delay_ms, on_delay, it);
}

uint64_t workqueue_add_rate_limited(struct workqueue *q, const char *key) {
  struct item *it = item_get(q, key);
  uint64_t d = q->base_ms;
  for (unsigned i = 0; i < it->failures && d < q->cap_ms; i++)
    d *= 2;
  if (d > q->cap_ms) d = q->cap_ms;
  it->failures++;
  q->stats.retries++;
  workqueue_add_after(q, key, d);
  return d;
}

void workqueue_add_retry_after(struct workqueue *q, const char *key, uint64_t delay_ms) {
  struct item *it = item_get(q, key);
  it->failures++;
  q->stats.retries++;
  workqueue_add_after(q, key, delay_ms);
}

void workqueue_forget(struct workqueue *q, const char *key) {
  struct item *it = strmap_get(q->items, key);
  if (!it) return;
  it->failures = 0;
  item_maybe_free(q, it);
}

unsigned workqueue_failures(const struct workqueue *q, const char *key) {
  const struct item *it = strmap_get(q->items, key);
  return it ? it->failures : 0;
}

const char *workqueue_get(struct workqueue *q) {
  if (!q->len) return NULL;
  struct item *it = q->ring[q->head];
  q->head = (q->head + 1) % q->ring_cap;
  q->len--;
  it->dirty = false;
  it->processing = true;
  return it->key;
}

void workqueue_done(struct workqueue *q, const char *key) {
  struct item *it = strmap_get(q->items, key);
  if (!it || !it->processing) return;
  it->processing = false;
  if (it->dirty)
    push(q, it);
  else
    item_maybe_free(q, it);
}

size_t workqueue_len(const struct workqueue *q) {
  return q->len;
}

void workqueue_get_stats(const struct workqueue *q, struct workqueue_stats *out) {
  *out = q->stats;
  out->depth = q->len;
  out->processing = 0;
  out->waiting = 0;
  struct strmap_iter it;
  strmap_iter_init(&it, q->items);
  void *v;
  while (strmap_next(&it, NULL, &v)) {
    const struct item *i = v;
    if (i->processing) out->processing++;
    if (i->timer) out->waiting++;
  }
}
