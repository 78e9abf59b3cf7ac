/* test_log.c — level specs, escaping and both output formats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static char *capture(enum log_format fmt, const char *msg, const char *val) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  log_set_output(f);
  log_set_format(fmt);
  log_info("test", msg, KV_S("v", val), KV_I("n", 42), KV_B("ok", true));
  log_set_output(NULL);
  fclose(f);
  return buf;
}

static void test_levels(void **state) {
  (void)state;
  assert_int_equal(log_configure("warn,informer=debug"), 0);
  assert_true(log_enabled(LOG_WARN, "x"));
  assert_false(log_enabled(LOG_INFO, "x"));
  assert_true(log_enabled(LOG_DEBUG, "informer"));
  assert_int_equal(log_configure("loud"), -1);
  assert_int_equal(log_configure("info,=debug"), -1);
  /* a failed spec leaves the previous configuration in place */
  assert_true(log_enabled(LOG_DEBUG, "informer"));
  assert_int_equal(log_configure("info"), 0);
  assert_false(log_enabled(LOG_DEBUG, "informer"));
}

static void test_json_escapes(void **state) {
  (void)state;
  char *out = capture(LOG_FMT_JSON, "hello", "a\"b\nc");
  assert_non_null(strstr(out, "\"msg\":\"hello\""));
  assert_non_null(strstr(out, "\"v\":\"a\\\"b\\nc\""));
  assert_non_null(strstr(out, "\"n\":42"));
  assert_non_null(strstr(out, "\"ok\":true}"));
  assert_int_equal(strchr(out, '\n') - out + 1, (long)strlen(out)); /* one line */
  free(out);
}

static void test_text_format(void **state) {
  (void)state;
  char *out = capture(LOG_FMT_TEXT, "synced", "plain");
  assert_non_null(strstr(out, "level=info component=test msg=\"synced\" v=plain n=42 ok=true\n"));
  free(out);
  out = capture(LOG_FMT_TEXT, "synced", "two words");
  assert_non_null(strstr(out, "v=\"two words\""));
  free(out);
  assert_int_equal(log_set_format_name("yaml"), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_levels),
      cmocka_unit_test(test_json_escapes),
      cmocka_unit_test(test_text_format),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
