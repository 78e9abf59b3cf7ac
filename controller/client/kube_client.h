/* kube_client.h — asynchronous Kubernetes REST over one libcurl multi handle.
 *
 * All transfers share one CURLM plugged into the event loop (curl's
 * multi-socket API, as in docs/examples/ephiperfifo.c), so connections are
 * reused (HTTP/1.1 keep-alive) and nothing blocks. The client adds:
 *  - credentials from a struct kubeconfig: CA/cert/key as in-memory blobs,
 *    bearer token (re-read per kubeconfig_refresh_token, forced after a 401,
 *    which is retried once), insecure-skip-tls-verify with one warning;
 *    kube_client_new refuses a server on plain http:// when there are
 *    credentials to send, unless kubeconfig.allow_plain_http (then warns);
 *    libcurl may speak only the server's scheme (CURLOPT_PROTOCOLS_STR);
 *  - a QPS/burst token bucket (default 50/100); every attempt takes a token,
 *    watches included (as client-go); requests wait in FIFO order;
 *  - retries with jittered exponential backoff (Retry-After honoured) for
 *    429, 5xx and connection errors, for idempotent requests only
 *    (kube_request_should_retry), up to max_attempts;
 *  - per-request timeouts (default 30 s); watches instead get
 *    timeoutSeconds + watch_margin_s when timeoutSeconds is set;
 *  - a response body cap (default 64 MiB) → GPC_E_TOO_LARGE, not a crash;
 *  - Status bodies parsed into struct kube_status.
 *
 * Threading: single-threaded, on the loop. Callbacks run on the loop thread.
 * From any callback you may submit and cancel requests (including the one
 * being delivered, from its chunk callback). Do not free the client from a
 * kube_client callback.
 *
 * Ownership: the client copies everything in a struct kube_request at
 * submit. The loop and the kubeconfig are borrowed and must outlive the
 * client. Response bodies and statuses are borrowed for the duration of the
 * done callback only.
 */
#ifndef GPC_KUBE_CLIENT_H
#define GPC_KUBE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "kube_request.h"
#include "kube_status.h"
#include "kubeconfig.h"
#include "loop.h"

struct kube_client;

/* Per-attempt observer for metrics (rest_client_requests_total{code,method}):
 * method is "GET", "POST", ...; code is the HTTP code, 0 when no response. */
typedef void (*kube_client_observe_cb)(const char *method, long code, double seconds, void *ud);

struct kube_client_config {
  struct kubeconfig *kc;     /* required; borrowed */
  double qps;                /* 0 = 50; < 0 = unlimited */
  int burst;                 /* 0 = 100 */
  long timeout_ms;           /* 0 = 30000 */
  size_t max_body;           /* 0 = 64 MiB */
  int max_attempts;          /* 0 = 5 (first try included) */
  uint64_t retry_base_ms;    /* 0 = 250 */
  uint64_t retry_cap_ms;     /* 0 = 30000; also caps Retry-After */
  long max_host_connections; /* 0 = 32 (watches each hold one on HTTP/1.1) */
  long watch_margin_s;       /* 0 = 30 */
  const char *user_agent;    /* NULL = "gpu-policy-controller/<version>" */
  kube_client_observe_cb observe;
  void *observe_ud;
};

struct kube_response {
  int rc;         /* GPC_OK for 2xx (and a watch that ended cleanly), else a gpc_err */
  long http_code; /* 0 when no HTTP response arrived */
  /* Body of a non-watch response (not NUL-terminated; body[len] is 0 for
   * convenience), or the error body of a watch. Borrowed. */
  const char *body;
  size_t body_len;
  /* Non-NULL when http_code is not 2xx (parsed or synthesized). Borrowed. */
  const struct kube_status *status;
  const char *error; /* one-line description when rc != GPC_OK */
  double seconds;    /* of the last attempt */
  int attempts;
};

/* Called exactly once per submitted request unless it is cancelled. */
typedef void (*kube_client_done_cb)(struct kube_client *c, const struct kube_response *resp,
                                    void *ud);
/* Streams a 2xx response body: called with each piece as it arrives (not
 * aligned to events or items; feed a watch_decoder or list_decoder). Then
 * resp->body in the done callback is empty and max_body does not apply (the
 * decoder caps what it buffers). Required for WATCH, optional otherwise.
 * Return 0 to continue, non-zero to abort the transfer; the done callback
 * then gets rc = GPC_E_CANCELLED. A streamed response that fails midway is
 * not retried (part of it was delivered). */
typedef int (*kube_client_chunk_cb)(struct kube_client *c, const char *data, size_t len, void *ud);

struct kube_client_stats {
  uint64_t submitted;
  uint64_t attempts; /* HTTP requests sent */
  uint64_t completed;
  uint64_t failed; /* completed with rc != GPC_OK */
  uint64_t retries;
  uint64_t cancelled;
  uint64_t throttled; /* times a request waited for the token bucket */
  unsigned in_flight;
  unsigned queued; /* waiting for a token or a retry delay */
};

/* Returns NULL with err set when curl cannot be initialised or the config is
 * unusable (no kubeconfig or server). */
struct kube_client *kube_client_new(struct gpc_loop *loop, const struct kube_client_config *cfg,
                                    struct gpc_error *err);
/* Aborts everything in flight without calling any callback and frees. */
void kube_client_free(struct kube_client *c);

/* Queues a request. `done` is required; `chunk` is required for KUBE_WATCH
 * and optional otherwise. Returns a non-zero id for kube_client_cancel, or 0
 * with err set when the request is invalid (no callback is called then). */
uint64_t kube_client_submit(struct kube_client *c, const struct kube_request *req,
                            kube_client_done_cb done, kube_client_chunk_cb chunk, void *ud,
                            struct gpc_error *err);
/* Cancels a request that has not completed: its callbacks are not called
 * again. Returns false when the id is unknown or already delivered. */
bool kube_client_cancel(struct kube_client *c, uint64_t id);

/* Test hook (never called by the controller): after `skip` more successful
 * submits, the next `count` calls to kube_client_submit fail as a rejected
 * request does — 0 returned, err GPC_E_IO "injected submit failure", no
 * callback. No real submit failure is transient today, so this is the only
 * way for tests to drive a caller's handling of one (informer retries). */
void kube_client_fail_submits(struct kube_client *c, unsigned skip, unsigned count);

void kube_client_stats(const struct kube_client *c, struct kube_client_stats *out);
/* The API server URL. Borrowed from the kubeconfig, which outlives the
 * client. */
const char *kube_client_server(const struct kube_client *c);

#endif
