/* strmap.c — see strmap.h. Grows at load factor 1 so chains stay short. */
#include "strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

struct strmap_node {
  struct strmap_node *next;
  uint64_t hash;
  void *val;
  char key[]; /* NUL-terminated copy */
};

struct strmap {
  struct strmap_node **buckets;
  size_t nbuckets; /* power of two */
  size_t size;
};

static uint64_t fnv1a(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 0x100000001b3ull;
  }
  return h;
}

struct strmap *strmap_new(void) {
  struct strmap *m = gpc_calloc(1, sizeof *m);
  m->nbuckets = 16;
  m->buckets = gpc_calloc(m->nbuckets, sizeof *m->buckets);
  return m;
}

void strmap_free(struct strmap *m, strmap_free_cb free_val, void *ud) {
  if (!m) return;
  for (size_t i = 0; i < m->nbuckets; i++) {
    for (struct strmap_node *n = m->buckets[i], *next; n; n = next) {
      next = n->next;
      if (free_val) free_val(n->val, ud);
      free(n);
    }
  }
  free(m->buckets);
  free(m);
}

static struct strmap_node **find(const struct strmap *m, const char *key, uint64_t h) {
  struct strmap_node **pp = &m->buckets[h & (m->nbuckets - 1)];
  while (*pp && ((*pp)->hash != h || strcmp((*pp)->key, key) != 0))
    pp = &(*pp)->next;
  return pp;
}

void *strmap_get(const struct strmap *m, const char *key) {
  struct strmap_node *n = *find(m, key, fnv1a(key));
  return n ? n->val : NULL;
}

const char *strmap_key(const struct strmap *m, const char *key) {
  struct strmap_node *n = *find(m, key, fnv1a(key));
  return n ? n->key : NULL;
}

static void grow(struct strmap *m) {
  size_t nb = m->nbuckets * 2;
  struct strmap_node **b = gpc_calloc(nb, sizeof *b);
  for (size_t i = 0; i < m->nbuckets; i++) {
    for (struct strmap_node *n = m->buckets[i], *next; n; n = next) {
      next = n->next;
      struct strmap_node **slot = &b[n->hash & (nb - 1)];
      n->next = *slot;
      *slot = n;
    }
  }
  free(m->buckets);
  m->buckets = b;
  m->nbuckets = nb;
}

void *strmap_put(struct strmap *m, const char *key, void *val) {
  uint64_t h = fnv1a(key);
  struct strmap_node **pp = find(m, key, h);
  if (*pp) {
    void *old = (*pp)->val;
    (*pp)->val = val;
    return old;
  }
  size_t klen = strlen(key);
  struct strmap_node *n = gpc_malloc(sizeof *n + klen + 1);
  memcpy(n->key, key, klen + 1);
  n->hash = h;
  n->val = val;
  n->next = NULL;
  *pp = n;
  if (++m->size > m->nbuckets) grow(m);
  return NULL;
}

void *strmap_del(struct strmap *m, const char *key) {
  struct strmap_node **pp = find(m, key, fnv1a(key));
  struct strmap_node *n = *pp;
  if (!n) return NULL;
  *pp = n->next;
  void *val = n->val;
  free(n);
  m->size--;
  return val;
}

size_t strmap_size(const struct strmap *m) {
  return m->size;
}

void strmap_iter_init(struct strmap_iter *it, struct strmap *m) {
  it->m = m;
  it->bucket = 0;
  it->node = NULL;
  it->next = m->nbuckets ? m->buckets[0] : NULL;
}

bool strmap_next(struct strmap_iter *it, const char **key, void **val) {
  while (!it->next) {
    if (++it->bucket >= it->m->nbuckets) {
      it->node = NULL;
      return false;
    }
    it->next = it->m->buckets[it->bucket];
  }
  it->node = it->next;
  it->next = it->node->next;
  if (key) *key = it->node->key;
  if (val) *val = it->node->val;
  return true;
}

void *strmap_iter_del(struct strmap_iter *it) {
  struct strmap_node *n = it->node;
  if (!n) return NULL;
  struct strmap_node **pp = &it->m->buckets[it->bucket];
  while (*pp != n)
    pp = &(*pp)->next;
  *pp = n->next;
  void *val = n->val;
  free(n);
  it->m->size--;
  it->node = NULL;
  return val;
}
