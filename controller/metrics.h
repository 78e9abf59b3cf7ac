/* metrics.h — a small Prometheus registry: counters, gauges and histograms
 * with labels, rendered in the text exposition format 0.0.4.
 *
 * Owns: metric families (name, help, type, label names), their series
 * (one per distinct tuple of label values) and rendering:
 *
 *   # HELP workqueue_depth Current depth of the workqueue.
 *   # TYPE workqueue_depth gauge
 *   workqueue_depth{name="clustergpupolicy"} 3
 *
 * Histograms render cumulative `_bucket{le="..."}` lines ending with
 * le="+Inf", then `_sum` and `_count`. Label values are escaped (\\, \", \n),
 * HELP text too (\\, \n). Numbers are the shortest text that reads back to
 * the same double ("0.005", "1e+06", "+Inf", "NaN"). Families render in
 * registration order, series sorted by their label values (first label
 * first), so output is stable.
 *
 * Pure: no I/O, no clock, no globals. Collectors (metrics_add_collector) run
 * at the start of every metrics_render so gauges that mirror other modules'
 * state (queue depth, ...) are read only when scraped.
 *
 * Errors: registering a bad name (not [a-zA-Z_:][a-zA-Z0-9_:]*), a bad or
 * reserved label name ("le" on a histogram, "__"-prefixed) or a duplicate
 * family returns NULL with err naming it; that is a programming error the
 * caller logs. Using a family of the wrong type, or with the wrong number of
 * label values, is ignored (returns GPC_E_INVAL) rather than crashing a
 * running controller.
 *
 * Memory: the registry owns everything; label values and help are copied.
 * Families live as long as the registry. Single-threaded.
 */
#ifndef GPC_METRICS_H
#define GPC_METRICS_H

#include <stddef.h>

#include "errors.h"
#include "xmacro.h"

/* X(enum value, "# TYPE" name) (xmacro.h) */
#define METRIC_TYPE_MAP(X)                                                                         \
  X(METRIC_COUNTER, "counter")                                                                     \
  X(METRIC_GAUGE, "gauge")                                                                         \
  X(METRIC_HISTOGRAM, "histogram")
enum metric_type { METRIC_TYPE_MAP(GPC_X_ENUM) };

struct metrics;
struct metric_family;

/* Called at the start of each render, to refresh mirrored values. */
typedef void (*metrics_collect_cb)(struct metrics *m, void *ud);

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* Registers a family. `labels` is a NULL-terminated list of label names (NULL
 * for none). `buckets` (histograms only; NULL = the controller-runtime
 * reconcile buckets 0.005 .. 60 s) are strictly increasing upper bounds,
 * without +Inf. The family is owned by m (freed by metrics_free); the
 * returned pointer stays valid as long as m. Strings are copied. */
struct metric_family *metrics_register(struct metrics *m, enum metric_type type, const char *name,
                                       const char *help, const char *const *labels,
                                       const double *buckets, size_t n_buckets,
                                       struct gpc_error *err);
/* The family registered under `name`, or NULL. Owned by m. */
struct metric_family *metrics_find(const struct metrics *m, const char *name);

/* `values` holds one value per label name, in order (NULL when the family
 * has no labels). Each call creates the series when absent. */
/* Counter: adds v >= 0 (negative v is refused). */
int metrics_counter_add(struct metric_family *f, const char *const *values, double v);
/* Gauge: sets; or counter: sets the running total mirrored from a module
 * that counts on its own (refused when it would make a counter go down). */
int metrics_set(struct metric_family *f, const char *const *values, double v);
/* Gauge: adds v (may be negative). */
int metrics_gauge_add(struct metric_family *f, const char *const *values, double v);
/* Histogram: one observation. */
int metrics_observe(struct metric_family *f, const char *const *values, double v);
/* Creates the series with value 0 when absent (controller-runtime pre-sets
 * reconcile_total{result=...} to 0 so rates work from the first scrape). */
int metrics_touch(struct metric_family *f, const char *const *values);

/* Current value of a counter/gauge series, or the count of a histogram
 * series; -1 when the series does not exist (for tests). */
double metrics_value(const struct metric_family *f, const char *const *values);
/* Drops every series whose label `label` equals `value` (a deleted policy's
 * series). Returns how many were dropped. */
size_t metrics_drop_matching(struct metric_family *f, const char *label, const char *value);
size_t metrics_series_count(const struct metric_family *f);

void metrics_add_collector(struct metrics *m, metrics_collect_cb cb, void *ud);

/* Runs the collectors, then renders every family. Returns a NUL-terminated
 * string the caller frees; *len (when non-NULL) gets its length. */
char *metrics_render(struct metrics *m, size_t *len);

/* Formats v the way the exposition format expects (shortest round-trip,
 * +Inf/-Inf/NaN). `buf` should hold at least 32 bytes. Returns buf. */
char *metrics_format_value(double v, char *buf, size_t size);

#endif
