/* heap_trim.h — gives free heap pages back to the system while reconciles
 * churn (internal to the controller).
 *
 * Every watch event parses a ~15 KB Node into short-lived JSON while
 * long-lived projections are allocated in between, which leaves the heap
 * full of free holes that glibc never hands back on its own: at 5,000 nodes
 * that tripled RSS during a rollout. heap_trim_schedule() arms a timer
 * (c->trim_timer) that calls malloc_trim() when reconciles happened since the
 * last trim, and re-arms itself until the controller is idle. Nothing fails.
 */
#ifndef GPC_HEAP_TRIM_H
#define GPC_HEAP_TRIM_H

#include "controller_internal.h"

/* Arms the trim timer unless it is armed or the controller stopped. */
void heap_trim_schedule(struct controller *c);
/* Cancels the trim timer (controller_stop). */
void heap_trim_stop(struct controller *c);

#endif
