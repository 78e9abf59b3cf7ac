/* strmap.h — a string-keyed hash map (separate chaining, FNV-1a).
 *
 * The one hash table of the controller: the informer cache ("namespace/name"
 * → projection), the workqueue (key → state), apply's write memory (key →
 * entry), the planner's node index (name → index) and the controller's
 * policy and label-key maps. Keys are copied into the map; values are opaque
 * pointers the caller owns (strmap_free can hand each one to a destructor).
 * Iteration order is unspecified; the map must not be modified while an
 * iterator is in use, except for strmap_iter_del on the current entry.
 * Not thread-safe (nothing here is).
 */
#ifndef GPC_STRMAP_H
#define GPC_STRMAP_H

#include <stdbool.h>
#include <stddef.h>

struct strmap;
struct strmap_node;

struct strmap_iter {
  struct strmap *m;
  size_t bucket;
  struct strmap_node *node, *next;
};

typedef void (*strmap_free_cb)(void *val, void *ud);

struct strmap *strmap_new(void);
/* Frees the map; calls free_val(val, ud) on each value when non-NULL. */
void strmap_free(struct strmap *m, strmap_free_cb free_val, void *ud);

void *strmap_get(const struct strmap *m, const char *key);
/* The map's own copy of key (stable until the entry is deleted), or NULL. */
const char *strmap_key(const struct strmap *m, const char *key);
/* Inserts or replaces; returns the previous value (NULL when new). */
void *strmap_put(struct strmap *m, const char *key, void *val);
/* Removes; returns the value (NULL when absent). */
void *strmap_del(struct strmap *m, const char *key);
size_t strmap_size(const struct strmap *m);

void strmap_iter_init(struct strmap_iter *it, struct strmap *m);
/* Advances; returns false at the end. key/val may be NULL. */
bool strmap_next(struct strmap_iter *it, const char **key, void **val);
/* Deletes the entry strmap_next last returned; returns its value. */
void *strmap_iter_del(struct strmap_iter *it);

#endif
