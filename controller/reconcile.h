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
 * for is failing (a reconcile error). *retry_at (loop ms) is when a failing
 * or held write may go again, 0 when none waits (only writes in flight, which
 * requeue the policy when they complete). An eviction a PodDisruptionBudget
 * holds (429) is the upgrade waiting, not an error: true, with *retry_at. */
bool reconcile(struct controller *c, const char *name, uint64_t *retry_at);

#endif
