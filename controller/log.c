/* log.c — structured logging; see log.h. */
#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_COMPONENT_OVERRIDES 16

static struct {
  enum log_level level;
  enum log_format format;
  FILE *out;
  int n_over;
  struct {
    char name[32];
    enum log_level level;
  } over[MAX_COMPONENT_OVERRIDES];
} L = {.level = LOG_INFO, .format = LOG_FMT_TEXT};

static const char *level_names[] = {"error", "warn", "info", "debug"};

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

int log_configure(const char *spec) {
  enum log_level base = L.level;
  int n_over = 0;
  __typeof__(L.over) over;
  const char *p = spec;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const char *eq = memchr(p, '=', len);
    if (!eq) {
      if (parse_level(p, len, &base) != 0) return -1;
    } else {
      size_t nlen = (size_t)(eq - p);
      if (nlen == 0 || nlen >= sizeof over[0].name || n_over == MAX_COMPONENT_OVERRIDES) return -1;
      if (parse_level(eq + 1, len - nlen - 1, &over[n_over].level) != 0) return -1;
      memcpy(over[n_over].name, p, nlen);
      over[n_over].name[nlen] = '\0';
      n_over++;
    }
    p = end ? end + 1 : p + len;
  }
  L.level = base;
  L.n_over = n_over;
  memcpy(L.over, over, sizeof over);
  return 0;
}

int log_set_format_name(const char *name) {
  if (strcmp(name, "json") == 0)
    L.format = LOG_FMT_JSON;
  else if (strcmp(name, "text") == 0)
    L.format = LOG_FMT_TEXT;
  else
    return -1;
  return 0;
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
