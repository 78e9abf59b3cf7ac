/* taint.h — which node taints keep an operand's DaemonSet pod off a node.
 *
 * Pure: the DaemonSet controller's placement rule for taints (K:
 * pkg/controller/daemon/daemon_controller.go predicates(): a NoSchedule or
 * NoExecute taint the pod does not tolerate means no pod on that node), with
 * the tolerations it adds to every daemon pod (K:
 * pkg/controller/daemon/util/daemonset_util.go AddOrUpdateDaemonPodTolerations)
 * and the matching rule of core/v1 Toleration.ToleratesTaint
 * (staging/src/k8s.io/api/core/v1/toleration.go). The planner uses it to name
 * the taint when a node gets no operand pod at all.
 */
#ifndef GPC_TAINTS_H
#define GPC_TAINTS_H

#include <jansson.h>
#include <stdbool.h>

#include "model.h"

/* The taint the node controller puts on a node it cannot reach (K:
 * staging/src/k8s.io/api/core/v1/well_known_taints.go TaintNodeUnreachable). */
#define GPC_TAINT_UNREACHABLE "node.kubernetes.io/unreachable"

/* True when toleration `tol` (a core/v1 Toleration object, borrowed)
 * tolerates `t`. */
bool taint_tolerated_by(const json_t *tol, const struct gpc_taint *t);

/* The first of node's taints that neither `tolerations` (a core/v1
 * Toleration array, borrowed; NULL = none) nor the DaemonSet controller's own
 * tolerations tolerate, or NULL. Borrowed from `node`. */
const struct gpc_taint *taint_blocking_daemon_pod(const json_t *tolerations,
                                                  const struct gpc_node *node);

/* True when the node carries the unreachable taint. */
bool taint_unreachable(const struct gpc_node *node);

#endif
