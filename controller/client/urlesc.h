/* urlesc.h — percent-encoding for Kubernetes request URLs.
 *
 * Pure string functions; the HTTP layer calls them for every name, namespace
 * and query value it puts into a URL. Both return a new string the caller
 * frees (never NULL; NULL input is treated as "").
 */
#ifndef GPC_URLESC_H
#define GPC_URLESC_H

/* Query parameter values (labelSelector, fieldSelector, continue tokens):
 * RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~) are kept, every other
 * byte becomes %XX, so "a in (b,c)" -> "a%20in%20%28b%2Cc%29". */
char *urlesc_query(const char *s);

/* One path segment (an object name or namespace): unreserved characters
 * plus ':' and '@' (pchar characters that appear in names such as
 * "system:controller:x") are kept; '/', '?', '#', '%', spaces and all
 * other bytes become %XX, so a name can never add a path segment. */
char *urlesc_path(const char *s);

#endif
