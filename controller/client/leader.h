/* leader.h — Lease leader election on the event loop (design.md §5).
 *
 * Drives leader_sm.h with real requests: one coordination.k8s.io/v1 Lease
 * (`name` in `namespace`), one request in flight at a time. A candidate
 * retries every retry period plus up to 20 % jitter; a leader renews every
 * retry period and stops leading the moment its renew deadline passes
 * without a successful renewal (on_change(false) is called from that timer,
 * even while a request still hangs), so a stuck replica stops writing before
 * anyone else can acquire the lease.
 *
 * Use a kube_client of its own (own token bucket and connection), as
 * controller-runtime does: renewals must never queue behind the controller's
 * writes under QPS throttling.
 *
 * leader_resign(): stops campaigning and, when leading, releases the lease
 * (holderIdentity "", leaseDurationSeconds 1) so another replica takes over
 * within one retry period instead of a whole lease duration; `done` is then
 * called once (also when there was nothing to release or the write failed).
 *
 * Memory: the config's pointers are borrowed (loop, client) or copied
 * (strings). Callbacks run on the loop.
 */
#ifndef GPC_LEADER_H
#define GPC_LEADER_H

#include <stdbool.h>
#include <stdint.h>

#include "errors.h"

struct gpc_loop;
struct kube_client;
struct leader;

typedef void (*leader_change_cb)(bool leading, void *ud);
typedef void (*leader_done_cb)(void *ud);

struct leader_config {
  struct gpc_loop *loop;
  struct kube_client *client;
  const char *namespace;
  const char *name;                               /* Lease name */
  const char *identity;                           /* holderIdentity, e.g. "<hostname>_<random>" */
  uint64_t lease_ms, renew_deadline_ms, retry_ms; /* 0 = 15 s / 10 s / 2 s */
  leader_change_cb on_change;                     /* required */
  void *ud;
};

/* NULL with err when the config is unusable (missing field, or not
 * lease > renew deadline > 1.2 × retry, client-go's rule). */
struct leader *leader_new(const struct leader_config *cfg, struct gpc_error *err);
/* Starts campaigning (first attempt right away). */
void leader_start(struct leader *l);
bool leader_is_leading(const struct leader *l);
/* Current holder as last seen ("" when unknown or free). Borrowed: owned by
 * the leader, valid until its next Lease response is handled (a turn of the
 * loop) or leader_free. */
const char *leader_holder(const struct leader *l);
/* Named "resign", not "release": in this project _release means freeing a
 * struct's contents (docs/CODING_STYLE.md). */
void leader_resign(struct leader *l, leader_done_cb done, void *ud);
/* Cancels everything without callbacks, then frees l. NULL is a no-op. */
void leader_free(struct leader *l);

/* "<hostname>_<16 hex random>", a new string the caller frees. */
char *leader_make_identity(void);

#endif
