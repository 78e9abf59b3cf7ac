/* kube_request.h — describing one Kubernetes REST call, and the pure parts
 * of turning it into HTTP: the URL (escaped path segments and query values),
 * the method, the PATCH content type, and whether a failed attempt may be
 * retried. No I/O here; kube_client does the sending.
 *
 * All strings in struct kube_request are borrowed by these functions;
 * kube_client_submit copies what it needs, so a request can live on the stack.
 */
#ifndef GPC_KUBE_REQUEST_H
#define GPC_KUBE_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include "errors.h"
#include "xmacro.h"

/* X(enum value, name for logs, HTTP method) (xmacro.h). KUBE_GET reads one
 * object, KUBE_LIST a collection; KUBE_PATCH uses patch_type; KUBE_WATCH is
 * GET ?watch=true, streamed. */
#define KUBE_VERB_MAP(X)                                                                           \
  X(KUBE_GET, "get", "GET")                                                                        \
  X(KUBE_LIST, "list", "GET")                                                                      \
  X(KUBE_CREATE, "create", "POST")                                                                 \
  X(KUBE_UPDATE, "update", "PUT")                                                                  \
  X(KUBE_PATCH, "patch", "PATCH")                                                                  \
  X(KUBE_DELETE, "delete", "DELETE")                                                               \
  X(KUBE_WATCH, "watch", "GET")
enum kube_verb { KUBE_VERB_MAP(GPC_X_ENUM) };

enum kube_patch_type {
  KUBE_PATCH_MERGE,     /* application/merge-patch+json */
  KUBE_PATCH_JSON,      /* application/json-patch+json */
  KUBE_PATCH_STRATEGIC, /* application/strategic-merge-patch+json (built-ins only) */
  KUBE_PATCH_APPLY,     /* application/apply-patch+yaml (server-side apply) */
};

struct kube_request {
  enum kube_verb verb;
  const char *group;       /* NULL or "" = core ("/api/v1") */
  const char *version;     /* "v1" */
  const char *resource;    /* plural: "nodes", "clustergpupolicies"; NULL with
                            * KUBE_LIST (no namespace, no name) = the group
                            * version's discovery document (GET /apis/G/V) */
  const char *namespace;   /* NULL = cluster-scoped or all namespaces */
  const char *name;        /* object name (GET/UPDATE/PATCH/DELETE, some CREATE subresources) */
  const char *subresource; /* "status", "scale" or NULL */

  /* Query parameters; NULL / 0 / false = not sent. */
  const char *label_selector;
  const char *field_selector;
  long limit;
  const char *continue_token;
  const char *resource_version;
  bool allow_watch_bookmarks;
  long timeout_seconds; /* server-side (watch and list) */
  const char *field_manager;
  bool force;
  bool dry_run;                   /* dryRun=All */
  const char *propagation_policy; /* "Foreground", "Background", "Orphan" */

  /* Body (CREATE/UPDATE/PATCH, optional DELETE options); not NUL-terminated
   * necessarily. Copied on submit. */
  const char *body;
  size_t body_len;
  enum kube_patch_type patch_type;

  /* Client-side total timeout in ms; 0 = the client default. Ignored for
   * watches, which end by timeout_seconds (+ a margin) instead. */
  long timeout_ms;
  /* Response body cap in bytes; 0 = the client default. */
  size_t max_body;
};

/* "GET", "POST", "PUT", "PATCH", "DELETE" (LIST and WATCH are GETs). */
const char *kube_request_verb_method(enum kube_verb v);
/* "get", "list", ... for logs. */
const char *kube_request_verb_name(enum kube_verb v);
const char *kube_request_patch_content_type(enum kube_patch_type t);

/* Builds server + path + query. `server` is "https://host:port" (a trailing
 * slash is tolerated). Path segments go through urlesc_path and query
 * values through urlesc_query (urlesc.h), so selectors like
 * "a in (x,y)" cannot break the URL. Names and namespaces are checked as
 * client-go's IsValidPathSegmentName does before anything is built: ".",
 * ".." and any segment containing '/' or '%' are refused (escaping cannot
 * stop dot segments, which URL libraries collapse). Returns a new string
 * (caller frees), or NULL with err set when a required field is missing or a
 * segment is invalid ("kube_request: resource is required",
 * "kube_request: invalid name \"..\": ..."). */
char *kube_request_url(const char *server, const struct kube_request *req, struct gpc_error *err);

/* Whether repeating the request cannot do harm: GET, LIST, UPDATE (optimistic
 * lock by resourceVersion), DELETE, server-side apply. Not CREATE, not other
 * PATCHes (a JSON patch that appends is not idempotent), not WATCH (the
 * informer resumes watches itself). */
bool kube_request_idempotent(const struct kube_request *req);

/* Retry decision for a finished attempt. http_code 0 means no HTTP response
 * (connection refused/reset, timeout). Retries: 429, 5xx except 501, and
 * connection errors, for idempotent requests, while attempt < max_attempts
 * (attempt counts from 1). */
bool kube_request_should_retry(const struct kube_request *req, long http_code, int attempt,
                               int max_attempts);

#endif
