/* log.h — structured logging: one JSON object a line, or key=value text.
 *
 *   log_info("informer", "listed", KV_S("resource", "nodes"), KV_I("count", n));
 *
 * Output goes to stderr (or the stream set with log_set_output). Every line
 * carries ts, level, component and msg; the fields follow. Strings are
 * escaped in both formats, so a value from the network cannot forge a line.
 * Credentials must never be passed as fields.
 *
 * Levels: error < warn < info < debug. log_configure() accepts a spec like
 * "info" or "info,informer=debug,kube_client=debug" (per-component debug);
 * the components are the names the modules log under (list in log.c).
 */
#ifndef GPC_LOG_H
#define GPC_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "xmacro.h"

/* X(enum value, name in --log-level and in each line) (xmacro.h) */
#define LOG_LEVEL_MAP(X)                                                                           \
  X(LOG_ERROR, "error")                                                                            \
  X(LOG_WARN, "warn")                                                                              \
  X(LOG_INFO, "info")                                                                              \
  X(LOG_DEBUG, "debug")
enum log_level { LOG_LEVEL_MAP(GPC_X_ENUM) };
/* X(enum value, name in --log-format) (xmacro.h) */
#define LOG_FORMAT_MAP(X)                                                                          \
  X(LOG_FMT_TEXT, "text")                                                                          \
  X(LOG_FMT_JSON, "json")
enum log_format { LOG_FORMAT_MAP(GPC_X_ENUM) };

enum log_kv_type { LOG_KV_END = 0, LOG_KV_STR, LOG_KV_INT, LOG_KV_DBL, LOG_KV_BOOL };
struct log_kv {
  const char *key;
  enum log_kv_type type;
  union {
    const char *s;
    int64_t i;
    double d;
    bool b;
  } v;
};

#define KV_S(k, val) ((struct log_kv){.key = (k), .type = LOG_KV_STR, .v.s = (val)})
#define KV_I(k, val) ((struct log_kv){.key = (k), .type = LOG_KV_INT, .v.i = (int64_t)(val)})
#define KV_D(k, val) ((struct log_kv){.key = (k), .type = LOG_KV_DBL, .v.d = (double)(val)})
#define KV_B(k, val) ((struct log_kv){.key = (k), .type = LOG_KV_BOOL, .v.b = (val)})

/* Parses a level spec ("debug", "info,leader=debug"). Returns 0, or -1 with
 * nothing changed when the spec is invalid (an unknown level or component). */
int log_configure(const char *spec);
/* NULL when log_configure would accept `spec`, else a message saying why not,
 * which may be written into why[why_size] (borrowed; valid while why is). */
const char *log_check_spec(const char *spec, char *why, size_t why_size);
/* Parses "json" or "text". Returns 0, or -1 when unknown. */
int log_set_format_name(const char *name);
void log_set_format(enum log_format f);
void log_set_output(FILE *f);
bool log_enabled(enum log_level lvl, const char *component);

void log_emit(enum log_level lvl, const char *component, const char *msg, const struct log_kv *kvs);

#ifdef __CPPCHECK__
/* cppcheck cannot parse __VA_OPT__; it checks the call without the fields. */
#define log_error(comp, msg, ...) log_emit(LOG_ERROR, (comp), (msg), NULL)
#define log_warn(comp, msg, ...) log_emit(LOG_WARN, (comp), (msg), NULL)
#define log_info(comp, msg, ...) log_emit(LOG_INFO, (comp), (msg), NULL)
#define log_debug(comp, msg, ...) log_emit(LOG_DEBUG, (comp), (msg), NULL)
#else
#define GPC_LOG_(lvl, comp, msg, ...)                                                              \
  do {                                                                                             \
    if (log_enabled((lvl), (comp)))                                                                \
      log_emit((lvl), (comp), (msg),                                                               \
               (const struct log_kv[]){__VA_ARGS__ __VA_OPT__(, ){.type = LOG_KV_END}});           \
  } while (0)

#define log_error(comp, msg, ...) GPC_LOG_(LOG_ERROR, comp, msg __VA_OPT__(, ) __VA_ARGS__)
#define log_warn(comp, msg, ...) GPC_LOG_(LOG_WARN, comp, msg __VA_OPT__(, ) __VA_ARGS__)
#define log_info(comp, msg, ...) GPC_LOG_(LOG_INFO, comp, msg __VA_OPT__(, ) __VA_ARGS__)
#define log_debug(comp, msg, ...) GPC_LOG_(LOG_DEBUG, comp, msg __VA_OPT__(, ) __VA_ARGS__)
#endif

#endif
