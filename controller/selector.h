/* selector.h — Kubernetes label selectors.
 *
 * Two sources: a metav1.LabelSelector object ({matchLabels, matchExpressions}
 * with operators In, NotIn, Exists, DoesNotExist) and the string form used
 * in `labelSelector=` query parameters ("a=b,c!=d,e in (f,g),!h").
 * Keys and values are validated as Kubernetes does (qualified names, 63-char
 * values); errors name the offending key or expression.
 */
#ifndef GPC_SELECTOR_H
#define GPC_SELECTOR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "errors.h"

struct label_selector; /* opaque, immutable once built */

/* Function the matcher uses to look labels up: returns the value of `key`
 * or NULL when absent. Lets callers keep labels in any compact form. */
typedef const char *(*label_lookup_fn)(const void *labels, const char *key);

/* From a metav1.LabelSelector JSON object (NULL or {} selects everything).
 * `field` prefixes error messages, e.g. "spec.nodeSelector". */
struct label_selector *selector_from_json(const json_t *sel, const char *field,
                                          struct gpc_error *err);
/* From the query-string form. */
struct label_selector *selector_parse(const char *s, struct gpc_error *err);
void selector_free(struct label_selector *s);

bool selector_empty(const struct label_selector *s);
bool selector_matches(const struct label_selector *s, label_lookup_fn lookup, const void *labels);
/* Convenience: match against a JSON object of labels (may be NULL). */
bool selector_matches_json(const struct label_selector *s, const json_t *labels);

/* Canonical string form ("a=b,c in (d,e)"), caller frees. Not URL-escaped:
 * the HTTP layer escapes query parameters. */
char *selector_to_string(const struct label_selector *s);

#endif
