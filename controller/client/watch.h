/* watch.h — incremental decoder for Kubernetes watch streams.
 *
 * A watch response body is a sequence of JSON objects
 *   {"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":{...}}
 * separated by newlines (whitespace between objects is tolerated). The
 * decoder is a pure function of the bytes fed to it: chunk boundaries are
 * independent of event boundaries, so feeding a stream in one call or one
 * byte at a time yields the same events.
 *
 * The pending (incomplete) event is buffered up to `max_event` bytes; an
 * event longer than that is an error (GPC_E_TOO_LARGE), never a crash.
 * After an error the decoder stays failed; create a new one for a new stream.
 */
#ifndef GPC_WATCH_H
#define GPC_WATCH_H

#include <jansson.h>
#include <stddef.h>

#include "errors.h"
#include "xmacro.h"

#define WATCH_DEFAULT_MAX_EVENT (16u * 1024u * 1024u)

/* X(enum value, the "type" the API server sends) (xmacro.h) */
#define WATCH_EVENT_TYPE_MAP(X)                                                                    \
  X(WATCH_ADDED, "ADDED")                                                                          \
  X(WATCH_MODIFIED, "MODIFIED")                                                                    \
  X(WATCH_DELETED, "DELETED")                                                                      \
  X(WATCH_BOOKMARK, "BOOKMARK")                                                                    \
  X(WATCH_ERROR, "ERROR")
enum watch_event_type { WATCH_EVENT_TYPE_MAP(GPC_X_ENUM) };

struct watch_event {
  enum watch_event_type type;
  /* The event's "object". Borrowed: valid only during the callback; take a
   * reference (json_incref) to keep it. For WATCH_ERROR it is a Status. */
  json_t *object;
};

/* Called once per complete event. Return 0 to continue, non-zero to stop
 * decoding (watch_decoder_feed then returns GPC_E_CANCELLED). */
typedef int (*watch_event_cb)(const struct watch_event *ev, void *ud);

struct watch_decoder;

/* max_event == 0 selects WATCH_DEFAULT_MAX_EVENT. Never returns NULL. */
struct watch_decoder *watch_decoder_new(size_t max_event);
void watch_decoder_free(struct watch_decoder *d);

/* Feeds `len` bytes; invokes `cb` for each event completed by them.
 * Returns GPC_OK, GPC_E_INVAL (malformed JSON or event shape),
 * GPC_E_TOO_LARGE, or GPC_E_CANCELLED; details in `err` when non-NULL. */
int watch_decoder_feed(struct watch_decoder *d, const char *data, size_t len, watch_event_cb cb,
                       void *ud, struct gpc_error *err);

/* Bytes of an incomplete event currently buffered (0 at an event boundary).
 * A stream that ends with pending > 0 was cut mid-event. */
size_t watch_decoder_pending(const struct watch_decoder *d);

/* "ADDED", ... ("UNKNOWN" out of range); a static string. */
const char *watch_event_type_name(enum watch_event_type t);

#endif
