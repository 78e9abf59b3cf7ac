/* controller_upgrade.h — the controller's driver upgrade wiring (design.md
 * §10; internal to the controller).
 *
 * upgrade.h decides and upgrade_run.h executes the steps of a driver
 * upgrade; this owns the workload cache they read (c->work_inf: every pod of
 * every namespace, projected to gpc_workload, started the first time a
 * policy asks for autoUpgrade, freed once no policy does, or by
 * controller_free) and maps its events
 * to the policy owning the pod's node. Nothing here fails to its caller: an
 * informer that cannot be created is logged and tried again next time.
 */
#ifndef GPC_CONTROLLER_UPGRADE_H
#define GPC_CONTROLLER_UPGRADE_H

#include <jansson.h>
#include <stdint.h>

#include "controller_internal.h"

struct gpc_plan;

/* Runs the upgrade steps of policy `p` (its object `obj`, its plan `pl`,
 * the caches `snap`: all borrowed) and puts their status into `st` (a
 * status being built, changed in place; `prev` is the status the object
 * has). Queues the policy again when a step has a time to wait for. */
void controller_upgrade_reconcile(struct controller *c, const json_t *obj,
                                  const struct gpc_policy *p, const struct gpc_plan *pl,
                                  struct snapshot *snap, json_t *st, const json_t *prev,
                                  int64_t generation);

/* Frees the workload cache when no policy (decoded, not deleting) asks for
 * autoUpgrade any more: every pod of the cluster is not kept in memory, nor
 * watched, for nothing. Called after each reconcile; a later autoUpgrade
 * starts it again (a fresh LIST). */
void controller_upgrade_release_idle(struct controller *c);

#endif
