/* dynbuf.c — see dynbuf.h. */
#include "dynbuf.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "errors.h"

#define DYNBUF_MIN_CAP 64
#define DYNBUF_READ_CHUNK 16384

void dynbuf_init(struct dynbuf *b, size_t max) {
  /* Clamped so that len + n + 1 can never overflow. */
  *b = (struct dynbuf){.max = max < DYNBUF_NO_MAX ? max : DYNBUF_NO_MAX};
}

void dynbuf_init_secret(struct dynbuf *b, size_t max) {
  dynbuf_init(b, max);
  b->secret = true;
}

static void release_mem(char *p, size_t cap, bool secret) {
  if (p && secret) explicit_bzero(p, cap);
  free(p);
}

void dynbuf_release(struct dynbuf *b) {
  release_mem(b->p, b->cap, b->secret);
  b->p = NULL;
  b->len = b->cap = 0;
}

void dynbuf_reset(struct dynbuf *b) {
  b->len = 0;
  if (b->p) b->p[0] = '\0';
}

void dynbuf_reset_keep(struct dynbuf *b, size_t keep) {
  if (b->cap > keep)
    dynbuf_release(b);
  else
    dynbuf_reset(b);
}

/* Makes room for `need` bytes in all (need <= max + 1). */
static void grow(struct dynbuf *b, size_t need) {
  if (need <= b->cap) return;
  size_t ncap = b->cap ? b->cap : DYNBUF_MIN_CAP;
  while (ncap < need)
    ncap *= 2;
  /* Nothing past max + 1 bytes is ever used. */
  if (ncap > b->max + 1) ncap = b->max + 1;
  if (!b->secret) {
    b->p = gpc_realloc(b->p, ncap);
  } else {
    char *bigger = gpc_malloc(ncap);
    if (b->p) memcpy(bigger, b->p, b->len + 1);
    release_mem(b->p, b->cap, true);
    b->p = bigger;
  }
  b->cap = ncap;
}

int dynbuf_add(struct dynbuf *b, const void *mem, size_t n) {
  if (n > b->max - b->len) return GPC_E_TOO_LARGE;
  grow(b, b->len + n + 1);
  if (n) memcpy(b->p + b->len, mem, n);
  b->len += n;
  b->p[b->len] = '\0';
  return GPC_OK;
}

int dynbuf_addstr(struct dynbuf *b, const char *s) {
  return dynbuf_add(b, s, strlen(s));
}

int dynbuf_addf(struct dynbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return GPC_E_INVAL;
  if ((size_t)n > b->max - b->len) return GPC_E_TOO_LARGE;
  grow(b, b->len + (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return GPC_OK;
}

char *dynbuf_ptr(const struct dynbuf *b) {
  return b->p;
}

size_t dynbuf_len(const struct dynbuf *b) {
  return b->len;
}

char *dynbuf_detach(struct dynbuf *b, size_t *len) {
  if (!b->p) {
    grow(b, 1);
    b->p[0] = '\0';
  }
  char *p = b->p;
  if (len) *len = b->len;
  b->p = NULL;
  b->len = b->cap = 0;
  return p;
}

int dynbuf_read_stream(struct dynbuf *b, FILE *f) {
  char chunk[DYNBUF_READ_CHUNK];
  int rc = GPC_OK;
  size_t got;
  while (rc == GPC_OK && (got = fread(chunk, 1, sizeof chunk, f)) > 0)
    rc = dynbuf_add(b, chunk, got);
  if (rc == GPC_OK && ferror(f)) rc = GPC_E_IO;
  /* The chunk may have held part of a key. */
  if (b->secret) explicit_bzero(chunk, sizeof chunk);
  return rc;
}
