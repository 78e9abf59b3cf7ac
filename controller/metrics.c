/* metrics.c — Prometheus registry and text exposition (see metrics.h). */
#include "metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "dynbuf.h"
#include "strmap.h"

/* controller-runtime's reconcile_time_seconds buckets. */
static const double default_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3,  0.35,
                                         0.4,   0.45, 0.5,   0.6,  0.7, 0.8,  0.9, 1.0,  1.25, 1.5,
                                         1.75,  2.0,  2.5,   3.0,  3.5, 4.0,  4.5, 5,    6,    7,
                                         8,     9,    10,    15,   20,  25,   30,  40,   50,   60};

struct series {
  char **values; /* one per label */
  double value;  /* counter/gauge value; histogram sum */
  uint64_t count;
  uint64_t *buckets; /* histogram: observations <= bound[i] and > bound[i-1] */
};

struct metric_family {
  enum metric_type type;
  char *name;
  char *help;
  char **labels;
  size_t n_labels;
  double *bounds;
  size_t n_bounds;
  struct strmap *series; /* series key -> struct series */
  struct metric_family *next;
};

struct collector {
  metrics_collect_cb cb;
  void *ud;
};

struct metrics {
  struct metric_family *head, *tail;
  struct collector *collectors;
  size_t n_collectors, cap_collectors;
};

/* ---- text output ---- */

/* The exposition text is built from our own registry, not external input,
 * so its buffer is uncapped (DYNBUF_NO_MAX) and appends cannot fail. */
static void buf_puts(struct dynbuf *b, const char *s) {
  (void)dynbuf_addstr(b, s);
}

static void buf_putc(struct dynbuf *b, char c) {
  (void)dynbuf_addc(b, c);
}

/* ---- names and values ---- */

static bool valid_name(const char *s, bool allow_colon) {
  if (!s || !*s) return false;
  for (const char *p = s; *p; p++) {
    char c = *p;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (allow_colon && c == ':') || (p != s && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

char *metrics_format_value(double v, char *buf, size_t size) {
  if (isnan(v)) {
    snprintf(buf, size, "NaN");
  } else if (isinf(v)) {
    snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
  } else if (v == floor(v) && fabs(v) < 1e15) {
    snprintf(buf, size, "%.0f", v);
  } else {
    /* Shortest precision that reads back exactly, as Go's FormatFloat('g', -1). */
    for (int prec = 1; prec <= 17; prec++) {
      snprintf(buf, size, "%.*g", prec, v);
      if (strtod(buf, NULL) == v) break;
    }
  }
  return buf;
}

/* Escapes a label value (\\, \", \n) or HELP text (\\, \n). */
static void buf_escaped(struct dynbuf *b, const char *s, bool quote) {
  for (; *s; s++) {
    if (*s == '\\')
      buf_puts(b, "\\\\");
    else if (*s == '\n')
      buf_puts(b, "\\n");
    else if (quote && *s == '"')
      buf_puts(b, "\\\"");
    else
      buf_putc(b, *s);
  }
}

/* Series key: each value length-prefixed, so no separator can collide. */
static char *series_key(const struct metric_family *f, const char *const *values) {
  struct dynbuf b = DYNBUF_INIT(DYNBUF_NO_MAX);
  for (size_t i = 0; i < f->n_labels; i++) {
    char len[24];
    snprintf(len, sizeof len, "%zu:", strlen(values[i]));
    buf_puts(&b, len);
    buf_puts(&b, values[i]);
  }
  return dynbuf_detach(&b, NULL);
}

static bool values_ok(const struct metric_family *f, const char *const *values) {
  if (f->n_labels == 0) return true;
  if (!values) return false;
  for (size_t i = 0; i < f->n_labels; i++)
    if (!values[i]) return false;
  return true;
}

static struct series *series_get(struct metric_family *f, const char *const *values, bool create) {
  char *key = series_key(f, values);
  struct series *s = strmap_get(f->series, key);
  if (!s && create) {
    s = gpc_calloc(1, sizeof *s);
    s->values = gpc_calloc(f->n_labels + 1, sizeof *s->values);
    for (size_t i = 0; i < f->n_labels; i++)
      s->values[i] = gpc_strdup(values[i]);
    if (f->type == METRIC_HISTOGRAM) s->buckets = gpc_calloc(f->n_bounds + 1, sizeof *s->buckets);
    strmap_put(f->series, key, s);
  }
  free(key);
  return s;
}

static void series_free(void *val, void *ud) {
  struct series *s = val;
  const struct metric_family *f = ud;
  for (size_t i = 0; i < f->n_labels; i++)
    free(s->values[i]);
  free(s->values);
  free(s->buckets);
  free(s);
}

/* ---- registry ---- */

struct metrics *metrics_new(void) {
  return gpc_calloc(1, sizeof(struct metrics));
}

static void family_free(struct metric_family *f) {
  strmap_free(f->series, series_free, f);
  for (size_t i = 0; i < f->n_labels; i++)
    free(f->labels[i]);
  free(f->labels);
  free(f->bounds);
  free(f->name);
  free(f->help);
  free(f);
}

void metrics_free(struct metrics *m) {
  if (!m) return;
  struct metric_family *f = m->head;
  while (f) {
    struct metric_family *next = f->next;
    family_free(f);
    f = next;
  }
  free(m->collectors);
  free(m);
}

struct metric_family *metrics_find(const struct metrics *m, const char *name) {
  for (struct metric_family *f = m->head; f; f = f->next)
    if (strcmp(f->name, name) == 0) return f;
  return NULL;
}

static int check_labels(enum metric_type type, const char *name, const char *const *labels,
                        size_t *n, struct gpc_error *err) {
  *n = 0;
  for (; labels && labels[*n]; (*n)++) {
    const char *l = labels[*n];
    if (!valid_name(l, false) || strncmp(l, "__", 2) == 0)
      return gpc_fail(err, GPC_E_INVAL, "metric %s: invalid label name \"%s\"", name, l);
    if (type == METRIC_HISTOGRAM && strcmp(l, "le") == 0)
      return gpc_fail(err, GPC_E_INVAL, "metric %s: label \"le\" is reserved for buckets", name);
    for (size_t j = 0; j < *n; j++)
      if (strcmp(labels[j], l) == 0)
        return gpc_fail(err, GPC_E_INVAL, "metric %s: duplicate label \"%s\"", name, l);
  }
  return GPC_OK;
}

struct metric_family *metrics_register(struct metrics *m, enum metric_type type, const char *name,
                                       const char *help, const char *const *labels,
                                       const double *buckets, size_t n_buckets,
                                       struct gpc_error *err) {
  if (!valid_name(name, true)) {
    gpc_fail(err, GPC_E_INVAL, "invalid metric name \"%s\"", name ? name : "");
    return NULL;
  }
  if (metrics_find(m, name)) {
    gpc_fail(err, GPC_E_INVAL, "metric %s registered twice", name);
    return NULL;
  }
  size_t n_labels;
  if (check_labels(type, name, labels, &n_labels, err) != GPC_OK) return NULL;
  if (type == METRIC_HISTOGRAM) {
    if (!buckets) {
      buckets = default_buckets;
      n_buckets = sizeof default_buckets / sizeof default_buckets[0];
    }
    for (size_t i = 0; i < n_buckets; i++) {
      if (!isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1])) {
        gpc_fail(err, GPC_E_INVAL, "metric %s: buckets must be finite and strictly increasing",
                 name);
        return NULL;
      }
    }
  }
  struct metric_family *f = gpc_calloc(1, sizeof *f);
  f->type = type;
  f->name = gpc_strdup(name);
  f->help = gpc_strdup(help ? help : "");
  f->n_labels = n_labels;
  f->labels = gpc_calloc(n_labels + 1, sizeof *f->labels);
  for (size_t i = 0; i < n_labels; i++)
    f->labels[i] = gpc_strdup(labels[i]);
  if (type == METRIC_HISTOGRAM) {
    f->n_bounds = n_buckets;
    f->bounds = gpc_calloc(n_buckets + 1, sizeof *f->bounds);
    memcpy(f->bounds, buckets, n_buckets * sizeof *buckets);
  }
  f->series = strmap_new();
  if (m->tail)
    m->tail->next = f;
  else
    m->head = f;
  m->tail = f;
  return f;
}

void metrics_add_collector(struct metrics *m, metrics_collect_cb cb, void *ud) {
  gpc_grow((void **)&m->collectors, &m->cap_collectors, m->n_collectors + 1, sizeof *m->collectors);
  m->collectors[m->n_collectors++] = (struct collector){cb, ud};
}

/* ---- updates ---- */

int metrics_counter_add(struct metric_family *f, const char *const *values, double v) {
  if (!f || f->type != METRIC_COUNTER || !values_ok(f, values) || !(v >= 0)) return GPC_E_INVAL;
  series_get(f, values, true)->value += v;
  return GPC_OK;
}

int metrics_set(struct metric_family *f, const char *const *values, double v) {
  if (!f || f->type == METRIC_HISTOGRAM || !values_ok(f, values)) return GPC_E_INVAL;
  struct series *s = series_get(f, values, true);
  if (f->type == METRIC_COUNTER && !(v >= s->value)) return GPC_E_INVAL;
  s->value = v;
  return GPC_OK;
}

int metrics_gauge_add(struct metric_family *f, const char *const *values, double v) {
  if (!f || f->type != METRIC_GAUGE || !values_ok(f, values)) return GPC_E_INVAL;
  series_get(f, values, true)->value += v;
  return GPC_OK;
}

int metrics_observe(struct metric_family *f, const char *const *values, double v) {
  if (!f || f->type != METRIC_HISTOGRAM || !values_ok(f, values) || isnan(v)) return GPC_E_INVAL;
  struct series *s = series_get(f, values, true);
  size_t i = 0;
  while (i < f->n_bounds && v > f->bounds[i])
    i++;
  s->buckets[i]++; /* i == n_bounds: only in +Inf */
  s->count++;
  s->value += v;
  return GPC_OK;
}

int metrics_touch(struct metric_family *f, const char *const *values) {
  if (!f || !values_ok(f, values)) return GPC_E_INVAL;
  series_get(f, values, true);
  return GPC_OK;
}

double metrics_value(const struct metric_family *f, const char *const *values) {
  if (!f || !values_ok(f, values)) return -1;
  struct series *s = series_get((struct metric_family *)f, values, false);
  if (!s) return -1;
  return f->type == METRIC_HISTOGRAM ? (double)s->count : s->value;
}

size_t metrics_drop_matching(struct metric_family *f, const char *label, const char *value) {
  size_t idx = 0, dropped = 0;
  while (idx < f->n_labels && strcmp(f->labels[idx], label) != 0)
    idx++;
  if (idx == f->n_labels) return 0;
  struct strmap_iter it;
  strmap_iter_init(&it, f->series);
  void *val;
  while (strmap_next(&it, NULL, &val)) {
    struct series *s = val;
    if (strcmp(s->values[idx], value) == 0) {
      strmap_iter_del(&it);
      series_free(s, f);
      dropped++;
    }
  }
  return dropped;
}

size_t metrics_series_count(const struct metric_family *f) {
  return strmap_size(f->series);
}

/* ---- rendering ---- */

static const char *type_name(enum metric_type t) {
  static const char *const names[] = {METRIC_TYPE_MAP(GPC_X_NAME)};
  return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "histogram";
}

static void render_labels(struct dynbuf *b, const struct metric_family *f, const struct series *s,
                          const char *le) {
  if (f->n_labels == 0 && !le) return;
  buf_putc(b, '{');
  for (size_t i = 0; i < f->n_labels; i++) {
    if (i) buf_putc(b, ',');
    buf_puts(b, f->labels[i]);
    buf_puts(b, "=\"");
    buf_escaped(b, s->values[i], true);
    buf_putc(b, '"');
  }
  if (le) {
    if (f->n_labels) buf_putc(b, ',');
    buf_puts(b, "le=\"");
    buf_puts(b, le);
    buf_putc(b, '"');
  }
  buf_putc(b, '}');
}

static void render_sample(struct dynbuf *b, const struct metric_family *f, const struct series *s,
                          const char *suffix, const char *le, double v) {
  char num[40];
  buf_puts(b, f->name);
  buf_puts(b, suffix);
  render_labels(b, f, s, le);
  buf_putc(b, ' ');
  buf_puts(b, metrics_format_value(v, num, sizeof num));
  buf_putc(b, '\n');
}

static void render_series(struct dynbuf *b, const struct metric_family *f, const struct series *s) {
  if (f->type != METRIC_HISTOGRAM) {
    render_sample(b, f, s, "", NULL, s->value);
    return;
  }
  uint64_t cum = 0;
  char le[40];
  for (size_t i = 0; i < f->n_bounds; i++) {
    cum += s->buckets[i];
    render_sample(b, f, s, "_bucket", metrics_format_value(f->bounds[i], le, sizeof le),
                  (double)cum);
  }
  render_sample(b, f, s, "_bucket", "+Inf", (double)s->count);
  render_sample(b, f, s, "_sum", NULL, s->value);
  render_sample(b, f, s, "_count", NULL, (double)s->count);
}

struct keyed {
  size_t n_labels;
  const struct series *s;
};

/* Orders series by their label values, first label first. */
static int keyed_cmp(const void *a, const void *b) {
  const struct keyed *x = a, *y = b;
  for (size_t i = 0; i < x->n_labels; i++) {
    int c = strcmp(x->s->values[i], y->s->values[i]);
    if (c) return c;
  }
  return 0;
}

static void render_family(struct dynbuf *b, const struct metric_family *f) {
  buf_puts(b, "# HELP ");
  buf_puts(b, f->name);
  buf_putc(b, ' ');
  buf_escaped(b, f->help, false);
  buf_puts(b, "\n# TYPE ");
  buf_puts(b, f->name);
  buf_putc(b, ' ');
  buf_puts(b, type_name(f->type));
  buf_putc(b, '\n');
  size_t n = strmap_size(f->series), i = 0;
  if (n == 0) return;
  struct keyed *all = gpc_calloc(n, sizeof *all);
  struct strmap_iter it;
  strmap_iter_init(&it, f->series);
  void *val;
  while (strmap_next(&it, NULL, &val) && i < n)
    all[i++] = (struct keyed){f->n_labels, val};
  qsort(all, i, sizeof *all, keyed_cmp);
  for (size_t k = 0; k < i; k++)
    render_series(b, f, all[k].s);
  free(all);
}

char *metrics_render(struct metrics *m, size_t *len) {
  for (size_t i = 0; i < m->n_collectors; i++)
    m->collectors[i].cb(m, m->collectors[i].ud);
  struct dynbuf b = DYNBUF_INIT(DYNBUF_NO_MAX);
  for (const struct metric_family *f = m->head; f; f = f->next)
    render_family(&b, f);
  return dynbuf_detach(&b, len);
}
