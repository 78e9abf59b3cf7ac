/* workqueue.h — de-duplicating work queue of string keys, as client-go's
 * rate-limited workqueue, on the event loop.
 *
 *  - A key added while queued is not queued twice; a key added while being
 *    processed (between get and done) is queued again after done, so one key
 *    is never processed twice at once and never loses an update.
 *  - FIFO among queued keys.
 *  - Delayed adds use loop timers; a key with a pending delayed add that is
 *    added again sooner keeps the sooner deadline (as client-go).
 *  - Per-key exponential backoff: add_rate_limited waits
 *    min(cap, base * 2^failures) and counts a failure; forget resets it.
 *  - The queue does not run workers: the owner calls workqueue_get/done. A
 *    ready callback fires (from a loop timer, never inside an add) when keys
 *    are waiting, so the owner can drain without polling.
 *
 * Ownership: keys are copied. The string returned by workqueue_get stays
 * valid until workqueue_done for it. Single-threaded, on the loop.
 */
#ifndef GPC_WORKQUEUE_H
#define GPC_WORKQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

struct workqueue;

typedef void (*workqueue_ready_cb)(struct workqueue *q, void *ud);

struct workqueue_stats {
  size_t depth;      /* keys queued now (workqueue_depth) */
  uint64_t adds;     /* add calls that queued or re-marked a key (workqueue_adds_total) */
  uint64_t retries;  /* add_rate_limited calls (workqueue_retries_total) */
  size_t processing; /* keys between get and done */
  size_t waiting;    /* delayed adds pending */
};

/* base_ms/cap_ms: per-key backoff (0 = 5 ms / 1000 s, client-go's defaults).
 * ready may be NULL. */
struct workqueue *workqueue_new(struct gpc_loop *loop, uint64_t base_ms, uint64_t cap_ms,
                                workqueue_ready_cb ready, void *ud);
void workqueue_free(struct workqueue *q);

void workqueue_add(struct workqueue *q, const char *key);
void workqueue_add_after(struct workqueue *q, const char *key, uint64_t delay_ms);
/* Backoff requeue after a failure; returns the delay used. */
uint64_t workqueue_add_rate_limited(struct workqueue *q, const char *key);
/* Requeue after a failure at a delay the caller knows (the failing write's
 * own backoff): counts a failure and a retry as add_rate_limited does, but
 * waits `delay_ms` instead of the queue's exponential delay. */
void workqueue_add_retry_after(struct workqueue *q, const char *key, uint64_t delay_ms);
/* Clears the failure count of key (call after a success). */
void workqueue_forget(struct workqueue *q, const char *key);
unsigned workqueue_failures(const struct workqueue *q, const char *key);

/* Next key to process, or NULL when none is queued. */
const char *workqueue_get(struct workqueue *q);
/* Marks key processed; re-queues it when it was added meanwhile. */
void workqueue_done(struct workqueue *q, const char *key);

size_t workqueue_len(const struct workqueue *q);
void workqueue_get_stats(const struct workqueue *q, struct workqueue_stats *out);

#endif
