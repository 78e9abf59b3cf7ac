/* errors.c — error codes and messages. */
#include "errors.h"

#include <stdarg.h>
#include <stdio.h>

int gpc_fail(struct gpc_error *err, enum gpc_err code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->code = code;
  }
  return code;
}

const char *gpc_strerror(enum gpc_err code) {
  switch (code) {
  case GPC_OK:
    return "ok";
  case GPC_E_INVAL:
    return "invalid input";
  case GPC_E_TOO_LARGE:
    return "input too large";
  case GPC_E_IO:
    return "I/O error";
  case GPC_E_NOT_FOUND:
    return "not found";
  case GPC_E_TLS:
    return "TLS error";
  case GPC_E_API:
    return "API error";
  case GPC_E_CONFLICT:
    return "conflict";
  case GPC_E_GONE:
    return "gone (resourceVersion expired)";
  case GPC_E_CANCELLED:
    return "cancelled";
  case GPC_E_TIMEOUT:
    return "timed out";
  }
  return "unknown error";
}
