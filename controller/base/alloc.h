/* alloc.h — allocation wrappers.
 *
 * Every heap allocation in the project goes through these, and jansson is
 * routed through them too (gpc_alloc_init). On exhaustion they log one line
 * and abort: a controller that keeps running with half-built state after an
 * allocation failure would write wrong things to the cluster, and restarting
 * (the pod is restarted by the kubelet) is the safe recovery.
 *
 * Ownership: memory returned by gpc_* is freed with free() (or gpc_free).
 */
#ifndef GPC_ALLOC_H
#define GPC_ALLOC_H

#include <stddef.h>

void *gpc_malloc(size_t n);
void *gpc_calloc(size_t nmemb, size_t size);
void *gpc_realloc(void *p, size_t n);
/* Grows *p (holding *cap elements of `size` bytes) to at least `need`. */
void gpc_grow(void **p, size_t *cap, size_t need, size_t size);
char *gpc_strdup(const char *s);
char *gpc_strndup(const char *s, size_t n);
/* printf into a fresh string. */
char *gpc_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void gpc_free(void *p);

/* Route jansson's allocations through gpc_malloc/gpc_free. Call once at start. */
void gpc_alloc_init(void);

#endif
