/* events.h — core/v1 Events about ClusterGPUPolicy objects, rate-limited and
 * aggregated (never one per reconcile).
 *
 * Owns: deciding whether an occurrence becomes a new Event (POST), an update
 * of the existing one (merge PATCH of count/lastTimestamp/message), or
 * nothing yet (aggregated into a pending update flushed later), and building
 * the request bodies. Pure: the clock is passed in and nothing is sent here;
 * controller.c sends what events_record()/events_next_flush() return.
 *
 * Rules, per (policy, reason):
 *  - the same message again → count+1; the PATCH is sent at most once per
 *    EVENTS_UPDATE_INTERVAL_MS (the rest is folded into it);
 *  - a different message → a new Event while the token bucket allows
 *    (EVENTS_BURST, one token back per EVENTS_REFILL_MS), else folded into
 *    the current one as a count+1 with the newest message.
 * Events of a cluster-scoped object live in namespace "default" (the API
 * server rejects any other), with involvedObject the policy.
 *
 * Memory: struct events_write owns its strings and json_t (events_write_release).
 */
#ifndef GPC_EVENTS_H
#define GPC_EVENTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define EVENTS_NAMESPACE "default"
#define EVENTS_BURST 5
#define EVENTS_REFILL_MS (60u * 1000u)
#define EVENTS_UPDATE_INTERVAL_MS (10u * 1000u)

struct gpc_events;

/* Reasons the controller uses (others are allowed). */
#define EVENT_ROLLOUT_STARTED "RolloutStarted"
#define EVENT_STAGE_UNLOCKED "StageUnlocked"
#define EVENT_NODE_FAILING "NodeFailing"
#define EVENT_ROLLOUT_COMPLETE "RolloutComplete"
#define EVENT_INVALID_SPEC "InvalidSpec"
#define EVENT_APPLY_FAILED "ApplyFailed"
#define EVENT_NODE_CONFLICT "NodeConflict"

enum events_write_kind { EVENTS_NONE = 0, EVENTS_CREATE, EVENTS_PATCH };

struct events_write {
  enum events_write_kind kind;
  char *name;   /* Event name in EVENTS_NAMESPACE */
  json_t *body; /* CREATE: the whole Event; PATCH: a merge patch */
};

/* The object an Event is about (a ClusterGPUPolicy). Borrowed strings. */
struct events_object {
  const char *name;
  const char *uid;
  const char *resource_version; /* may be NULL */
};

/* `component` is source.component/reportingComponent ("gpu-policy-controller"),
 * `host` the pod or host name (may be NULL). Never returns NULL. */
struct gpc_events *events_new(const char *component, const char *host);
void events_free(struct gpc_events *ev);

/* Records one occurrence. `type` is "Normal" or "Warning". `now_ms` is the
 * monotonic clock, `wall` the wall clock (timestamps). Fills *out (kind
 * EVENTS_NONE when nothing is to be sent now). */
void events_record(struct gpc_events *ev, const struct events_object *about, const char *type,
                   const char *reason, const char *message, uint64_t now_ms, time_t wall,
                   struct events_write *out);

/* Returns true and fills *out with one due aggregated update, if any. Call
 * until it returns false. */
bool events_next_flush(struct gpc_events *ev, uint64_t now_ms, time_t wall,
                       struct events_write *out);
/* Monotonic time at which the earliest pending update becomes due; 0 when
 * nothing is pending. */
uint64_t events_next_flush_at(const struct gpc_events *ev);
/* The PATCH of Event `name` answered 404 (the Event expired — the API
 * server keeps Events for an hour — or someone deleted it): fills *out with
 * a CREATE of that Event anew under the same name, with the series' count,
 * timestamps and latest message, as client-go's recorder does. Returns
 * false (kind EVENTS_NONE) when `name` is no longer the Event of any series. */
bool events_recreate(struct gpc_events *ev, const char *name, struct events_write *out);
/* Drops the state kept for a policy (after it is gone). */
void events_forget(struct gpc_events *ev, const char *policy);

void events_write_release(struct events_write *w);

/* RFC 3339 UTC, whole seconds: "2026-11-28T20:00:00Z". buf >= 21 bytes. */
void events_format_time(time_t t, char *buf, size_t len);

#endif
