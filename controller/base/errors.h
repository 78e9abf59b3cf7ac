/* errors.h — error codes shared by every module.
 *
 * Functions return 0 (GPC_OK) on success and a negative gpc_err on failure;
 * where a human-readable reason exists it is written into a caller-provided
 * `struct gpc_error` (message naming the field, file or byte offset).
 */
#ifndef GPC_ERRORS_H
#define GPC_ERRORS_H

#include <stddef.h>

enum gpc_err {
  GPC_OK = 0,
  GPC_E_INVAL = -1,     /* malformed input (JSON, YAML, selector, policy field) */
  GPC_E_TOO_LARGE = -2, /* input over a configured size cap */
  GPC_E_IO = -3,        /* file or socket error */
  GPC_E_NOT_FOUND = -4, /* missing key, context, file */
  GPC_E_TLS = -5,       /* certificate/key problems */
  GPC_E_API = -6,       /* the API server answered with a Status error */
  GPC_E_CONFLICT = -7,  /* 409 */
  GPC_E_GONE = -8,      /* 410 Expired */
  GPC_E_CANCELLED = -9,
  GPC_E_TIMEOUT = -10,
};

#define GPC_ERROR_MSG_MAX 512

/* A failure's explanation. `msg` is always NUL-terminated. */
struct gpc_error {
  enum gpc_err code;
  char msg[GPC_ERROR_MSG_MAX];
};

/* Sets err (when non-NULL) and returns `code`, for `return gpc_fail(...)`. */
int gpc_fail(struct gpc_error *err, enum gpc_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *gpc_strerror(enum gpc_err code);

#endif
