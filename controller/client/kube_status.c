/* kube_status.c — metav1.Status parsing (see kube_status.h). */
#include "kube_status.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

const char *kube_status_reason_for_code(long code) {
  switch (code) {
  case 400:
    return "BadRequest";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "NotFound";
  case 405:
    return "MethodNotAllowed";
  case 406:
    return "NotAcceptable";
  case 409:
    return "Conflict";
  case 410:
    return "Expired";
  case 413:
    return "RequestEntityTooLarge";
  case 415:
    return "UnsupportedMediaType";
  case 422:
    return "Invalid";
  case 429:
    return "TooManyRequests";
  case 500:
    return "InternalError";
  case 503:
    return "ServiceUnavailable";
  case 504:
    return "Timeout";
  default:
    break;
  }
  return code >= 500 ? "InternalError" : "Unknown";
}

static char *str_field(const json_t *obj, const char *key) {
  const char *s = json_string_value(json_object_get(obj, key));
  return gpc_strdup(s ? s : "");
}

static void parse_causes(struct kube_status *st, const json_t *details) {
  const json_t *causes = json_object_get(details, "causes");
  size_t n = json_array_size(causes);
  if (!n) return;
  st->causes = gpc_calloc(n, sizeof *st->causes);
  for (size_t i = 0; i < n; i++) {
    const json_t *c = json_array_get(causes, i);
    st->causes[i].type = str_field(c, "reason");
    st->causes[i].message = str_field(c, "message");
    st->causes[i].field = str_field(c, "field");
  }
  st->ncauses = n;
}

void kube_status_from_json(struct kube_status *st, const json_t *obj, long http_code) {
  memset(st, 0, sizeof *st);
  json_int_t code = json_integer_value(json_object_get(obj, "code"));
  st->code = code > 0 ? (long)code : http_code;
  const char *reason = json_string_value(json_object_get(obj, "reason"));
  st->reason = gpc_strdup(reason && *reason ? reason : kube_status_reason_for_code(st->code));
  st->message = str_field(obj, "message");
  const json_t *details = json_object_get(obj, "details");
  if (json_is_object(details)) {
    parse_causes(st, details);
    st->retry_after_seconds =
        (long)json_integer_value(json_object_get(details, "retryAfterSeconds"));
  }
}

/* A printable, single-line excerpt of a non-Status body for the message. */
static void excerpt(char *out, size_t cap, const char *body, size_t len) {
  size_t j = 0;
  for (size_t i = 0; i < len && j + 1 < cap; i++)
    out[j++] = isprint((unsigned char)body[i]) ? body[i] : ' ';
  out[j] = 0;
}

void kube_status_parse(struct kube_status *st, const char *body, size_t len, long http_code) {
  json_t *obj = NULL;
  if (body && len) obj = json_loadb(body, len, 0, NULL);
  const char *kind = json_string_value(json_object_get(obj, "kind"));
  if (obj && kind && strcmp(kind, "Status") == 0) {
    kube_status_from_json(st, obj, http_code);
    json_decref(obj);
    return;
  }
  json_decref(obj);
  memset(st, 0, sizeof *st);
  st->code = http_code;
  st->reason = gpc_strdup(kube_status_reason_for_code(http_code));
  char ex[121];
  excerpt(ex, sizeof ex, body ? body : "", body ? len : 0);
  if (http_code == 0)
    st->message = gpc_strdup("no response from the server");
  else
    st->message =
        gpc_asprintf("the server responded with HTTP %ld%s%s", http_code, *ex ? ": " : "", ex);
}

enum gpc_err kube_status_err(const struct kube_status *st) {
  switch (st->code) {
  case 404:
    return GPC_E_NOT_FOUND;
  case 409:
    return GPC_E_CONFLICT;
  case 410:
    return GPC_E_GONE;
  case 408:
  case 504:
    return GPC_E_TIMEOUT;
  default:
    break;
  }
  return GPC_E_API;
}

void kube_status_release(struct kube_status *st) {
  if (!st) return;
  for (size_t i = 0; i < st->ncauses; i++) {
    free(st->causes[i].type);
    free(st->causes[i].message);
    free(st->causes[i].field);
  }
  free(st->causes);
  free(st->reason);
  free(st->message);
  memset(st, 0, sizeof *st);
}
