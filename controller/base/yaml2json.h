/* yaml2json.h — YAML (libyaml) to jansson conversion.
 *
 * Handles block and flow styles, multi-document streams, anchors/aliases
 * (with a cap on expansion to refuse "billion laughs"), and YAML 1.1/1.2 core
 * scalar typing for plain scalars (null/~, true/false, ints, floats); quoted
 * scalars are always strings. Non-string mapping keys are an error.
 * Input is capped at `max_bytes` (0 = 8 MiB).
 *
 * Ownership: input buffers and paths are borrowed for the call only; every
 * json_t returned is a new reference the caller decrefs; on failure NULL is
 * returned and nothing needs freeing. yaml2json_emit borrows its arguments.
 */
#ifndef GPC_YAML2JSON_H
#define GPC_YAML2JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "errors.h"

/* Parses every document of the stream. Returns a new JSON array (one element
 * per non-empty document; caller owns it) or NULL with `err` set, naming the
 * line and column. */
json_t *yaml2json_parse_docs(const char *data, size_t len, size_t max_bytes, struct gpc_error *err);

/* Parses a stream that must hold exactly one document. Returns a new
 * reference (caller decrefs), or NULL with err set. */
json_t *yaml2json_parse(const char *data, size_t len, size_t max_bytes, struct gpc_error *err);

/* Reads a whole file (capped at max_bytes, 0 = 8 MiB) and parses one
 * document. Returns a new reference (caller decrefs), or NULL with err set
 * naming the path. */
json_t *yaml2json_file(const char *path, size_t max_bytes, struct gpc_error *err);

/* Emits `json` as a YAML document to `out` (block style, keys in object
 * order, strings quoted when a plain scalar would change type).
 * Returns GPC_OK or GPC_E_IO. */
int yaml2json_emit(const json_t *json, FILE *out, struct gpc_error *err);

#endif
