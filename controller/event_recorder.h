/* event_recorder.h — the I/O half of Kubernetes Events (internal).
 *
 * events.h decides what to write (aggregation, series, rate limits: pure);
 * this sends those writes through the controller's kube_client, re-creates
 * an Event whose PATCH finds it gone (404), and runs the flush timer that
 * sends aggregated occurrences later. As leader.c sits beside leader_sm.c.
 *
 * Errors: a failed write is logged at debug level and dropped (Events are
 * best effort); nothing here fails to its caller. Writes in flight are
 * listed in c->event_calls until they complete or event_recorder_cancel()
 * drops them. Internal to the controller (controller_internal.h).
 */
#ifndef GPC_EVENT_RECORDER_H
#define GPC_EVENT_RECORDER_H

#include <jansson.h>

#include "controller_internal.h"

/* Records an Event about the ClusterGPUPolicy `obj` (borrowed; nothing is
 * recorded when it has no name). Strings are borrowed for the call. */
void event_recorder_record(struct controller *c, const json_t *obj, const char *type,
                           const char *reason, const char *message);

/* The object an Event callback is about: `ud` of event_recorder_emit(). */
struct event_about {
  struct controller *c;
  const json_t *obj; /* borrowed ClusterGPUPolicy */
};

/* An event callback (status_diff_events, upgrade_run_in.event) recording
 * into ((struct event_about *)ud)->obj. */
void event_recorder_emit(const char *type, const char *reason, const char *message, void *ud);

/* Events for the transitions between two statuses of `obj` (all borrowed):
 * never one per reconcile. */
void event_recorder_status_events(struct controller *c, const json_t *obj, const json_t *prev,
                                  const json_t *cur);

/* Cancels the flush timer (controller_stop). */
void event_recorder_stop(struct controller *c);
/* Cancels every Event write in flight: their callbacks never run after this
 * (controller_free). */
void event_recorder_cancel(struct controller *c);

#endif
