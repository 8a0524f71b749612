/* The host's value tree: what a configuration becomes once read, what
 * plugins read through the ndf_value accessors, and what the parameter
 * schemas are checked against.  A value remembers the file and line it came
 * from, so every later error can name them. */
#ifndef NDF_VALUE_H
#define NDF_VALUE_H

#include <stddef.h>
#include <stdint.h>
#include <ndf/params.h>

struct ndf_value {
    ndf_value_type type;
    char *name;                 /* member name within a GROUP, else NULL */
    const char *file;           /* interned (value_intern_file), not owned */
    int line;
    union {
        char *s;
        int64_t i;
        double n;
        int b;
        struct {
            struct ndf_value **items;
            size_t count, cap;
        } c;                    /* LIST and GROUP */
    } u;
};

/* Constructors return owned values; free with value_free().  `name` may be
 * NULL; it is copied. */
ndf_value *value_new_string(const char *name, const char *s);
ndf_value *value_new_int(const char *name, int64_t i);
ndf_value *value_new_number(const char *name, double n);
ndf_value *value_new_bool(const char *name, int b);
ndf_value *value_new_list(const char *name);
ndf_value *value_new_group(const char *name);
void value_free(ndf_value *v);
/* Deep copy, including positions. */
ndf_value *value_dup(const ndf_value *v);
void value_set_pos(ndf_value *v, const char *file, int line);
/* Returns a copy of `path` that lives until exit, shared by all values. */
const char *value_intern_file(const char *path);

/* Appends `child` (ownership passes) to a LIST or GROUP.  For a GROUP a
 * member of the same name is replaced. */
void value_append(ndf_value *container, ndf_value *child);
/* Inserts at `pos` (clamped to the end). */
void value_insert(ndf_value *container, size_t pos, ndf_value *child);
/* Removes and frees member `i`.  Returns 0, or -1 when out of range. */
int value_remove(ndf_value *container, size_t i);

/* Readers, all NULL-tolerant; what they return is borrowed from the tree.
 * value_get: the member `name` of a GROUP (NULL when absent or not a group);
 * value_at/value_count: members of a LIST or GROUP (NULL / 0 otherwise);
 * value_string: a STRING's text, else NULL; value_int/value_number convert
 * between INT and NUMBER and give 0 for anything else; value_bool: a BOOL,
 * else 0. */
ndf_value *value_get(const ndf_value *group, const char *name);
ndf_value *value_at(const ndf_value *v, size_t i);
size_t value_count(const ndf_value *v);
const char *value_string(const ndf_value *v);
int64_t value_int(const ndf_value *v);
double value_number(const ndf_value *v);
int value_bool(const ndf_value *v);
/* Structural equality (names, types, contents; positions ignored). */
int value_equal(const ndf_value *a, const ndf_value *b);
/* The type's name in messages ("string", "integer", ...); static. */
const char *value_type_name(ndf_value_type t);

/* Checks `group` against `schema`: every required member present, every
 * member of the right type and in range, unknown members reported.  Missing
 * optional members that have a default get it.  Errors carry file:line and
 * the dotted path of the member; `what` names the owner ("step exec").
 * Unknown members are errors unless the schema's group is NDF_PARAM_OPEN.
 * Returns NDF_OK or NDF_ERR_VALIDATION with err_msg() set. */
int value_validate(ndf_value *group, const ndf_param_spec *schema, const char *what);

/* Parses a default string ("300", "true", "\"x\"", "0.5", "[1, 2]") as the
 * schema type; NULL when it does not parse. */
ndf_value *value_parse_default(const char *name, const char *text, ndf_value_type type);

/* Appends the value as JSON to a strbuf (declared in util.h); NULL and
 * non-finite numbers become null. */
struct strbuf;
void value_to_json(const ndf_value *v, struct strbuf *sb);

#endif
