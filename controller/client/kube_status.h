/* kube_status.h — API errors as a struct, parsed from metav1.Status bodies.
 *
 *   {"kind":"Status","apiVersion":"v1","status":"Failure","message":"...",
 *    "reason":"NotFound","details":{"name":"a","kind":"nodes",
 *    "causes":[{"reason":"FieldValueInvalid","message":"...","field":"spec.x"}],
 *    "retryAfterSeconds":1},"code":404}
 *
 * When the body is not a Status (a proxy's HTML page, empty body), a Status
 * is synthesized from the HTTP code (reason "NotFound", "InternalError", ...,
 * message naming the code and the start of the body). Pure; no I/O.
 * All strings are owned by the struct; free with kube_status_release().
 */
#ifndef GPC_KUBE_STATUS_H
#define GPC_KUBE_STATUS_H

#include <jansson.h>
#include <stddef.h>

#include "errors.h"

struct kube_status_cause {
  char *type;    /* "reason" on the wire, e.g. "FieldValueInvalid" (may be "") */
  char *message; /* may be "" */
  char *field;   /* may be "" */
};

struct kube_status {
  long code;    /* HTTP code (from the body's "code", else the response) */
  char *reason; /* "NotFound", "Expired", ... never NULL after parse */
  char *message;
  struct kube_status_cause *causes;
  size_t ncauses;
  long retry_after_seconds; /* details.retryAfterSeconds, 0 when absent */
};

/* Parses `body` (may be NULL/empty) received with `http_code`. Never fails:
 * a non-Status body yields a synthesized Status. */
void kube_status_parse(struct kube_status *st, const char *body, size_t len, long http_code);
/* From a Status object already parsed (e.g. the object of a watch ERROR
 * event). `obj` is borrowed. http_code is used when the object has no code. */
void kube_status_from_json(struct kube_status *st, const json_t *obj, long http_code);
/* Standard reason for an HTTP code ("Conflict" for 409, ...); a static string. */
const char *kube_status_reason_for_code(long http_code);
/* Maps to an error code: 409 → GPC_E_CONFLICT, 410 → GPC_E_GONE, 404 →
 * GPC_E_NOT_FOUND, 504/408 → GPC_E_TIMEOUT, everything else GPC_E_API. */
enum gpc_err kube_status_err(const struct kube_status *st);
void kube_status_release(struct kube_status *st);

#endif
