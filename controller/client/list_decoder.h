/* list_decoder.h — incremental decoder for LIST responses.
 *
 * A LIST body is one JSON object {"kind":"...List","metadata":{...},
 * "items":[{...},{...}]}. Parsing it whole holds the entire page (500 Nodes
 * ≈ 7.5 MB of text, several times that as jansson trees) at once; this
 * decoder instead hands each element of the top-level "items" array to a
 * callback as soon as its bytes are complete, and keeps only the rest of the
 * object (the "skeleton": kind, apiVersion, metadata with continue and
 * resourceVersion) with "items" replaced by []. Peak memory is one item plus
 * the skeleton, whatever the page size.
 *
 * Like the watch decoder it is a pure function of the bytes: chunk
 * boundaries do not matter. Each item is capped at max_item bytes and the
 * skeleton at max_skeleton bytes (GPC_E_TOO_LARGE); malformed input is
 * GPC_E_INVAL. After an error the decoder stays failed.
 */
#ifndef GPC_LIST_DECODER_H
#define GPC_LIST_DECODER_H

#include <jansson.h>
#include <stddef.h>

#include "errors.h"

#define LIST_DEFAULT_MAX_ITEM (16u * 1024u * 1024u)
#define LIST_DEFAULT_MAX_SKELETON (1024u * 1024u)

/* item is borrowed: valid during the call only (json_incref to keep).
 * Return 0 to go on, non-zero to stop (feed returns GPC_E_CANCELLED). */
typedef int (*list_decoder_item_cb)(const json_t *item, void *ud);

struct list_decoder;

/* 0 selects the defaults above. Never returns NULL. */
struct list_decoder *list_decoder_new(size_t max_item, size_t max_skeleton);
void list_decoder_free(struct list_decoder *d);

int list_decoder_feed(struct list_decoder *d, const char *data, size_t len, list_decoder_item_cb cb,
                      void *ud, struct gpc_error *err);
/* After the last byte: the top-level object with "items": [] (a new
 * reference), or NULL with err when the body was incomplete or malformed. */
json_t *list_decoder_finish(struct list_decoder *d, struct gpc_error *err);
/* Items delivered so far. */
size_t list_decoder_items(const struct list_decoder *d);

#endif
