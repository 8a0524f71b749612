/* The agents of ndf.conf (`agents { NAME = { argv = [...]; ... }; }`):
 * agent programs configured once, by name, and the agent types they serve.
 * A step whose type's schema declares an `agent` parameter takes its
 * program from here: the host merges the named agent's settings into the
 * step's parameters before they are checked against the schema, so the
 * plugin sees ordinary parameters (no ABI of its own; see ndf-plugin(7)).
 * A step that names no agent and sets no `argv` gets, in its
 * `agent_types` parameter, one complete set of parameters per configured
 * agent type, and picks by the context's agent_type when it runs. */
#ifndef NDF_AGENTS_H
#define NDF_AGENTS_H

#include <stddef.h>

#include "base/value.h"

/* Receives a problem found at file:line (file may be NULL). */
typedef void (*agents_report_fn)(void *arg, const char *file, int line, const char *msg);

/* Checks the `agents` section `agents` (a GROUP of agent groups, as read):
 * names, known keys and their types, a non-empty argv, valid environment
 * names, an agent type claimed by one agent only.  Each problem goes to
 * `report`; returns how many there were. */
size_t agents_check(const ndf_value *agents, agents_report_fn report, void *arg);

/* The agents of the build that runs on this thread (NULL: none configured
 * or not in a build), set around a build like the loader's scope:
 * agents_scope_enter returns the previous value for agents_scope_leave.
 * The group is borrowed and must outlive the scope. */
const ndf_value *agents_scope_enter(const ndf_value *agents);
void agents_scope_leave(const ndf_value *prev);
const ndf_value *agents_scope(void);

/* How many steps of the running build chose their agent by the context's
 * agent type (agent_types filled), since the last call; resets the count.
 * What lets the build check that a pattern's agent types are all served. */
size_t agents_scope_take_mapped(void);

/* 1 when some agent in scope serves agent type `type`. */
int agents_serves(const char *type);

/* Resolves the agent of a step's parameters `params` (a GROUP, changed in
 * place) for a step type whose schema is `schema`, before the schema check:
 * nothing unless the schema declares a string parameter `agent`.  A named
 * agent's settings fill the parameters the step leaves out (an `env` group
 * member by member); a step that names none and sets no `argv` gets
 * `agent_types` when its schema declares that group.  `what` names the
 * step in messages.  NDF_OK, or NDF_ERR_VALIDATION with err_msg() at the
 * offending line (an unknown agent, no agent to choose from). */
int agents_apply(ndf_value *params, const ndf_param_spec *schema, const char *what);

#endif
