/* fuzz_selector.c — selector parsing (string and JSON form): no crash, and
 * the canonical string of anything accepted parses back to itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "selector.h"

static const char *lookup(const void *labels, const char *key) {
  (void)labels;
  return key[0] == 'a' ? "x" : NULL;
}

static void check_round_trip(struct label_selector *s) {
  char *str = selector_to_string(s);
  struct gpc_error err;
  struct label_selector *again = selector_parse(str, &err);
  if (!again) abort();
  char *str2 = selector_to_string(again);
  if (strcmp(str, str2) != 0) abort();
  (void)selector_matches(s, lookup, NULL);
  free(str);
  free(str2);
  selector_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int init;
  if (!init) gpc_alloc_init(), init = 1;
  char *s = gpc_strndup((const char *)data, size);
  struct gpc_error err;
  struct label_selector *sel = selector_parse(s, &err);
  if (sel) check_round_trip(sel);
  selector_free(sel);
  json_t *j = json_loadb((const char *)data, size, 0, NULL);
  if (j) {
    sel = selector_from_json(j, "fuzz", &err);
    if (sel) {
      check_round_trip(sel);
      (void)selector_matches_json(sel, json_object_get(j, "matchLabels"));
    }
    selector_free(sel);
    json_decref(j);
  }
  free(s);
  return 0;
}
