/* watch.c — incremental watch-stream decoder (see watch.h).
 *
 * Events are newline-delimited (the API server writes each with Go's
 * json.Encoder). Complete lines inside a fed chunk are parsed in place with
 * json_loadb, so the common case copies nothing; only the tail of a chunk
 * that ends mid-event is buffered. The buffer never holds a newline, so a
 * new chunk is searched only from its own start: no byte is scanned twice.
 */
#include "watch.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "dynbuf.h"

/* A buffer grown past this for one huge event is released afterwards, so a
 * single 10 MiB object does not pin 16 MiB for the life of the watch. */
#define WATCH_KEEP_BUF (256u * 1024u)

struct watch_decoder {
  /* Pending bytes of an incomplete event, never a '\n'; capped at the
   * maximum event size (excluding its '\n'). */
  struct dynbuf buf;
  size_t offset; /* stream bytes consumed before buf[0], for messages */
  size_t events; /* events decoded so far */
  int failed;    /* GPC_OK, or the error that stopped the decoder */
};

struct watch_decoder *watch_decoder_new(size_t max_event) {
  struct watch_decoder *d = gpc_calloc(1, sizeof *d);
  dynbuf_init(&d->buf, max_event ? max_event : WATCH_DEFAULT_MAX_EVENT);
  return d;
}

void watch_decoder_free(struct watch_decoder *d) {
  if (!d) return;
  dynbuf_release(&d->buf);
  free(d);
}

size_t watch_decoder_pending(const struct watch_decoder *d) {
  return dynbuf_len(&d->buf);
}

static const char *const event_type_names[] = {WATCH_EVENT_TYPE_MAP(GPC_X_NAME)};
#define N_EVENT_TYPES (sizeof event_type_names / sizeof event_type_names[0])

const char *watch_event_type_name(enum watch_event_type t) {
  return (unsigned)t < N_EVENT_TYPES ? event_type_names[t] : "UNKNOWN";
}

static bool parse_type(const char *s, enum watch_event_type *t) {
  for (size_t i = 0; i < N_EVENT_TYPES; i++) {
    if (strcmp(s, event_type_names[i]) == 0) {
      *t = (enum watch_event_type)i;
      return true;
    }
  }
  return false;
}

static int fail(struct watch_decoder *d, struct gpc_error *err, int code, const char *what,
                const char *detail) {
  d->failed = code;
  return gpc_fail(err, (enum gpc_err)code, "watch event %zu (stream byte %zu): %s%s%s",
                  d->events + 1, d->offset, what, detail ? ": " : "", detail ? detail : "");
}

static bool all_space(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r') return false;
  return true;
}

/* Decodes one complete line (without its '\n') and delivers the event. */
static int decode_line(struct watch_decoder *d, const char *line, size_t n, watch_event_cb cb,
                       void *ud, struct gpc_error *err) {
  if (n > d->buf.max) return fail(d, err, GPC_E_TOO_LARGE, "event exceeds the size cap", NULL);
  /* Blank lines (and a CR left over from CRLF) between events are tolerated. */
  if (n == 0 || ((line[0] == ' ' || line[0] == '\t' || line[0] == '\r') && all_space(line, n)))
    return GPC_OK;
  json_error_t jerr;
  /* JSON_ALLOW_NUL: "\u0000" is legal in an annotation or ConfigMap value,
   * and refusing it would turn one odd object into an endless re-list. */
  json_t *ev = json_loadb(line, n, JSON_ALLOW_NUL, &jerr);
  if (!ev) return fail(d, err, GPC_E_INVAL, "malformed JSON", jerr.text);
  int rc = GPC_OK;
  json_t *type = json_object_get(ev, "type");
  json_t *object = json_object_get(ev, "object");
  struct watch_event we;
  if (!json_is_object(ev) || !json_is_string(type))
    rc = fail(d, err, GPC_E_INVAL, "event has no string \"type\"", NULL);
  else if (!parse_type(json_string_value(type), &we.type))
    rc = fail(d, err, GPC_E_INVAL, "unknown event type", json_string_value(type));
  else if (!json_is_object(object))
    rc = fail(d, err, GPC_E_INVAL, "event has no \"object\"", NULL);
  if (rc == GPC_OK) {
    we.object = object;
    d->events++;
    if (cb && cb(&we, ud) != 0) {
      d->failed = GPC_E_CANCELLED;
      rc = gpc_fail(err, GPC_E_CANCELLED, "watch decoding stopped by the event handler");
    }
  }
  json_decref(ev);
  return rc;
}

/* Appends bytes that do not complete an event, enforcing the cap. */
static int buffer_tail(struct watch_decoder *d, const char *p, size_t n, struct gpc_error *err) {
  if (dynbuf_add(&d->buf, p, n) != GPC_OK)
    return fail(d, err, GPC_E_TOO_LARGE, "event exceeds the size cap", NULL);
  return GPC_OK;
}

static void buffer_consumed(struct watch_decoder *d) {
  d->offset += dynbuf_len(&d->buf) + 1;
  dynbuf_reset_keep(&d->buf, WATCH_KEEP_BUF);
}

int watch_decoder_feed(struct watch_decoder *d, const char *data, size_t len, watch_event_cb cb,
                       void *ud, struct gpc_error *err) {
  if (d->failed)
    return gpc_fail(err, (enum gpc_err)d->failed, "watch decoder already failed: %s",
                    gpc_strerror((enum gpc_err)d->failed));
  const char *p = data, *end = data + len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) return buffer_tail(d, p, (size_t)(end - p), err);
    size_t n = (size_t)(nl - p);
    int rc;
    if (dynbuf_len(&d->buf)) {
      /* The event began in an earlier chunk: complete it in the buffer. */
      if ((rc = buffer_tail(d, p, n, err)) != GPC_OK) return rc;
      rc = decode_line(d, dynbuf_ptr(&d->buf), dynbuf_len(&d->buf), cb, ud, err);
      buffer_consumed(d);
    } else {
      /* Whole event inside this chunk: parse it where it lies. */
      rc = decode_line(d, p, n, cb, ud, err);
      d->offset += n + 1;
    }
    if (rc != GPC_OK) return rc;
    p = nl + 1;
  }
  return GPC_OK;
}
