/* events.c — Event aggregation and rate limiting (see events.h). */
#include "events.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "policy.h"

/* State of one (policy, reason) series. */
struct series {
  char *policy;
  char *reason;
  char *uid;
  char *type;
  char *event_name; /* the Event currently aggregated into, NULL before the first */
  char *message;
  int64_t count;
  time_t first_ts, last_ts;
  uint64_t last_sent_ms;
  bool dirty; /* occurrences not sent yet */
  double tokens;
  uint64_t token_ms;
};

struct gpc_events {
  char *component;
  char *host;
  struct series *v;
  size_t n, cap;
  uint64_t seq; /* makes names unique within one second */
};

struct gpc_events *events_new(const char *component, const char *host) {
  struct gpc_events *ev = gpc_calloc(1, sizeof *ev);
  ev->component = gpc_strdup(component ? component : "gpu-policy-controller");
  ev->host = host ? gpc_strdup(host) : NULL;
  return ev;
}

static void series_release(struct series *s) {
  free(s->policy);
  free(s->reason);
  free(s->uid);
  free(s->type);
  free(s->event_name);
  free(s->message);
  memset(s, 0, sizeof *s);
}

void events_free(struct gpc_events *ev) {
  if (!ev) return;
  for (size_t i = 0; i < ev->n; i++)
    series_release(&ev->v[i]);
  free(ev->v);
  free(ev->component);
  free(ev->host);
  free(ev);
}

void events_write_release(struct events_write *w) {
  free(w->name);
  json_decref(w->body);
  memset(w, 0, sizeof *w);
}

void events_format_time(time_t t, char *buf, size_t len) {
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static struct series *find(struct gpc_events *ev, const char *policy, const char *reason) {
  for (size_t i = 0; i < ev->n; i++)
    if (strcmp(ev->v[i].policy, policy) == 0 && strcmp(ev->v[i].reason, reason) == 0)
      return &ev->v[i];
  return NULL;
}

static struct series *add(struct gpc_events *ev, const char *policy, const char *reason,
                          uint64_t now_ms) {
  gpc_grow((void **)&ev->v, &ev->cap, ev->n + 1, sizeof *ev->v);
  struct series *s = &ev->v[ev->n++];
  memset(s, 0, sizeof *s);
  s->policy = gpc_strdup(policy);
  s->reason = gpc_strdup(reason);
  s->tokens = EVENTS_BURST;
  s->token_ms = now_ms;
  return s;
}

static void refill(struct series *s, uint64_t now_ms) {
  if (now_ms <= s->token_ms) return;
  s->tokens += (double)(now_ms - s->token_ms) / EVENTS_REFILL_MS;
  if (s->tokens > EVENTS_BURST) s->tokens = EVENTS_BURST;
  s->token_ms = now_ms;
}

static void set(char **dst, const char *v) {
  free(*dst);
  *dst = gpc_strdup(v ? v : "");
}

static json_t *create_body(const struct gpc_events *ev, const struct series *s,
                           const struct events_object *about) {
  char first[32], last[32];
  events_format_time(s->first_ts, first, sizeof first);
  events_format_time(s->last_ts, last, sizeof last);
  json_t *involved = json_pack("{s:s, s:s, s:s}", "apiVersion", GPC_POLICY_API_VERSION, "kind",
                               GPC_POLICY_KIND, "name", about->name);
  if (about->uid && *about->uid) json_object_set_new(involved, "uid", json_string(about->uid));
  if (about->resource_version && *about->resource_version)
    json_object_set_new(involved, "resourceVersion", json_string(about->resource_version));
  json_t *source = json_pack("{s:s}", "component", ev->component);
  if (ev->host) json_object_set_new(source, "host", json_string(ev->host));
  return json_pack("{s:s, s:s, s:{s:s, s:s}, s:o, s:s, s:s, s:s, s:o, s:s, s:s, s:I, s:s, s:s}",
                   "apiVersion", "v1", "kind", "Event", "metadata", "name", s->event_name,
                   "namespace", EVENTS_NAMESPACE, "involvedObject", involved, "reason", s->reason,
                   "message", s->message, "type", s->type, "source", source, "firstTimestamp",
                   first, "lastTimestamp", last, "count", (json_int_t)s->count,
                   "reportingComponent", ev->component, "reportingInstance",
                   ev->host ? ev->host : ev->component);
}

static void make_patch(struct series *s, uint64_t now_ms, struct events_write *out) {
  char last[32];
  events_format_time(s->last_ts, last, sizeof last);
  out->kind = EVENTS_PATCH;
  out->name = gpc_strdup(s->event_name);
  out->body = json_pack("{s:I, s:s, s:s}", "count", (json_int_t)s->count, "lastTimestamp", last,
                        "message", s->message);
  s->last_sent_ms = now_ms;
  s->dirty = false;
}

void events_record(struct gpc_events *ev, const struct events_object *about, const char *type,
                   const char *reason, const char *message, uint64_t now_ms, time_t wall,
                   struct events_write *out) {
  memset(out, 0, sizeof *out);
  struct series *s = find(ev, about->name, reason);
  if (!s) s = add(ev, about->name, reason, now_ms);
  refill(s, now_ms);
  bool same = s->event_name && strcmp(s->message, message) == 0 && strcmp(s->type, type) == 0 &&
              strcmp(s->uid, about->uid ? about->uid : "") == 0;
  if (!same && s->tokens >= 1.0) {
    /* A new Event. */
    s->tokens -= 1.0;
    free(s->event_name);
    s->event_name = gpc_asprintf("%s.%llx", about->name,
                                 (unsigned long long)wall * 1000000000ull + (++ev->seq % 1000000));
    set(&s->message, message);
    set(&s->type, type);
    set(&s->uid, about->uid);
    s->count = 1;
    s->first_ts = s->last_ts = wall;
    s->last_sent_ms = now_ms;
    s->dirty = false;
    out->kind = EVENTS_CREATE;
    out->name = gpc_strdup(s->event_name);
    out->body = create_body(ev, s, about);
    return;
  }
  if (!s->event_name) return; /* cannot happen: a new series has tokens */
  /* Fold into the current Event. */
  s->count++;
  s->last_ts = wall;
  if (!same) set(&s->message, message);
  if (now_ms - s->last_sent_ms >= EVENTS_UPDATE_INTERVAL_MS)
    make_patch(s, now_ms, out);
  else
    s->dirty = true;
}

bool events_next_flush(struct gpc_events *ev, uint64_t now_ms, time_t wall,
                       struct events_write *out) {
  (void)wall;
  memset(out, 0, sizeof *out);
  for (size_t i = 0; i < ev->n; i++) {
    struct series *s = &ev->v[i];
    if (s->dirty && now_ms - s->last_sent_ms >= EVENTS_UPDATE_INTERVAL_MS) {
      make_patch(s, now_ms, out);
      return true;
    }
  }
  return false;
}

uint64_t events_next_flush_at(const struct gpc_events *ev) {
  uint64_t at = 0;
  for (size_t i = 0; i < ev->n; i++) {
    const struct series *s = &ev->v[i];
    uint64_t due = s->last_sent_ms + EVENTS_UPDATE_INTERVAL_MS;
    if (s->dirty && (at == 0 || due < at)) at = due;
  }
  return at;
}

bool events_recreate(struct gpc_events *ev, const char *name, struct events_write *out) {
  memset(out, 0, sizeof *out);
  for (size_t i = 0; i < ev->n; i++) {
    struct series *s = &ev->v[i];
    if (!s->event_name || strcmp(s->event_name, name) != 0) continue;
    struct events_object about = {.name = s->policy, .uid = s->uid};
    out->kind = EVENTS_CREATE;
    out->name = gpc_strdup(s->event_name);
    out->body = create_body(ev, s, &about);
    return true;
  }
  return false;
}

void events_forget(struct gpc_events *ev, const char *policy) {
  for (size_t i = 0; i < ev->n;) {
    if (strcmp(ev->v[i].policy, policy) == 0) {
      series_release(&ev->v[i]);
      ev->v[i] = ev->v[--ev->n];
    } else {
      i++;
    }
  }
}
