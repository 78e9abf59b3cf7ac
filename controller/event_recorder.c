/* event_recorder.c — sends the Event writes events.c decides (see event_recorder.h). */
#include "event_recorder.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "events.h"
#include "kube_client.h"
#include "log.h"
#include "loop.h"
#include "decode.h"
#include "status_diff.h"

#define COMP "controller" /* log component, one for every file of the controller */

/* One Event write in flight (its kind and name decide what a 404 means). */
struct event_call {
  struct controller *c;
  struct event_call *next;
  enum events_write_kind kind;
  char *name;
  uint64_t id;
};

static void event_call_unlink(struct controller *c, struct event_call *k) {
  for (struct event_call **pp = &c->event_calls; *pp; pp = &(*pp)->next)
    if (*pp == k) {
      *pp = k->next;
      break;
    }
  free(k->name);
  free(k);
}

static void send_event(struct controller *c, struct events_write *w);

static void on_event_written(struct kube_client *kc, const struct kube_response *r, void *ud) {
  (void)kc;
  struct event_call *k = ud;
  struct controller *c = k->c;
  c->events_in_flight--;
  if (r->rc != GPC_OK && k->kind == EVENTS_PATCH && r->http_code == 404 && !c->stopped) {
    /* The Event expired or was deleted: create it anew, as client-go's
     * recorder does, instead of dropping the occurrence. */
    struct events_write w;
    if (events_recreate(c->events, k->name, &w)) {
      log_debug(COMP, "event gone, creating it again", KV_S("event", k->name));
      send_event(c, &w);
    }
    events_write_release(&w);
  } else if (r->rc != GPC_OK) {
    log_debug(COMP, "event write failed", KV_I("code", r->http_code),
              KV_S("error", r->error ? r->error : ""));
  }
  event_call_unlink(c, k);
}

static void send_event(struct controller *c, struct events_write *w) {
  if (w->kind == EVENTS_NONE) return;
  char *body = json_dumps(w->body, JSON_COMPACT);
  struct kube_request req = {
      .verb = w->kind == EVENTS_CREATE ? KUBE_CREATE : KUBE_PATCH,
      .version = "v1",
      .resource = "events",
      .namespace = EVENTS_NAMESPACE,
      .name = w->kind == EVENTS_CREATE ? NULL : w->name,
      .body = body,
      .body_len = strlen(body),
      .patch_type = KUBE_PATCH_MERGE,
  };
  struct gpc_error err = {0};
  struct event_call *k = gpc_calloc(1, sizeof *k);
  k->c = c;
  k->kind = w->kind;
  k->name = gpc_strdup(w->name ? w->name : "");
  if ((k->id = kube_client_submit(c->cfg.client, &req, on_event_written, NULL, k, &err))) {
    c->events_in_flight++;
    c->stats.events_written++;
    k->next = c->event_calls;
    c->event_calls = k;
  } else {
    free(k->name);
    free(k);
  }
  free(body);
}

static void schedule_event_flush(struct controller *c);

static void on_events_timer(struct gpc_loop *loop, uint64_t id, void *ud) {
  (void)loop;
  (void)id;
  struct controller *c = ud;
  c->events_timer = 0;
  struct events_write w;
  while (c->leader && events_next_flush(c->events, gpc_loop_now_ms(), time(NULL), &w)) {
    send_event(c, &w);
    events_write_release(&w);
  }
  schedule_event_flush(c);
}

static void schedule_event_flush(struct controller *c) {
  uint64_t at = events_next_flush_at(c->events);
  if (at == 0 || c->events_timer || c->stopped) return;
  uint64_t now = gpc_loop_now_ms();
  c->events_timer = gpc_loop_add_timer(c->cfg.loop, at > now ? at - now : 0, on_events_timer, c);
}

void event_recorder_record(struct controller *c, const json_t *obj, const char *type,
                           const char *reason, const char *message) {
  struct events_object about = {
      .name = decode_str(obj, "metadata", "name", PJ_END),
      .uid = decode_str(obj, "metadata", "uid", PJ_END),
      .resource_version = decode_str(obj, "metadata", "resourceVersion", PJ_END),
  };
  if (!about.name) return;
  struct events_write w;
  events_record(c->events, &about, type, reason, message, gpc_loop_now_ms(), time(NULL), &w);
  send_event(c, &w);
  events_write_release(&w);
  schedule_event_flush(c);
}

void event_recorder_emit(const char *type, const char *reason, const char *message, void *ud) {
  struct event_about *e = ud;
  event_recorder_record(e->c, e->obj, type, reason, message);
}

void event_recorder_status_events(struct controller *c, const json_t *obj, const json_t *prev,
                                  const json_t *cur) {
  struct event_about e = {c, obj};
  status_diff_events(prev, cur, event_recorder_emit, &e);
}

void event_recorder_stop(struct controller *c) {
  if (c->events_timer) gpc_loop_cancel_timer(c->cfg.loop, c->events_timer);
  c->events_timer = 0;
}

void event_recorder_cancel(struct controller *c) {
  while (c->event_calls) {
    struct event_call *k = c->event_calls;
    c->event_calls = k->next;
    kube_client_cancel(c->cfg.client, k->id);
    free(k->name);
    free(k);
  }
}
