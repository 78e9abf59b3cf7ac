/* status_diff.h — what changed between two ClusterGPUPolicy statuses.
 *
 * Owns the pure decisions the controller takes from a status change:
 *  - whether it is a transition kstatus clients wait for (a condition's
 *    status or observedGeneration moved): written at once, while count-only
 *    changes are batched;
 *  - which Events the change deserves: RolloutStarted (Reconciling became
 *    True), RolloutComplete (Ready became True), NodeConflict, the Stalled
 *    reason (InvalidSpec, ApplyFailed) and one NodeFailing per failing
 *    (node, operand) that was not failing before. Never one per reconcile:
 *    an unchanged status yields nothing.
 *
 * Pure; statuses are borrowed (either may be NULL = no status yet).
 */
#ifndef GPC_STATUS_DIFF_H
#define GPC_STATUS_DIFF_H

#include <jansson.h>
#include <stdbool.h>

/* `type` "Normal"/"Warning"; strings borrowed for the call. */
typedef void (*status_diff_emit_fn)(const char *type, const char *reason, const char *message,
                                    void *ud);

bool status_diff_transition(const json_t *prev, const json_t *cur);
void status_diff_events(const json_t *prev, const json_t *cur, status_diff_emit_fn emit, void *ud);

/* The status ("True", "False", "Unknown") of condition `type`, "" when absent.
 * Borrowed from `status`. */
const char *status_diff_condition(const json_t *status, const char *type);

#endif
