/* dynbuf.h — a growable byte buffer with a hard maximum size.
 *
 * Modelled on curl's lib/dynbuf.c. Every buffer that holds external input
 * (response bodies, watch events, list items, files) has a cap; this is the
 * one place that enforces it. An append that would take the contents past
 * `max` bytes is refused with GPC_E_TOO_LARGE and leaves the buffer as it
 * was, so the caller decides whether to fail, drop or truncate.
 *
 * The contents are always NUL-terminated once anything was added (the NUL is
 * not counted in len and not subject to max), so text can be used in place.
 * A buffer made with dynbuf_init_secret never reallocs (which could leave a
 * copy of a key behind) and wipes its memory before freeing it.
 *
 * Lifecycle (git's names): dynbuf_init sets up in place, dynbuf_release frees
 * the contents (the struct stays, with its max, ready for reuse),
 * dynbuf_reset empties it keeping the memory. There is no _free: the struct
 * is embedded or on the stack.
 *
 * Ownership: dynbuf_ptr is borrowed, valid until the next add, reset,
 * release or detach; dynbuf_detach hands the memory to the caller (free()).
 */
#ifndef GPC_DYNBUF_H
#define GPC_DYNBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct dynbuf {
  char *p;     /* NULL until something is added */
  size_t len;  /* bytes used, excluding the terminating NUL */
  size_t cap;  /* bytes allocated */
  size_t max;  /* hard cap on len */
  bool secret; /* wipe on release, and grow by copy instead of realloc */
};

/* For buffers whose contents are produced here, not read from outside. */
#define DYNBUF_NO_MAX ((size_t)-1 / 2)
/* Static initializer, same as dynbuf_init(b, max). */
#define DYNBUF_INIT(maxlen)                                                                        \
  { .max = (maxlen) }

void dynbuf_init(struct dynbuf *b, size_t max);
void dynbuf_init_secret(struct dynbuf *b, size_t max);
/* Frees the contents; b stays initialized with the same max. */
void dynbuf_release(struct dynbuf *b);
/* Empties b, keeping its memory for reuse. */
void dynbuf_reset(struct dynbuf *b);
/* Empties b; gives the memory back when more than `keep` bytes are held, so
 * that one huge input does not pin its buffer for the life of a stream. */
void dynbuf_reset_keep(struct dynbuf *b, size_t keep);

/* Appends; GPC_OK, or GPC_E_TOO_LARGE (b unchanged) past max. */
int dynbuf_add(struct dynbuf *b, const void *mem, size_t n);
int dynbuf_addstr(struct dynbuf *b, const char *s);
/* Inline because byte-at-a-time scanners (list_decoder) call it per byte. */
static inline int dynbuf_addc(struct dynbuf *b, char c) {
  if (b->len + 1 < b->cap && b->len < b->max) {
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
    return 0;
  }
  return dynbuf_add(b, &c, 1);
}
int dynbuf_addf(struct dynbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The contents (borrowed; NULL when nothing was ever added). */
char *dynbuf_ptr(const struct dynbuf *b);
size_t dynbuf_len(const struct dynbuf *b);
/* Takes the contents (never NULL: "" when empty; caller frees) and leaves b
 * empty and initialized. *len (when non-NULL) receives the length. */
char *dynbuf_detach(struct dynbuf *b, size_t *len);

/* The one whole-file reader: appends everything left in f. GPC_OK,
 * GPC_E_TOO_LARGE when the contents would pass max, or GPC_E_IO on a
 * read error (on either, b holds a prefix of the stream: release it). Messages are the caller's: it
 * knows the name. */
int dynbuf_read_stream(struct dynbuf *b, FILE *f);

#endif
