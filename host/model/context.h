/* The execution context (seed PatternContext): domain, agent type,
 * priority and attributes, plus the domain glob rules and the command-line
 * and JSON ways of building one. */
#ifndef NDF_HOST_CONTEXT_H
#define NDF_HOST_CONTEXT_H

#include <ndf/context.h>
#include "base/value.h"

struct ndf_context {
    char *domain;      /* never NULL; "" when unset */
    char *agent_type;  /* never NULL; "" when unset */
    int priority;      /* 1..5 */
    ndf_value *attrs;  /* a GROUP, never NULL; values STRING/INT/NUMBER/BOOL/LIST */
};

/* A new context with the given fields (NULL means ""), priority 1 and no
 * attributes.  Free with context_free(). */
ndf_context *context_new(const char *domain, const char *agent_type, int priority);
void context_free(ndf_context *ctx);
ndf_context *context_dup(const ndf_context *ctx);

/* Sets attribute `key` to `val` (ownership passes), replacing an old one. */
void context_set_attr(ndf_context *ctx, const char *key, ndf_value *val);

/* The glob rule for domains and agent types: glob_match() ('*' any run,
 * '?' one character, the rest literal), and in addition a glob ending in
 * ".*" matches its bare parent ("web_development.*" matches
 * "web_development").  Returns 1 on match. */
int context_glob_match(const char *glob, const char *text);

/* 1 when an attribute value `have` satisfies `want`: equal (an integer and a
 * number compare by value), or one is a LIST and contains the other, or both
 * are LISTs that share an element. */
int context_value_matches(const ndf_value *have, const ndf_value *want);

/* seed matches_domain: 1 when the context's domain matches `pattern`
 * (context_glob_match rules, see ndf(1)). */
int context_matches_domain(const ndf_context *ctx, const char *pattern);

/* seed has_attribute: with `value` NULL, 1 when `key` exists; otherwise 1
 * when it exists and equals `value` (a LIST attribute also matches when it
 * contains `value`). */
int context_has_attribute(const ndf_context *ctx, const char *key, const ndf_value *value);

/* seed merge_attributes: a new context, `ctx`'s attributes overlaid by the
 * members of `extra` (a GROUP).  The caller frees the result. */
ndf_context *context_merge_attributes(const ndf_context *ctx, const ndf_value *extra);

/* Parses "KEY=VALUE" from --attr: VALUE becomes a bool (true/false), an
 * integer, a number, a list ("[a, b]") or else a string.  Returns NDF_OK or
 * NDF_ERR_INVALID with err_msg() set. */
int context_parse_attr(ndf_context *ctx, const char *arg);

/* Reads a context from a JSON object {"domain":..., "agent_type":...,
 * "priority":..., "attributes":{...}}.  `origin` names the source in errors.
 * Returns NDF_OK and *out, or NDF_ERR_INVALID with err_msg() set. */
int context_from_json(const char *text, const char *origin, ndf_context **out);
/* Reads it from a file ("-" for stdin) of at most CONTEXT_MAX_FILE bytes
 * and without NUL bytes (refused with a message, so that /dev/zero or an
 * endless pipe cannot exhaust memory). */
#define CONTEXT_MAX_FILE ((size_t)16 << 20)
#define CONTEXT_MAX_FILE_TEXT "16 MiB"
/* The most attributes a JSON context may carry: a context is a handful of
 * facts, and a bound keeps a hostile one (sent to a server, or queued for
 * every worker to parse) from costing more than a moment. */
#define CONTEXT_MAX_ATTRS 10000
int context_from_json_file(const char *path, ndf_context **out);
/* Appends the context as a JSON object. */
struct strbuf;
void context_to_json(const ndf_context *ctx, struct strbuf *sb);

/* Checks the priority range (1..5) and the attribute value types.  Returns
 * NDF_OK or NDF_ERR_INVALID with err_msg() set. */
int context_validate(const ndf_context *ctx);

#endif
