/* leader_sm.c — client-go's tryAcquireOrRenew as a pure state machine. */
#include "leader_sm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"

static void record_free(struct leader_record *r) {
  free(r->holder);
  free(r->acquire_time);
  free(r->renew_time);
  memset(r, 0, sizeof *r);
}

static const char *jstr(const json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? s : "";
}

/* Reads spec.* of a Lease; false when obj is not a Lease-shaped object. */
static bool record_from_json(const json_t *obj, struct leader_record *r) {
  if (!json_is_object(obj)) return false;
  const json_t *spec = json_object_get(obj, "spec");
  if (spec && !json_is_object(spec)) return false;
  r->holder = gpc_strdup(jstr(spec, "holderIdentity"));
  r->duration_s = (long)json_integer_value(json_object_get(spec, "leaseDurationSeconds"));
  r->acquire_time = gpc_strdup(jstr(spec, "acquireTime"));
  r->renew_time = gpc_strdup(jstr(spec, "renewTime"));
  r->transitions = (long)json_integer_value(json_object_get(spec, "leaseTransitions"));
  return true;
}

static bool record_equal(const struct leader_record *a, const struct leader_record *b) {
  return strcmp(a->holder, b->holder) == 0 && a->duration_s == b->duration_s &&
         strcmp(a->acquire_time, b->acquire_time) == 0 &&
         strcmp(a->renew_time, b->renew_time) == 0 && a->transitions == b->transitions;
}

void leader_sm_init(struct leader_sm *sm, const char *identity, const char *namespace,
                    const char *name, uint64_t lease_ms, uint64_t renew_deadline_ms,
                    uint64_t retry_ms) {
  memset(sm, 0, sizeof *sm);
  sm->identity = gpc_strdup(identity);
  sm->namespace = gpc_strdup(namespace);
  sm->name = gpc_strdup(name);
  sm->lease_ms = lease_ms ? lease_ms : LEADER_DEFAULT_LEASE_MS;
  sm->renew_deadline_ms = renew_deadline_ms ? renew_deadline_ms : LEADER_DEFAULT_RENEW_MS;
  sm->retry_ms = retry_ms ? retry_ms : LEADER_DEFAULT_RETRY_MS;
}

void leader_sm_release(struct leader_sm *sm) {
  record_free(&sm->observed);
  json_decref(sm->observed_obj);
  free(sm->identity);
  free(sm->namespace);
  free(sm->name);
  memset(sm, 0, sizeof *sm);
}

const char *leader_sm_holder(const struct leader_sm *sm) {
  return sm->have_observed ? sm->observed.holder : "";
}

/* Stores a Lease seen on the wire; the observation time moves only when the
 * record itself changed (a bare resourceVersion bump is not a renewal). */
static bool observe(struct leader_sm *sm, uint64_t now_ms, const char *body, size_t len) {
  json_t *obj = body ? json_loadb(body, len, 0, NULL) : NULL;
  struct leader_record r = {0};
  if (!obj || !record_from_json(obj, &r)) {
    json_decref(obj);
    record_free(&r);
    return false;
  }
  if (!sm->have_observed || !record_equal(&r, &sm->observed)) {
    record_free(&sm->observed);
    sm->observed = r;
    sm->observed_ms = now_ms;
    sm->have_observed = true;
  } else {
    record_free(&r);
  }
  json_decref(sm->observed_obj);
  sm->observed_obj = obj;
  return true;
}

static bool held_by_me(const struct leader_sm *sm) {
  return sm->have_observed && strcmp(sm->observed.holder, sm->identity) == 0;
}

enum leader_step leader_sm_begin(struct leader_sm *sm, uint64_t now_ms) {
  sm->fast_path = false;
  if (sm->leading && held_by_me(sm) && sm->observed_obj &&
      sm->observed_ms + (uint64_t)sm->observed.duration_s * 1000u > now_ms) {
    sm->fast_path = true;
    return LEADER_STEP_UPDATE;
  }
  return LEADER_STEP_GET;
}

enum leader_step leader_sm_on_get(struct leader_sm *sm, uint64_t now_ms, long http_code,
                                  const char *body, size_t len) {
  if (http_code == 404) {
    record_free(&sm->observed);
    json_decref(sm->observed_obj);
    sm->observed_obj = NULL;
    sm->have_observed = false;
    sm->leading = false;
    return LEADER_STEP_CREATE;
  }
  if (http_code != 200 || !observe(sm, now_ms, body, len)) return LEADER_STEP_NONE;
  const struct leader_record *r = &sm->observed;
  if (r->holder[0] && !held_by_me(sm) &&
      sm->observed_ms + (uint64_t)(r->duration_s > 0 ? r->duration_s : 0) * 1000u > now_ms) {
    sm->leading = false; /* someone else holds a live lease */
    return LEADER_STEP_NONE;
  }
  return LEADER_STEP_UPDATE;
}

bool leader_sm_on_write(struct leader_sm *sm, uint64_t now_ms, long http_code, const char *body,
                        size_t len, enum leader_step *next) {
  *next = LEADER_STEP_NONE;
  if ((http_code == 200 || http_code == 201) && observe(sm, now_ms, body, len)) {
    /* A write that landed is a fresh observation even when byte-identical. */
    sm->observed_ms = now_ms;
    sm->leading = held_by_me(sm);
    if (sm->leading) sm->renewed_ms = now_ms;
    return sm->leading;
  }
  if (sm->fast_path) *next = LEADER_STEP_GET;
  sm->fast_path = false;
  return false;
}

bool leader_sm_check_deadline(struct leader_sm *sm, uint64_t now_ms) {
  if (!sm->leading || now_ms < sm->renewed_ms + sm->renew_deadline_ms) return false;
  sm->leading = false;
  return true;
}

char *leader_sm_microtime(int64_t wall_us, char *buf, size_t size) {
  time_t secs = (time_t)(wall_us / 1000000);
  long us = (long)(wall_us % 1000000);
  if (us < 0) {
    us += 1000000;
    secs--;
  }
  struct tm tm;
  gmtime_r(&secs, &tm);
  char base[24];
  strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, size, "%s.%06ldZ", base, us);
  return buf;
}

char *leader_sm_body(const struct leader_sm *sm, enum leader_step step, bool release,
                     int64_t wall_us) {
  char now[40];
  leader_sm_microtime(wall_us, now, sizeof now);
  json_t *obj;
  if (step == LEADER_STEP_UPDATE && sm->observed_obj) {
    obj = json_deep_copy(sm->observed_obj);
    json_t *meta = json_object_get(obj, "metadata");
    if (json_is_object(meta)) json_object_del(meta, "managedFields");
  } else {
    obj = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "coordination.k8s.io/v1", "kind",
                    "Lease", "metadata", "name", sm->name, "namespace", sm->namespace);
  }
  bool mine = held_by_me(sm) && step == LEADER_STEP_UPDATE;
  long transitions = sm->have_observed ? sm->observed.transitions : 0;
  const char *acquire = now;
  if (release) {
    /* ReleaseOnCancel: free now, expire in a second, history kept. */
  } else if (mine) {
    acquire = sm->observed.acquire_time[0] ? sm->observed.acquire_time : now;
  } else if (step == LEADER_STEP_UPDATE) {
    transitions++;
  }
  json_t *spec = json_pack("{s:s, s:I, s:s, s:s, s:I}", "holderIdentity",
                           release ? "" : sm->identity, "leaseDurationSeconds",
                           (json_int_t)(release ? 1 : (sm->lease_ms + 999) / 1000), "acquireTime",
                           acquire, "renewTime", now, "leaseTransitions", (json_int_t)transitions);
  json_object_set_new(obj, "spec", spec);
  char *out = json_dumps(obj, JSON_COMPACT);
  json_decref(obj);
  return out;
}
