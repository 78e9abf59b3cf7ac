/* fuzz_list_decoder.c — list_decoder on arbitrary bytes, split in two at a
 * position taken from the input: never a crash, a leak or a hang, and the
 * number of items must not depend on the split. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "list_decoder.h"

static int count(const json_t *item, void *ud) {
  if (!json_is_object(item)) abort();
  (*(size_t *)ud)++;
  return 0;
}

static size_t run(const char *data, size_t size, size_t cut, int *ok) {
  struct list_decoder *d = list_decoder_new(4096, 4096);
  size_t n = 0;
  struct gpc_error err = {0};
  *ok = list_decoder_feed(d, data, cut, count, &n, &err) == GPC_OK &&
        list_decoder_feed(d, data + cut, size - cut, count, &n, &err) == GPC_OK;
  json_t *l = *ok ? list_decoder_finish(d, &err) : NULL;
  if (*ok && !l) *ok = 0;
  json_decref(l);
  list_decoder_free(d);
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int initialized;
  if (!initialized) {
    gpc_alloc_init();
    initialized = 1;
  }
  if (size < 1) return 0;
  size_t cut = data[0] % size;
  const char *body = (const char *)data + 1;
  size--;
  if (cut > size) cut = size;
  int ok1, ok2;
  size_t a = run(body, size, 0, &ok1);
  size_t b = run(body, size, cut, &ok2);
  if (ok1 != ok2 || (ok1 && a != b)) abort();
  return 0;
}
