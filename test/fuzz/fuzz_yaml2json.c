/* fuzz_yaml2json.c — YAML to JSON must fail cleanly on anything, and every
 * document it accepts must survive yaml2json_emit and parse back equal. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "alloc.h"
#include "yaml2json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int init;
  if (!init) gpc_alloc_init(), init = 1;
  struct gpc_error err;
  json_t *docs = yaml2json_parse_docs((const char *)data, size, 64 * 1024, &err);
  if (!docs) return 0;
  size_t i;
  json_t *doc;
  json_array_foreach(docs, i, doc) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int rc = yaml2json_emit(doc, f, &err);
    fclose(f);
    if (rc != GPC_OK) abort();
    json_t *back = yaml2json_parse(buf, len, 0, &err);
    if (!back && !json_is_null(doc)) {
      fprintf(stderr, "re-parse failed: %s\n%s\n", err.msg, buf);
      abort();
    }
    if (back && !json_equal(back, doc)) {
      fprintf(stderr, "round trip differs:\n%s\n", buf);
      abort();
    }
    json_decref(back);
    free(buf);
  }
  json_decref(docs);
  return 0;
}
