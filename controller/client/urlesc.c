/* urlesc.c — percent-encoding for request URLs (see urlesc.h). */
#include "urlesc.h"

#include <stdbool.h>
#include <string.h>

#include "alloc.h"

static bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

static char *escape(const char *s, const char *also_keep) {
  static const char hex[] = "0123456789ABCDEF";
  if (!s) s = "";
  char *out = gpc_malloc(strlen(s) * 3 + 1), *o = out;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (unreserved(*p) || strchr(also_keep, *p)) {
      *o++ = (char)*p;
    } else {
      *o++ = '%';
      *o++ = hex[*p >> 4];
      *o++ = hex[*p & 15];
    }
  }
  *o = '\0';
  return out;
}

char *urlesc_query(const char *s) {
  return escape(s, "");
}

char *urlesc_path(const char *s) {
  return escape(s, ":@");
}
