/* reconcile.h — one reconcile of one policy: snapshot → plan → apply →
 * driver upgrade → status → events (internal to the controller).
 *
 * plan.h decides; this executes its decisions through apply.h and records
 * the status and Events. Deletion (finalizer set, deletionTimestamp): labels
 * off, objects deleted, then the finalizer dropped. A policy gone from the
 * cache: our labels taken off the nodes still naming it, and everything the
 * controller remembers about it forgotten.
 */
#ifndef GPC_RECONCILE_H
#define GPC_RECONCILE_H

#include <stdbool.h>
#include <stdint.h>

#include "controller_internal.h"

/* Reconciles policy `name` (borrowed). Returns false when a write it asked
 * for is failing (a reconcile error, to retry when that write may go again:
 * *retry_at in loop ms, 0 when only writes in flight are failing). */
bool reconcile(struct controller *c, const char *name, uint64_t *retry_at);

#endif
