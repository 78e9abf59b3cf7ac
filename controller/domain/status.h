/* status.h — .status of a ClusterGPUPolicy from a plan (pure).
 *
 * Shape and vocabulary are design.md §2 (and docs/api.md):
 *   conditions  Ready        True  AllOperandsReady | NoMatchingNodes
 *                            Unknown RolloutInProgress (while rolling out)
 *                            False <Stage>NotReady for the earliest failing
 *                                  stage: DriverNotReady |
 *                                  ContainerToolkitNotReady |
 *                                  DevicePluginNotReady |
 *                                  DcgmExporterNotReady | ValidatorNotReady
 *                                  (message names the stage and the failing
 *                                  nodes with their pod reasons) |
 *                                  InvalidSpec | ApplyFailed (a write
 *                                  the API server refuses, see
 *                                  status_set_apply_failed)
 *               Reconciling  True Progressing | False Idle
 *               Stalled      True InvalidSpec | ApplyFailed | False Idle
 *               NodeConflict True NodesOwnedByOlderPolicy | False NoConflict
 *   kstatus: Reconciling and Stalled are never both True; Stalled=True
 *   always comes with Ready=False.
 *   Each condition carries observedGeneration; lastTransitionTime is copied
 *   from the previous status unless the condition's status changed.
 *   nodesSummary "ready/matched", nodes {matched, ready, conflicted},
 *   gpus {allocatable}, operands [{name, daemonSet, desired, ready, updated,
 *   available, state}], failingNodes (at most GPC_STATUS_MAX_FAILING, sorted
 *   by node then stage).
 *
 * The clock is an argument: same input, same output.
 * Memory: returned objects are new references; inputs are borrowed.
 */
#ifndef GPC_STATUS_H
#define GPC_STATUS_H

#include <jansson.h>
#include <stdbool.h>
#include <time.h>

#include "plan.h"
#include "policy.h"

#define GPC_STATUS_MAX_FAILING 10

/* The status `plan` calls for. `prev` is the object's current .status (or
 * NULL); `now` is used only for conditions whose status changes. */
json_t *status_from_plan(const struct gpc_plan *plan, const struct gpc_policy *p,
                         const json_t *prev, time_t now);

/* Stalled=True with `reason` ("InvalidSpec" when the policy does not decode,
 * "ApplyFailed" when the API server refused our objects) and `message`
 * (which names the field), Ready=False with the same reason,
 * Reconciling=False. Counts are kept from `prev` (nothing was applied, so
 * they still describe the cluster). */
json_t *status_stalled(const json_t *prev, int64_t generation, const char *reason,
                       const char *message, time_t now);

/* Marks `status` (from status_from_plan, modified in place) as held back
 * by a write the API server refuses: Ready=False and Stalled=True with
 * reason ApplyFailed and `message` (verb, resource, name, the server's
 * message), Reconciling=False; NodeConflict and the counts are kept. The
 * next status computed without it clears it. */
void status_set_apply_failed(json_t *status, const json_t *prev, int64_t generation,
                             const char *message, time_t now);

/* Driver upgrades (design.md §10): sets status.driverUpgrade to `upgrade`
 * (borrowed; copied) and, when `halted`, Ready=False reason
 * DriverUpgradeHalted with `message`; else when `in_progress`,
 * Reconciling=True reason DriverUpgradeInProgress and a Ready=True turned
 * Unknown with the same reason (kstatus: not ready while reconciling).
 * Stalled and NodeConflict are kept. */
void status_set_driver_upgrade(json_t *status, const json_t *prev, int64_t generation,
                               const json_t *upgrade, bool halted, bool in_progress,
                               const char *message, time_t now);

/* True when both statuses say the same thing: conditions and operands are
 * compared as maps (keyed by type / name), everything else exactly. */
bool status_equal(const json_t *a, const json_t *b);

/* Formats `t` as RFC 3339 UTC ("2026-01-02T03:04:05Z"). */
void status_format_time(time_t t, char out[32]);

#endif
