/* fuzz_watch.c — the watch decoder must give the same result however the
 * bytes are chunked, and never crash or exceed its cap.
 * Input: first byte = chunk size (1..256), the rest = stream bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "watch.h"

struct tally {
  size_t events;
  unsigned long hash;
};

static int count_cb(const struct watch_event *ev, void *ud) {
  struct tally *t = ud;
  t->events++;
  t->hash = t->hash * 31 + (unsigned long)ev->type + json_object_size(ev->object);
  return 0;
}

static int run(const uint8_t *data, size_t size, size_t chunk, struct tally *t, size_t *pending) {
  struct watch_decoder *d = watch_decoder_new(512);
  struct gpc_error err;
  int rc = GPC_OK;
  for (size_t at = 0; at < size && rc == GPC_OK; at += chunk) {
    size_t n = size - at < chunk ? size - at : chunk;
    rc = watch_decoder_feed(d, (const char *)data + at, n, count_cb, t, &err);
    if (watch_decoder_pending(d) > 512) abort();
  }
  *pending = watch_decoder_pending(d);
  watch_decoder_free(d);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int init;
  if (!init) gpc_alloc_init(), init = 1;
  if (size < 1) return 0;
  size_t chunk = (size_t)data[0] + 1;
  data++, size--;
  struct tally whole = {0}, split = {0};
  size_t pw, ps;
  int a = run(data, size, size ? size : 1, &whole, &pw);
  int b = run(data, size, chunk, &split, &ps);
  if (a != b || whole.events != split.events || whole.hash != split.hash) abort();
  if (a == GPC_OK && pw != ps) abort();
  return 0;
}
