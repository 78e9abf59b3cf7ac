/* controller_internal.h — the controller's shared state (internal).
 *
 * Not an API: only controller.c and the files it is split into
 * (policy_cache, watch_map, event_recorder, reconcile, controller_upgrade,
 * heap_trim) include this. Everyone else uses controller.h.
 *
 * struct controller is owned by controller.c (controller_new/_free); the
 * other files borrow it from the callbacks and timers it registers. Every
 * member is touched on the loop thread only.
 */
#ifndef GPC_CONTROLLER_INTERNAL_H
#define GPC_CONTROLLER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "controller.h"
#include "model.h"
#include "plan.h"

/* Node label patches in flight at most: more only queue up in the client
 * (each transfer holds curl buffers) while a slow API server works through
 * them, and a patch sent later carries every unlock due by then. */
#define MAX_NODE_WRITES_IN_FLIGHT 64u

enum { INF_POLICY = 0, INF_NODE, INF_DS, INF_POD, INF_COUNT };

struct informer;
struct workqueue;
struct gpc_apply;
struct gpc_events;
struct strmap;
struct event_call;
struct gpc_policy;

/* What the controller remembers per policy between reconciles. */
struct policy_state {
  char *rv;                           /* resourceVersion `decoded` came from */
  struct gpc_policy *decoded;         /* NULL when invalid */
  char *decode_error;                 /* set when invalid */
  uint64_t last_status_ms;            /* when the last status write was sent */
  struct gpc_stages_announced stages; /* StageUnlocked sent (plan_stages_to_announce) */
};

struct controller {
  struct controller_config cfg;
  char *namespace;
  struct informer *inf[INF_COUNT];
  struct workqueue *queue;
  struct gpc_apply *apply;
  struct gpc_events *events;
  struct strmap *policies; /* name -> struct policy_state */
  struct controller_observer obs;
  struct controller_stats stats;
  bool leader;
  bool started, stopped;
  bool all_synced;
  uint64_t events_timer;
  unsigned events_in_flight;
  struct event_call *event_calls; /* Event writes in flight */
  uint64_t trim_timer;            /* pending heap trim, 0 when none */
  bool writes_throttled;          /* a reconcile held node patches back */
  /* Node label keys kept in projections (besides gpupolicy.dev/...): GPU
   * detection plus every key a policy's nodeSelector reads. Value: (void *)1. */
  struct strmap *label_keys;
  bool dependents_started; /* node/DaemonSet/pod informers (after policies synced) */
  uint64_t relist_timer;   /* pending node informer restart for new label keys */
  bool keys_added;
  uint64_t reconciles_at_trim;
  /* Driver upgrades: every pod of every namespace (projected to what an
   * eviction needs), started the first time a policy asks for autoUpgrade
   * so clusters that never do pay nothing for it. */
  struct informer *work_inf;
};

/* Pointer arrays over the projected caches, for plan() and upgrade_run().
 * The pointers are borrowed from the informers: valid until the loop runs
 * again. */
struct snapshot {
  const struct gpc_node **nodes;
  size_t n_nodes, cap_nodes;
  const struct gpc_daemonset **ds;
  size_t n_ds, cap_ds;
  const struct gpc_pod **pods;
  size_t n_pods, cap_pods;
};

#endif
