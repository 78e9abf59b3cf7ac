/* log.c — structured logging; see log.h. */
#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_COMPONENT_OVERRIDES 16

struct log_override {
  char name[32];
  enum log_level level;
};

static struct {
  enum log_level level;
  enum log_format format;
  FILE *out;
  int n_over;
  struct log_override over[MAX_COMPONENT_OVERRIDES];
} L = {.level = LOG_INFO, .format = LOG_FMT_TEXT};

static const char *const level_names[] = {LOG_LEVEL_MAP(GPC_X_NAME)};
static const char *const format_names[] = {LOG_FORMAT_MAP(GPC_X_NAME)};

static int parse_level(const char *s, size_t n, enum log_level *out) {
  for (int i = 0; i <= LOG_DEBUG; i++) {
    if (strlen(level_names[i]) == n && strncmp(s, level_names[i], n) == 0) {
      *out = (enum log_level)i;
      return 0;
    }
  }
  if (n == 7 && strncmp(s, "warning", 7) == 0) {
    *out = LOG_WARN;
    return 0;
  }
  return -1;
}

/* Every component that logs (each module's COMP); a --log-level override
 * naming anything else is a typo that would silently do nothing.
 * test_logging.py keeps this list equal to the names the code logs under. */
static const char *const components[] = {"apply",       "controller", "http",    "informer",
                                         "kube_client", "kubeconfig", "leader",  "main",
                                         "policy",      "runtime",    "upgrade", "validator"};
#define N_COMPONENTS (sizeof components / sizeof components[0])

static bool known_component(const char *s, size_t n) {
  for (size_t i = 0; i < N_COMPONENTS; i++)
    if (strlen(components[i]) == n && strncmp(components[i], s, n) == 0) return true;
  return false;
}

/* Parses `spec` into *base and over[0..*n_over). Returns NULL, or a message
 * (in why) saying what is wrong. */
static const char *parse_spec(const char *spec, enum log_level *base, struct log_override *over,
                              int *n_over, char *why, size_t why_size) {
  const char *p = spec;
  *n_over = 0;
  if (!*p) return "want error|warn|info|debug";
  while (*p) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const char *eq = memchr(p, '=', len);
    if (!eq) {
      if (parse_level(p, len, base) != 0)
        return "want error|warn|info|debug, optionally \",component=level\"";
    } else {
      size_t nlen = (size_t)(eq - p);
      if (parse_level(eq + 1, len - nlen - 1, &over[*n_over].level) != 0 || nlen == 0)
        return "want error|warn|info|debug, optionally \",component=level\"";
      if (!known_component(p, nlen)) {
        int w = snprintf(why, why_size, "unknown component \"%.*s\"; known:", (int)nlen, p);
        for (size_t i = 0; i < N_COMPONENTS && w > 0 && (size_t)w < why_size; i++)
          w += snprintf(why + w, why_size - (size_t)w, " %s", components[i]);
        return why;
      }
      if (*n_over == MAX_COMPONENT_OVERRIDES) return "too many component overrides";
      memcpy(over[*n_over].name, p, nlen);
      over[*n_over].name[nlen] = '\0';
      (*n_over)++;
    }
    p = end ? end + 1 : p + len;
  }
  return NULL;
}

const char *log_check_spec(const char *spec, char *why, size_t why_size) {
  enum log_level base = LOG_INFO;
  struct log_override over[MAX_COMPONENT_OVERRIDES];
  int n_over;
  return parse_spec(spec, &base, over, &n_over, why, why_size);
}

int log_configure(const char *spec) {
  enum log_level base = L.level;
  struct log_override over[MAX_COMPONENT_OVERRIDES];
  int n_over;
  char why[256];
  if (parse_spec(spec, &base, over, &n_over, why, sizeof why)) return -1;
  L.level = base;
  L.n_over = n_over;
  memcpy(L.over, over, sizeof over);
  return 0;
}

int log_set_format_name(const char *name) {
  for (size_t i = 0; i < sizeof format_names / sizeof format_names[0]; i++) {
    if (strcmp(name, format_names[i]) == 0) {
      L.format = (enum log_format)i;
      return 0;
    }
  }
  return -1;
}

void log_set_format(enum log_format f) {
  L.format = f;
}

void log_set_output(FILE *f) {
  L.out = f;
}

bool log_enabled(enum log_level lvl, const char *component) {
  for (int i = 0; i < L.n_over; i++)
    if (component && strcmp(L.over[i].name, component) == 0) return lvl <= L.over[i].level;
  return lvl <= L.level;
}

/* Escapes for JSON; also used in text mode (quoted), so control characters
 * and quotes from the network never break a line. */
static void put_escaped(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
    switch (*p) {
    case '"':
      fputs("\\\"", f);
      break;
    case '\\':
      fputs("\\\\", f);
      break;
    case '\n':
      fputs("\\n", f);
      break;
    case '\r':
      fputs("\\r", f);
      break;
    case '\t':
      fputs("\\t", f);
      break;
    default:
      if (*p < 0x20)
        fprintf(f, "\\u%04x", *p);
      else
        fputc(*p, f);
    }
  }
  fputc('"', f);
}

static bool needs_quotes(const char *s) {
  if (!s || !*s) return true;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p >= 0x7f) return true;
  return false;
}

static void put_value(FILE *f, const struct log_kv *kv, bool json) {
  switch (kv->type) {
  case LOG_KV_STR:
    if (json || needs_quotes(kv->v.s))
      put_escaped(f, kv->v.s);
    else
      fputs(kv->v.s, f);
    break;
  case LOG_KV_INT:
    fprintf(f, "%lld", (long long)kv->v.i);
    break;
  case LOG_KV_DBL:
    fprintf(f, "%.6g", kv->v.d);
    break;
  case LOG_KV_BOOL:
    fputs(kv->v.b ? "true" : "false", f);
    break;
  case LOG_KV_END:
    break;
  }
}

void log_emit(enum log_level lvl, const char *component, const char *msg,
              const struct log_kv *kvs) {
  FILE *f = L.out ? L.out : stderr;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char tbuf[40];
  size_t n = strftime(tbuf, sizeof tbuf, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(tbuf + n, sizeof tbuf - n, ".%03ldZ", ts.tv_nsec / 1000000);

  flockfile(f);
  if (L.format == LOG_FMT_JSON) {
    fprintf(f, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":", tbuf, level_names[lvl]);
    put_escaped(f, component);
    fputs(",\"msg\":", f);
    put_escaped(f, msg);
    for (const struct log_kv *kv = kvs; kv && kv->type != LOG_KV_END; kv++) {
      fputc(',', f);
      put_escaped(f, kv->key);
      fputc(':', f);
      put_value(f, kv, true);
    }
    fputs("}\n", f);
  } else {
    fprintf(f, "ts=%s level=%s component=%s msg=", tbuf, level_names[lvl],
            component ? component : "-");
    put_escaped(f, msg);
    for (const struct log_kv *kv = kvs; kv && kv->type != LOG_KV_END; kv++) {
      fprintf(f, " %s=", kv->key);
      put_value(f, kv, false);
    }
    fputc('\n', f);
  }
  fflush(f);
  funlockfile(f);
}
