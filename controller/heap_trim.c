/* heap_trim.c — malloc_trim while reconciles churn (see heap_trim.h). */
#include "heap_trim.h"

#include <malloc.h>

#include "log.h"
#include "loop.h"

#define COMP "controller" /* log component, one for every file of the controller */

/* While reconciles are happening, give free pages back every
 * TRIM_INTERVAL_MS (a few ms of work). */
#define TRIM_INTERVAL_MS 2000u

static void on_trim_timer(struct gpc_loop *loop, uint64_t id, void *ud) {
  (void)loop;
  (void)id;
  struct controller *c = ud;
  c->trim_timer = 0;
  if (c->stats.reconciles == c->reconciles_at_trim) return; /* idle: nothing churned */
  c->reconciles_at_trim = c->stats.reconciles;
  malloc_trim(0);
  if (log_enabled(LOG_DEBUG, COMP)) {
    struct mallinfo2 mi = mallinfo2();
    log_debug(COMP, "heap trimmed", KV_I("in_use", mi.uordblks), KV_I("free", mi.fordblks),
              KV_I("mmapped", mi.hblkhd));
  }
  if (!c->stopped)
    c->trim_timer = gpc_loop_add_timer(c->cfg.loop, TRIM_INTERVAL_MS, on_trim_timer, c);
}

void heap_trim_schedule(struct controller *c) {
  if (!c->trim_timer && !c->stopped)
    c->trim_timer = gpc_loop_add_timer(c->cfg.loop, TRIM_INTERVAL_MS, on_trim_timer, c);
}

void heap_trim_stop(struct controller *c) {
  if (c->trim_timer) gpc_loop_cancel_timer(c->cfg.loop, c->trim_timer);
  c->trim_timer = 0;
}
