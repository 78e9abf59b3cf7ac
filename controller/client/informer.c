/* informer.c — LIST then WATCH, resume, re-list on 410 (see informer.h).
 *
 * States: IDLE → LISTING (pages) → WATCHING → (clean end / drop) WATCHING
 * again, or (410) back to LISTING after a backoff, or (error) a backoff timer
 * and then whichever of the two the error calls for. At most one request is
 * in flight at any time; `call` holds its id so stop can cancel it.
 */
#include "informer.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "backoff.h"
#include "list_decoder.h"
#include "log.h"
#include "strmap.h"
#include "watch.h"

#define COMP "informer"

struct entry {
  void *proj;
  char *rv;
  uint64_t list_gen; /* generation of the last LIST that saw it */
};

enum next_step { STEP_LIST, STEP_WATCH };

struct informer {
  struct kube_client *client;
  struct gpc_loop *loop;
  struct informer_config cfg; /* strings below are our copies */
  char *group, *version, *resource, *namespace, *label_selector, *field_selector;

  struct strmap *cache;
  char *rv;
  char *continue_token;
  uint64_t list_gen;
  bool running;
  bool synced;
  bool listed_once;

  uint64_t call;       /* in-flight request id, 0 = none */
  uint64_t timer;      /* backoff timer, 0 = none */
  enum next_step next; /* what the backoff timer starts */
  unsigned failures;
  uint64_t rng;

  struct list_decoder *ldec; /* current LIST page */
  bool list_failed;          /* the page's body was malformed */

  /* current watch */
  struct watch_decoder *dec;
  uint64_t watch_started_ms;
  uint64_t watch_events;
  bool watch_gone;   /* saw ERROR 410 */
  bool watch_failed; /* saw another ERROR or a decode error */

  struct informer_stats stats;
};

static void start_list(struct informer *inf);
static void start_watch(struct informer *inf);

/* ---- cache ---- */

char *informer_key_of(const json_t *obj) {
  const json_t *md = json_object_get(obj, "metadata");
  const char *name = json_string_value(json_object_get(md, "name"));
  const char *ns = json_string_value(json_object_get(md, "namespace"));
  if (!name || !*name) return NULL;
  return ns && *ns ? gpc_asprintf("%s/%s", ns, name) : gpc_strdup(name);
}

static const char *rv_of(const json_t *obj) {
  const char *rv =
      json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
  return rv ? rv : "";
}

static void set_rv(struct informer *inf, const char *rv) {
  if (!rv || !*rv) return;
  free(inf->rv);
  inf->rv = gpc_strdup(rv);
}

static void entry_free(struct informer *inf, struct entry *e) {
  if (e->proj) inf->cfg.free_proj(e->proj, inf->cfg.ud);
  free(e->rv);
  free(e);
}

static void cache_delete(struct informer *inf, const char *key) {
  struct entry *e = strmap_del(inf->cache, key);
  if (!e) return;
  if (inf->cfg.on_delete) inf->cfg.on_delete(inf, key, e->proj, inf->cfg.ud);
  entry_free(inf, e);
}

/* Inserts or replaces the object; `on_list` suppresses updates whose
 * resourceVersion did not change (a re-list re-delivers everything). */
static void cache_upsert(struct informer *inf, const json_t *obj, bool on_list) {
  char *key = informer_key_of(obj);
  if (!key) return;
  const char *rv = rv_of(obj);
  struct entry *e = strmap_get(inf->cache, key);
  if (e && on_list && strcmp(e->rv, rv) == 0) {
    e->list_gen = inf->list_gen;
    free(key);
    return;
  }
  void *proj = inf->cfg.project(obj, inf->cfg.ud);
  if (!proj) { /* not interesting: as if absent */
    cache_delete(inf, key);
    free(key);
    return;
  }
  if (!e) {
    e = gpc_calloc(1, sizeof *e);
    e->proj = proj;
    e->rv = gpc_strdup(rv);
    e->list_gen = inf->list_gen;
    strmap_put(inf->cache, key, e);
    if (inf->cfg.on_add) inf->cfg.on_add(inf, key, proj, inf->cfg.ud);
  } else {
    void *old = e->proj;
    e->proj = proj;
    free(e->rv);
    e->rv = gpc_strdup(rv);
    e->list_gen = inf->list_gen;
    if (inf->cfg.on_update) inf->cfg.on_update(inf, key, old, proj, inf->cfg.ud);
    inf->cfg.free_proj(old, inf->cfg.ud);
  }
  free(key);
}

/* After a complete re-list: keys the list did not return are gone. */
static void cache_sweep(struct informer *inf) {
  struct strmap_iter it;
  strmap_iter_init(&it, inf->cache);
  const char *key;
  void *v;
  /* Collect first: delete handlers may read the cache, so do not mutate it
   * under an iterator while they run. */
  char **gone = NULL;
  size_t n = 0, cap = 0;
  while (strmap_next(&it, &key, &v)) {
    if (((struct entry *)v)->list_gen == inf->list_gen) continue;
    gpc_grow((void **)&gone, &cap, n + 1, sizeof *gone);
    gone[n++] = gpc_strdup(key);
  }
  for (size_t i = 0; i < n; i++) {
    cache_delete(inf, gone[i]);
    free(gone[i]);
  }
  free(gone);
}

/* ---- backoff ---- */

static void on_backoff(struct gpc_loop *loop, uint64_t id, void *ud) {
  struct informer *inf = ud;
  inf->timer = 0;
  /* A watch can only resume from a resourceVersion a complete LIST gave. */
  if (inf->next == STEP_LIST || !inf->listed_once || !inf->rv)
    start_list(inf);
  else
    start_watch(inf);
}

static void backoff_then(struct informer *inf, enum next_step step, const char *why) {
  uint64_t d = backoff_delay_ms(inf->cfg.backoff_base_ms, inf->cfg.backoff_cap_ms, inf->failures,
                                backoff_rand(&inf->rng));
  inf->failures++;
  inf->stats.errors++;
  inf->next = step;
  log_info(COMP, "backing off", KV_S("resource", inf->resource), KV_S("reason", why),
           KV_S("next", step == STEP_LIST ? "list" : "watch"), KV_I("delay_ms", d));
  inf->timer = gpc_loop_add_timer(inf->loop, d, on_backoff, inf);
}

/* ---- LIST ---- */

static void fill_common(const struct informer *inf, struct kube_request *r) {
  r->group = inf->group;
  r->version = inf->version;
  r->resource = inf->resource;
  r->namespace = inf->namespace;
  r->label_selector = inf->label_selector;
  r->field_selector = inf->field_selector;
}

static void on_list_done(struct kube_client *c, const struct kube_response *r, void *ud);
static int on_list_chunk(struct kube_client *c, const char *data, size_t len, void *ud);

/* Pages are streamed through a list_decoder: each item is projected as soon
 * as its bytes are in, so a page is never held whole (budget B2). */
static void submit_list_page(struct informer *inf) {
  struct kube_request req = {.verb = KUBE_LIST};
  fill_common(inf, &req);
  req.limit = inf->cfg.page_size;
  req.continue_token = inf->continue_token;
  list_decoder_free(inf->ldec);
  inf->ldec = list_decoder_new(inf->cfg.max_event, 0);
  inf->list_failed = false;
  struct gpc_error err = {0};
  inf->call = kube_client_submit(inf->client, &req, on_list_done, on_list_chunk, inf, &err);
  if (!inf->call) {
    /* Never leave the cache unsynced for good: retry the whole LIST (a
     * continue token is not worth trusting after an error) with backoff. */
    log_error(COMP, "cannot submit list", KV_S("resource", inf->resource), KV_S("error", err.msg));
    list_decoder_free(inf->ldec);
    inf->ldec = NULL;
    backoff_then(inf, STEP_LIST, "list submit failed");
  }
}

static void start_list(struct informer *inf) {
  if (!inf->running) return;
  if (inf->listed_once) {
    inf->stats.relists++;
    log_info(COMP, "re-listing", KV_S("resource", inf->resource));
  }
  inf->watch_gone = inf->watch_failed = false;
  free(inf->continue_token);
  inf->continue_token = NULL;
  inf->list_gen++;
  submit_list_page(inf);
}

static void finish_list(struct informer *inf) {
  inf->stats.lists++;
  inf->failures = 0;
  if (inf->listed_once) cache_sweep(inf);
  inf->listed_once = true;
  log_info(COMP, "listed", KV_S("resource", inf->resource),
           KV_I("objects", strmap_size(inf->cache)), KV_S("resourceVersion", inf->rv));
  if (!inf->synced) {
    inf->synced = true;
    if (inf->cfg.on_synced) inf->cfg.on_synced(inf, inf->cfg.ud);
  }
  if (inf->running) start_watch(inf);
}

static int on_list_item(const json_t *item, void *ud) {
  struct informer *inf = ud;
  cache_upsert(inf, item, true);
  return inf->running ? 0 : 1;
}

static int on_list_chunk(struct kube_client *c, const char *data, size_t len, void *ud) {
  struct informer *inf = ud;
  struct gpc_error err = {0};
  int rc = list_decoder_feed(inf->ldec, data, len, on_list_item, inf, &err);
  if (rc == GPC_OK) return 0;
  if (rc != GPC_E_CANCELLED) {
    log_error(COMP, "malformed list page", KV_S("resource", inf->resource), KV_S("error", err.msg));
    inf->list_failed = true;
  }
  return 1;
}

/* Takes continue and resourceVersion from the page's skeleton. */
static bool finish_page(struct informer *inf) {
  struct gpc_error err = {0};
  json_t *list = list_decoder_finish(inf->ldec, &err);
  list_decoder_free(inf->ldec);
  inf->ldec = NULL;
  if (!list) {
    log_error(COMP, "malformed list page", KV_S("resource", inf->resource), KV_S("error", err.msg));
    return false;
  }
  const json_t *md = json_object_get(list, "metadata");
  const char *cont = json_string_value(json_object_get(md, "continue"));
  set_rv(inf, json_string_value(json_object_get(md, "resourceVersion")));
  free(inf->continue_token);
  inf->continue_token = cont && *cont ? gpc_strdup(cont) : NULL;
  json_decref(list);
  return true;
}

static void on_list_done(struct kube_client *c, const struct kube_response *r, void *ud) {
  struct informer *inf = ud;
  inf->call = 0;
  if (!inf->running) return;
  if (r->rc != GPC_OK && !inf->list_failed) {
    list_decoder_free(inf->ldec);
    inf->ldec = NULL;
    if (r->http_code == 404 && !inf->synced) {
      /* CRD not installed yet: synced-empty, and keep trying. */
      inf->synced = true;
      if (inf->cfg.on_synced) inf->cfg.on_synced(inf, inf->cfg.ud);
    }
    if (r->http_code == 410) inf->stats.gone++;
    log_warn(COMP, "list failed", KV_S("resource", inf->resource), KV_I("code", r->http_code),
             KV_S("error", r->error ? r->error : ""));
    backoff_then(inf, STEP_LIST, "list failed");
    return;
  }
  if (inf->list_failed || !finish_page(inf)) {
    list_decoder_free(inf->ldec);
    inf->ldec = NULL;
    backoff_then(inf, STEP_LIST, "malformed list");
    return;
  }
  inf->stats.list_pages++;
  if (inf->continue_token)
    submit_list_page(inf);
  else
    finish_list(inf);
}

/* ---- WATCH ---- */

static int on_event(const struct watch_event *ev, void *ud) {
  struct informer *inf = ud;
  inf->watch_events++;
  switch (ev->type) {
  case WATCH_ADDED:
  case WATCH_MODIFIED:
    inf->stats.events++;
    cache_upsert(inf, ev->object, false);
    set_rv(inf, rv_of(ev->object));
    break;
  case WATCH_DELETED: {
    inf->stats.events++;
    char *key = informer_key_of(ev->object);
    if (key) cache_delete(inf, key);
    free(key);
    set_rv(inf, rv_of(ev->object));
    break;
  }
  case WATCH_BOOKMARK:
    inf->stats.bookmarks++;
    set_rv(inf, rv_of(ev->object));
    break;
  case WATCH_ERROR: {
    struct kube_status st;
    kube_status_from_json(&st, ev->object, 500);
    if (st.code == 410) {
      inf->watch_gone = true;
      inf->stats.gone++;
    } else {
      inf->watch_failed = true;
    }
    log_info(COMP, "watch error event", KV_S("resource", inf->resource), KV_I("code", st.code),
             KV_S("reason", st.reason), KV_S("message", st.message));
    kube_status_release(&st);
    return 1; /* stop decoding; the stream is over */
  }
  }
  return inf->running ? 0 : 1;
}

static int on_watch_chunk(struct kube_client *c, const char *data, size_t len, void *ud) {
  struct informer *inf = ud;
  struct gpc_error err = {0};
  int rc = watch_decoder_feed(inf->dec, data, len, on_event, inf, &err);
  if (rc == GPC_OK) return 0;
  if (rc != GPC_E_CANCELLED) {
    log_warn(COMP, "watch stream undecodable", KV_S("resource", inf->resource),
             KV_S("error", err.msg));
    inf->watch_failed = true;
  }
  return 1;
}

static void on_watch_done(struct kube_client *c, const struct kube_response *r, void *ud) {
  struct informer *inf = ud;
  inf->call = 0;
  watch_decoder_free(inf->dec);
  inf->dec = NULL;
  if (!inf->running) return;
  if (inf->watch_events) inf->failures = 0;
  if (inf->watch_gone || r->http_code == 410) {
    if (r->http_code == 410) inf->stats.gone++;
    inf->watch_gone = true;
    backoff_then(inf, STEP_LIST, "resourceVersion expired (410)");
    return;
  }
  if (inf->watch_failed) {
    backoff_then(inf, STEP_LIST, "watch error");
    return;
  }
  uint64_t lasted = gpc_loop_now_ms() - inf->watch_started_ms;
  if (r->rc == GPC_OK) {
    if (lasted < 1000 && inf->watch_events == 0) {
      /* A server that closes watches at once would make us spin. */
      backoff_then(inf, STEP_WATCH, "very short watch");
      return;
    }
    start_watch(inf); /* clean end (server timeout): resume at once */
    return;
  }
  /* Dropped connection, 429, 5xx, timeout: resume from RV after a backoff;
   * other API errors (403, 400, ...) call for a fresh LIST. */
  bool transient = r->http_code == 0 || r->http_code == 200 || r->http_code == 429 ||
                   r->http_code >= 500 || r->rc == GPC_E_TIMEOUT || r->rc == GPC_E_IO;
  backoff_then(inf, transient ? STEP_WATCH : STEP_LIST, r->error ? r->error : "watch failed");
}

static void start_watch(struct informer *inf) {
  if (!inf->running) return;
  struct kube_request req = {.verb = KUBE_WATCH};
  fill_common(inf, &req);
  watch_decoder_free(inf->dec); /* left by a stop from a handler */
  req.resource_version = inf->rv;
  req.allow_watch_bookmarks = true;
  long span = inf->cfg.watch_max_s - inf->cfg.watch_min_s;
  req.timeout_seconds =
      inf->cfg.watch_min_s + (span > 0 ? (long)(backoff_rand(&inf->rng) * (double)span) : 0);
  inf->dec = watch_decoder_new(inf->cfg.max_event);
  inf->watch_started_ms = gpc_loop_now_ms();
  inf->watch_events = 0;
  inf->watch_gone = inf->watch_failed = false;
  inf->stats.watches++;
  struct gpc_error err = {0};
  inf->call = kube_client_submit(inf->client, &req, on_watch_done, on_watch_chunk, inf, &err);
  if (!inf->call) {
    log_error(COMP, "cannot submit watch", KV_S("resource", inf->resource), KV_S("error", err.msg));
    watch_decoder_free(inf->dec);
    inf->dec = NULL;
    backoff_then(inf, STEP_WATCH, "watch submit failed"); /* resume from RV, no re-list */
  }
}

/* ---- public ---- */

static char *dup_or_null(const char *s) {
  return s && *s ? gpc_strdup(s) : NULL;
}

struct informer *informer_new(struct kube_client *client, struct gpc_loop *loop,
                              const struct informer_config *cfg, struct gpc_error *err) {
  if (!cfg->version || !cfg->resource || !cfg->project || !cfg->free_proj) {
    gpc_fail(err, GPC_E_INVAL, "informer: version, resource, project and free_proj are required");
    return NULL;
  }
  struct informer *inf = gpc_calloc(1, sizeof *inf);
  inf->client = client;
  inf->loop = loop;
  inf->cfg = *cfg;
  inf->group = dup_or_null(cfg->group);
  inf->version = gpc_strdup(cfg->version);
  inf->resource = gpc_strdup(cfg->resource);
  inf->namespace = dup_or_null(cfg->namespace);
  inf->label_selector = dup_or_null(cfg->label_selector);
  inf->field_selector = dup_or_null(cfg->field_selector);
  if (inf->cfg.page_size <= 0) inf->cfg.page_size = INFORMER_PAGE_LIMIT;
  if (inf->cfg.watch_min_s <= 0) inf->cfg.watch_min_s = 300;
  if (inf->cfg.watch_max_s <= 0) inf->cfg.watch_max_s = 600;
  if (inf->cfg.watch_max_s < inf->cfg.watch_min_s) inf->cfg.watch_max_s = inf->cfg.watch_min_s;
  if (!inf->cfg.backoff_base_ms) inf->cfg.backoff_base_ms = 800;
  if (!inf->cfg.backoff_cap_ms) inf->cfg.backoff_cap_ms = 30000;
  inf->cache = strmap_new();
  inf->rng = backoff_seed() ^ (uint64_t)(uintptr_t)inf;
  return inf;
}

void informer_start(struct informer *inf) {
  if (inf->running) return;
  inf->running = true;
  if (inf->rv && inf->listed_once)
    start_watch(inf);
  else
    start_list(inf);
}

void informer_stop(struct informer *inf) {
  if (!inf->running) return;
  inf->running = false;
  if (inf->call) kube_client_cancel(inf->client, inf->call);
  inf->call = 0;
  if (inf->timer) gpc_loop_cancel_timer(inf->loop, inf->timer);
  inf->timer = 0;
  /* The decoder may be mid-feed (stop from a handler); it is freed on the
   * next start or in informer_free, never under the running feed. */
}

static void free_entry_cb(void *val, void *ud) {
  entry_free(ud, val);
}

void informer_free(struct informer *inf) {
  if (!inf) return;
  informer_stop(inf);
  watch_decoder_free(inf->dec);
  list_decoder_free(inf->ldec);
  strmap_free(inf->cache, free_entry_cb, inf);
  free(inf->group);
  free(inf->version);
  free(inf->resource);
  free(inf->namespace);
  free(inf->label_selector);
  free(inf->field_selector);
  free(inf->rv);
  free(inf->continue_token);
  free(inf);
}

bool informer_synced(const struct informer *inf) {
  return inf->synced;
}

const char *informer_resource_version(const struct informer *inf) {
  return inf->rv ? inf->rv : "";
}

const void *informer_get(const struct informer *inf, const char *key) {
  const struct entry *e = strmap_get(inf->cache, key);
  return e ? e->proj : NULL;
}

size_t informer_size(const struct informer *inf) {
  return strmap_size(inf->cache);
}

void informer_get_stats(const struct informer *inf, struct informer_stats *out) {
  *out = inf->stats;
  out->objects = strmap_size(inf->cache);
}

static_assert(sizeof(struct informer_iter) >= sizeof(struct strmap_iter), "iterator too small");

void informer_iter_init(struct informer_iter *it, const struct informer *inf) {
  strmap_iter_init((struct strmap_iter *)it, inf->cache);
}

bool informer_next(struct informer_iter *it, const char **key, const void **obj) {
  void *v;
  if (!strmap_next((struct strmap_iter *)it, key, &v)) return false;
  if (obj) *obj = ((struct entry *)v)->proj;
  return true;
}
