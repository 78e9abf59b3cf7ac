/* kube_request.c — URL building and retry classification (see kube_request.h). */
#include "kube_request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "dynbuf.h"
#include "urlesc.h"

#define VERB_METHOD_(e, name, method) [e] = method,
static const char *const verb_names[] = {KUBE_VERB_MAP(GPC_X_NAME)};
static const char *const verb_methods[] = {KUBE_VERB_MAP(VERB_METHOD_)};
#undef VERB_METHOD_
#define N_VERBS (sizeof verb_names / sizeof verb_names[0])

const char *kube_request_verb_method(enum kube_verb v) {
  return (unsigned)v < N_VERBS ? verb_methods[v] : "GET";
}

const char *kube_request_verb_name(enum kube_verb v) {
  return (unsigned)v < N_VERBS ? verb_names[v] : "unknown";
}

const char *kube_request_patch_content_type(enum kube_patch_type t) {
  switch (t) {
  case KUBE_PATCH_JSON:
    return "application/json-patch+json";
  case KUBE_PATCH_STRATEGIC:
    return "application/strategic-merge-patch+json";
  case KUBE_PATCH_APPLY:
    return "application/apply-patch+yaml";
  case KUBE_PATCH_MERGE:
    break;
  }
  return "application/merge-patch+json";
}

/* The URL is built from the caller's request, not read from outside, so
 * the buffer is uncapped and appends cannot fail. */
static void sb_add(struct dynbuf *b, const char *s) {
  (void)dynbuf_addstr(b, s);
}

static void sb_seg(struct dynbuf *b, const char *seg) {
  char *e = urlesc_path(seg);
  sb_add(b, "/");
  sb_add(b, e);
  free(e);
}

static void sb_param(struct dynbuf *b, bool *first, const char *key, const char *val) {
  sb_add(b, *first ? "?" : "&");
  *first = false;
  sb_add(b, key);
  sb_add(b, "=");
  char *e = urlesc_query(val);
  sb_add(b, e);
  free(e);
}

static void sb_param_long(struct dynbuf *b, bool *first, const char *key, long val) {
  char num[32];
  snprintf(num, sizeof num, "%ld", val);
  sb_param(b, first, key, num);
}

static void add_query(struct dynbuf *b, const struct kube_request *r) {
  bool first = true;
  if (r->verb == KUBE_WATCH) sb_param(b, &first, "watch", "true");
  if (r->label_selector && *r->label_selector)
    sb_param(b, &first, "labelSelector", r->label_selector);
  if (r->field_selector && *r->field_selector)
    sb_param(b, &first, "fieldSelector", r->field_selector);
  if (r->limit > 0) sb_param_long(b, &first, "limit", r->limit);
  if (r->continue_token && *r->continue_token) sb_param(b, &first, "continue", r->continue_token);
  if (r->resource_version) sb_param(b, &first, "resourceVersion", r->resource_version);
  if (r->allow_watch_bookmarks) sb_param(b, &first, "allowWatchBookmarks", "true");
  if (r->timeout_seconds > 0) sb_param_long(b, &first, "timeoutSeconds", r->timeout_seconds);
  if (r->field_manager && *r->field_manager) sb_param(b, &first, "fieldManager", r->field_manager);
  if (r->force) sb_param(b, &first, "force", "true");
  if (r->dry_run) sb_param(b, &first, "dryRun", "All");
  if (r->propagation_policy && *r->propagation_policy)
    sb_param(b, &first, "propagationPolicy", r->propagation_policy);
}

/* client-go's path.IsValidPathSegmentName (apimachinery/pkg/api/validation/
 * path): a name or namespace may not be "." or "..", nor contain '/' or '%'.
 * Escaping alone is not enough: "." and ".." survive it and libcurl (like any
 * URL library) collapses them, so a PATCH to configmaps/.. would go to the
 * namespace itself. NULL when valid, else why not. */
static const char *path_segment_problem(const char *s) {
  if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return "may not be \".\" or \"..\"";
  if (strchr(s, '/')) return "may not contain '/'";
  if (strchr(s, '%')) return "may not contain '%'";
  return NULL;
}

static int check_segments(const struct kube_request *r, struct gpc_error *err) {
  const struct {
    const char *what, *val;
  } segs[] = {{"namespace", r->namespace},     {"name", r->name},   {"resource", r->resource},
              {"subresource", r->subresource}, {"group", r->group}, {"version", r->version}};
  for (size_t i = 0; i < sizeof segs / sizeof segs[0]; i++) {
    const char *why = segs[i].val && *segs[i].val ? path_segment_problem(segs[i].val) : NULL;
    if (why)
      return gpc_fail(err, GPC_E_INVAL, "kube_request: invalid %s \"%.64s\": %s", segs[i].what,
                      segs[i].val, why);
  }
  return GPC_OK;
}

static int check_request(const struct kube_request *r, struct gpc_error *err) {
  int rc = check_segments(r, err);
  if (rc) return rc;
  if (!r->version || !*r->version)
    return gpc_fail(err, GPC_E_INVAL, "kube_request: version is required");
  bool discovery = r->verb == KUBE_LIST && (!r->resource || !*r->resource) &&
                   (!r->namespace || !*r->namespace) && (!r->name || !*r->name);
  if (!discovery && (!r->resource || !*r->resource))
    return gpc_fail(err, GPC_E_INVAL, "kube_request: resource is required");
  bool needs_name = r->verb == KUBE_GET || r->verb == KUBE_UPDATE || r->verb == KUBE_PATCH ||
                    r->verb == KUBE_DELETE;
  if (needs_name && (!r->name || !*r->name))
    return gpc_fail(err, GPC_E_INVAL, "kube_request: name is required for %s",
                    kube_request_verb_name(r->verb));
  if (r->subresource && *r->subresource && (!r->name || !*r->name))
    return gpc_fail(err, GPC_E_INVAL, "kube_request: subresource \"%s\" needs a name",
                    r->subresource);
  if (r->verb == KUBE_PATCH && r->patch_type == KUBE_PATCH_APPLY &&
      (!r->field_manager || !*r->field_manager))
    return gpc_fail(err, GPC_E_INVAL, "kube_request: fieldManager is required for apply");
  return GPC_OK;
}

char *kube_request_url(const char *server, const struct kube_request *r, struct gpc_error *err) {
  if (!server || !*server) {
    gpc_fail(err, GPC_E_INVAL, "kube_request: server is required");
    return NULL;
  }
  if (check_request(r, err)) return NULL;
  struct dynbuf b = DYNBUF_INIT(DYNBUF_NO_MAX);
  size_t server_len = strlen(server);
  while (server_len && server[server_len - 1] == '/')
    server_len--;
  (void)dynbuf_add(&b, server, server_len);
  if (r->group && *r->group) {
    sb_add(&b, "/apis");
    sb_seg(&b, r->group);
  } else {
    sb_add(&b, "/api");
  }
  sb_seg(&b, r->version);
  if (r->namespace && *r->namespace) {
    sb_add(&b, "/namespaces");
    sb_seg(&b, r->namespace);
  }
  if (r->resource && *r->resource) sb_seg(&b, r->resource);
  if (r->name && *r->name) sb_seg(&b, r->name);
  if (r->subresource && *r->subresource) sb_seg(&b, r->subresource);
  add_query(&b, r);
  return dynbuf_detach(&b, NULL);
}

bool kube_request_idempotent(const struct kube_request *r) {
  switch (r->verb) {
  case KUBE_GET:
  case KUBE_LIST:
  case KUBE_UPDATE:
  case KUBE_DELETE:
    return true;
  case KUBE_PATCH:
    return r->patch_type == KUBE_PATCH_APPLY;
  case KUBE_CREATE:
  case KUBE_WATCH:
    break;
  }
  return false;
}

bool kube_request_should_retry(const struct kube_request *r, long http_code, int attempt,
                               int max_attempts) {
  if (attempt >= max_attempts || !kube_request_idempotent(r)) return false;
  if (http_code == 0 || http_code == 429) return true;
  return http_code >= 500 && http_code != 501;
}
