/* xmacro.h — helpers for enum tables written as X-macros.
 *
 * An enum whose values have names (for labels, logs, the API) is written as
 * one table, in libuv's UV_ERRNO_MAP style:
 *
 *   #define WATCH_EVENT_TYPE_MAP(X) X(WATCH_ADDED, "ADDED") X(WATCH_DELETED, "DELETED")
 *   enum watch_event_type { WATCH_EVENT_TYPE_MAP(GPC_X_ENUM) };
 *   static const char *const names[] = {WATCH_EVENT_TYPE_MAP(GPC_X_NAME)};
 *
 * so a value and its spelling are written once, in one row, and cannot drift
 * apart when a value is added or reordered. Rows may carry more columns
 * after the name (a spec key, default paths); a table's comment says which.
 * Owns nothing; macros only.
 */
#ifndef GPC_XMACRO_H
#define GPC_XMACRO_H

/* The enum value of a row. */
#define GPC_X_ENUM(e, ...) e,
/* The name (second column) of a row, as a designated array element. */
#define GPC_X_NAME(e, name, ...) [e] = name,

#endif
