/* list_decoder.c — see list_decoder.h.
 *
 * A byte-level scanner tracks string/escape state and bracket depth. At
 * depth 1 (inside the top-level object) it remembers the last string and,
 * when a ':' follows it, treats it as the current key. When the key is
 * "items" and its value opens with '[', the scanner enters item mode: every
 * element of that array (objects only, as the API server sends) is copied
 * into the item buffer until its closing brace and parsed alone. All other
 * bytes go to the skeleton. jansson validates each piece, so the scanner
 * only has to find boundaries, not to validate JSON.
 */
#include "list_decoder.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "dynbuf.h"

enum mode {
  M_SKELETON, /* copying to the skeleton */
  M_ITEMS,    /* inside "items": [ ... ], between elements */
  M_ITEM,     /* copying one element */
};

struct list_decoder {
  enum mode mode;
  int depth;
  bool in_str, esc;
  /* key tracking at depth 1 */
  char str[8]; /* the first bytes of the last depth-1 string */
  size_t str_len;
  bool str_done;            /* a depth-1 string just ended (may be a key) */
  bool items_next;          /* the key "items" and its ':' were seen */
  struct dynbuf item, skel; /* capped at max_item and max_skeleton */
  size_t nitems;
  int failed;
};

struct list_decoder *list_decoder_new(size_t max_item, size_t max_skeleton) {
  struct list_decoder *d = gpc_calloc(1, sizeof *d);
  dynbuf_init(&d->item, max_item ? max_item : LIST_DEFAULT_MAX_ITEM);
  dynbuf_init(&d->skel, max_skeleton ? max_skeleton : LIST_DEFAULT_MAX_SKELETON);
  return d;
}

void list_decoder_free(struct list_decoder *d) {
  if (!d) return;
  dynbuf_release(&d->item);
  dynbuf_release(&d->skel);
  free(d);
}

size_t list_decoder_items(const struct list_decoder *d) {
  return d->nitems;
}

static int fail(struct list_decoder *d, struct gpc_error *err, enum gpc_err code, const char *what,
                size_t off) {
  d->failed = code;
  return gpc_fail(err, code, "list body: %s (item %zu, chunk offset %zu)", what, d->nitems, off);
}

/* String state for one byte; returns true when the byte was inside (or
 * closed) a string, so the structural checks should skip it. */
static bool track_string(struct list_decoder *d, char c) {
  if (!d->in_str) return false;
  if (d->esc)
    d->esc = false;
  else if (c == '\\')
    d->esc = true;
  else if (c == '"')
    d->in_str = false;
  return true;
}

static int emit_item(struct list_decoder *d, list_decoder_item_cb cb, void *ud,
                     struct gpc_error *err, size_t off) {
  json_error_t jerr;
  json_t *item = json_loadb(dynbuf_ptr(&d->item), dynbuf_len(&d->item), 0, &jerr);
  /* Large pages leave a large buffer behind; give it back between items. */
  dynbuf_reset_keep(&d->item, 1u << 20);
  if (!json_is_object(item)) {
    json_decref(item);
    return fail(d, err, GPC_E_INVAL, item ? "an item is not an object" : jerr.text, off);
  }
  d->nitems++;
  int stop = cb ? cb(item, ud) : 0;
  json_decref(item);
  if (stop) return fail(d, err, GPC_E_CANCELLED, "stopped by the callback", off);
  return GPC_OK;
}

/* One byte of an item. */
static int feed_item(struct list_decoder *d, char c, list_decoder_item_cb cb, void *ud,
                     struct gpc_error *err, size_t off) {
  if (dynbuf_addc(&d->item, c) != GPC_OK)
    return fail(d, err, GPC_E_TOO_LARGE, "item over the size limit", off);
  if (track_string(d, c)) return GPC_OK;
  if (c == '"')
    d->in_str = true;
  else if (c == '{' || c == '[')
    d->depth++;
  else if (c == '}' || c == ']') {
    if (--d->depth == 2) {
      d->mode = M_ITEMS;
      return emit_item(d, cb, ud, err, off);
    }
  }
  return GPC_OK;
}

/* One byte between items of the "items" array. */
static int feed_items(struct list_decoder *d, char c, struct gpc_error *err, size_t off) {
  switch (c) {
  case ' ':
  case '\t':
  case '\r':
  case '\n':
  case ',':
    return GPC_OK;
  case '{':
    d->mode = M_ITEM;
    d->depth = 3;
    return dynbuf_addc(&d->item, c) == GPC_OK ? GPC_OK : fail(d, err, GPC_E_TOO_LARGE, "item", off);
  case ']':
    d->mode = M_SKELETON;
    d->depth = 1;
    return dynbuf_addc(&d->skel, ']') == GPC_OK ? GPC_OK
                                                : fail(d, err, GPC_E_TOO_LARGE, "skeleton", off);
  default:
    return fail(d, err, GPC_E_INVAL, "an item is not an object", off);
  }
}

/* One byte of the skeleton, watching for `"items": [`. */
static int feed_skeleton(struct list_decoder *d, char c, struct gpc_error *err, size_t off) {
  if (dynbuf_addc(&d->skel, c) != GPC_OK)
    return fail(d, err, GPC_E_TOO_LARGE, "list metadata over the size limit", off);
  if (d->in_str) {
    bool was_key_str = d->depth == 1;
    track_string(d, c);
    if (was_key_str) {
      if (!d->in_str)
        d->str_done = true;
      else if (d->str_len < sizeof d->str)
        d->str[d->str_len++] = c; /* longer keys never match */
    }
    return GPC_OK;
  }
  bool ws = c == ' ' || c == '\t' || c == '\r' || c == '\n';
  if (ws) return GPC_OK;
  if (d->items_next) {
    d->items_next = false;
    if (c == '[' && d->depth == 1) {
      d->mode = M_ITEMS;
      d->depth = 2;
      return GPC_OK;
    }
  }
  if (d->depth == 1 && d->str_done && c == ':') {
    d->items_next = d->str_len == 5 && memcmp(d->str, "items", 5) == 0;
  }
  d->str_done = false;
  if (c == '"') {
    d->in_str = true;
    d->str_len = 0;
  } else if (c == '{' || c == '[') {
    d->depth++;
  } else if (c == '}' || c == ']') {
    if (--d->depth < 0) return fail(d, err, GPC_E_INVAL, "unbalanced brackets", off);
  }
  return GPC_OK;
}

int list_decoder_feed(struct list_decoder *d, const char *data, size_t len, list_decoder_item_cb cb,
                      void *ud, struct gpc_error *err) {
  if (d->failed) return gpc_fail(err, d->failed, "list body: decoder already failed");
  for (size_t i = 0; i < len; i++) {
    int rc;
    switch (d->mode) {
    case M_ITEM:
      rc = feed_item(d, data[i], cb, ud, err, i);
      break;
    case M_ITEMS:
      rc = feed_items(d, data[i], err, i);
      break;
    default:
      rc = feed_skeleton(d, data[i], err, i);
      break;
    }
    if (rc) return rc;
  }
  return GPC_OK;
}

json_t *list_decoder_finish(struct list_decoder *d, struct gpc_error *err) {
  if (d->failed) {
    gpc_fail(err, d->failed, "list body: decoder failed");
    return NULL;
  }
  if (d->mode != M_SKELETON || d->depth != 0 || d->in_str || !dynbuf_len(&d->skel)) {
    fail(d, err, GPC_E_INVAL, "truncated", 0);
    return NULL;
  }
  json_error_t jerr;
  json_t *list = json_loadb(dynbuf_ptr(&d->skel), dynbuf_len(&d->skel), 0, &jerr);
  if (!json_is_object(list)) {
    json_decref(list);
    fail(d, err, GPC_E_INVAL, list ? "not a JSON object" : jerr.text, 0);
    return NULL;
  }
  return list;
}
