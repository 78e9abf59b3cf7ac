/* alloc.c — allocation wrappers; see alloc.h for the abort-on-OOM rationale. */
#include "alloc.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n) {
  fprintf(stderr, "fatal: out of memory allocating %zu bytes\n", n);
  abort();
}

void *gpc_malloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) oom(n);
  return p;
}

void *gpc_calloc(size_t nmemb, size_t size) {
  void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
  if (!p) oom(nmemb * size);
  return p;
}

void *gpc_realloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) oom(n);
  return q;
}

void gpc_grow(void **p, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return;
  size_t ncap = *cap ? *cap : 8;
  while (ncap < need)
    ncap *= 2;
  *p = gpc_realloc(*p, ncap * size);
  *cap = ncap;
}

char *gpc_strdup(const char *s) {
  return gpc_strndup(s, strlen(s));
}

char *gpc_strndup(const char *s, size_t n) {
  char *d = gpc_malloc(n + 1);
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

char *gpc_asprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  int n = vasprintf(&s, fmt, ap);
  va_end(ap);
  if (n < 0) oom(0);
  return s;
}

void gpc_free(void *p) {
  free(p);
}

void gpc_alloc_init(void) {
  json_set_alloc_funcs(gpc_malloc, gpc_free);
}
