/* informer.h — a LIST+WATCH cache of one resource, as client-go's reflector
 * plus indexer, holding compact projections instead of objects.
 *
 * Algorithm (docs/wire-spec.md §2):
 *  1. LIST with limit=page_size (INFORMER_PAGE_LIMIT), following `continue`
 *     until it is empty; RV := the list's metadata.resourceVersion.
 *  2. WATCH from RV with allowWatchBookmarks=true and timeoutSeconds random
 *     in [watch_min_s, watch_max_s) (default 300-600, as client-go).
 *  3. Every event (bookmarks included) advances RV.
 *  4. A watch that ends cleanly, or whose connection drops, or that fails
 *     with 429/5xx, is resumed from RV — no re-list.
 *  5. 410 Expired/Gone (an ERROR event or the HTTP status) → re-list once,
 *     after a jittered backoff; other failures back off exponentially
 *     (backoff_base_ms doubling to backoff_cap_ms, default 800 ms → 30 s).
 *  6. A re-list replaces the cache: added keys → add, keys whose
 *     resourceVersion changed → update, vanished keys → delete.
 *  7. LIST 404 (a CRD not installed yet) marks the informer synced (empty)
 *     and retries with backoff.
 *  8. A request that kube_client_submit refuses is retried like a failed
 *     one (LIST from the start, or WATCH from RV) after the backoff, so no
 *     error leaves a running informer idle.
 *
 * Memory: each object is handed to `project` as it is decoded and the JSON
 * is freed right after; LIST pages are freed page by page. The cache keeps
 * only the projection (and the object's resourceVersion) under
 * "namespace/name" ("name" for cluster-scoped objects).
 *
 * Ownership: projections returned by `project` belong to the informer and are
 * released with `free_proj`. Handler arguments are borrowed: `old` in
 * on_update and `obj` in on_delete are freed right after the handler
 * returns. Handlers may call informer_stop() (not informer_free()), and may
 * read the cache; they must not keep pointers to projections past the next
 * event. Single-threaded, on the loop.
 */
#ifndef GPC_INFORMER_H
#define GPC_INFORMER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "kube_client.h"
#include "loop.h"

struct informer;

/* LIST page size (design.md §5, client-go's reflector default). Pages are
 * streamed item by item through list_decoder, so a bigger page costs no
 * memory: 5,000 ~15 KB Nodes sync at peak/settled RSS 1.00 with 100 and
 * with 500 (bench/bench_informer.py, docs/client.md), and 500 needs 5x
 * fewer requests. */
#define INFORMER_PAGE_LIMIT 500

/* obj is borrowed (freed after the call). Return a new projection, or NULL
 * to leave the object out of the cache (as if it did not exist). */
typedef void *(*informer_project_cb)(const json_t *obj, void *ud);
typedef void (*informer_free_cb)(void *proj, void *ud);
typedef void (*informer_add_cb)(struct informer *inf, const char *key, const void *obj, void *ud);
typedef void (*informer_update_cb)(struct informer *inf, const char *key, const void *old,
                                   const void *cur, void *ud);
typedef void (*informer_delete_cb)(struct informer *inf, const char *key, const void *obj,
                                   void *ud);
typedef void (*informer_synced_cb)(struct informer *inf, void *ud);

struct informer_config {
  const char *group; /* NULL/"" = core */
  const char *version;
  const char *resource;
  const char *namespace; /* NULL = all namespaces / cluster-scoped */
  const char *label_selector;
  const char *field_selector;

  informer_project_cb project; /* required */
  informer_free_cb free_proj;  /* required */
  informer_add_cb on_add;      /* optional handlers */
  informer_update_cb on_update;
  informer_delete_cb on_delete;
  informer_synced_cb on_synced; /* once, after the first complete LIST */
  void *ud;

  long page_size;           /* 0 = INFORMER_PAGE_LIMIT */
  long watch_min_s;         /* 0 = 300 */
  long watch_max_s;         /* 0 = 600 */
  uint64_t backoff_base_ms; /* 0 = 800 */
  uint64_t backoff_cap_ms;  /* 0 = 30000 */
  size_t max_event;         /* watch event cap; 0 = WATCH_DEFAULT_MAX_EVENT */
};

struct informer_stats {
  uint64_t lists;      /* complete LISTs (all pages) */
  uint64_t list_pages; /* LIST requests answered 200 */
  uint64_t relists;    /* LISTs started after the first */
  uint64_t watches;    /* WATCH requests started */
  uint64_t events;     /* ADDED/MODIFIED/DELETED applied */
  uint64_t bookmarks;
  uint64_t gone;   /* 410 seen (event or HTTP) */
  uint64_t errors; /* failed LIST/WATCH attempts (backoffs) */
  size_t objects;  /* cache size */
};

/* Copies the strings in cfg. client and loop are borrowed. NULL with err
 * when the config is incomplete. */
struct informer *informer_new(struct kube_client *client, struct gpc_loop *loop,
                              const struct informer_config *cfg, struct gpc_error *err);
/* Starts listing (asynchronously), or resumes watching after a stop.
 * Idempotent. Not from inside this informer's handlers. */
void informer_start(struct informer *inf);
/* Cancels in-flight requests and timers; the cache stays readable. */
void informer_stop(struct informer *inf);
/* Stops, frees every projection (free_proj) and the informer. NULL is a
 * no-op. */
void informer_free(struct informer *inf);

bool informer_synced(const struct informer *inf);
/* Last resourceVersion seen ("" before the first LIST). Borrowed: owned by
 * the informer and replaced by the next LIST or event, so copy it to keep it
 * past a turn of the loop (or past informer_free). */
const char *informer_resource_version(const struct informer *inf);
/* The projection cached under key ("ns/name" or "name"), or NULL. Borrowed:
 * owned by the informer until that object's next event. */
const void *informer_get(const struct informer *inf, const char *key);
size_t informer_size(const struct informer *inf);
void informer_get_stats(const struct informer *inf, struct informer_stats *out);

/* Iteration over the cache; do not modify the informer while iterating
 * (i.e. do not run the loop). */
struct informer_iter {
  void *priv[4];
};
void informer_iter_init(struct informer_iter *it, const struct informer *inf);
bool informer_next(struct informer_iter *it, const char **key, const void **obj);

/* "ns/name" or "name" for an object (metadata borrowed). Caller frees.
 * NULL when metadata.name is missing. */
char *informer_key_of(const json_t *obj);

#endif
