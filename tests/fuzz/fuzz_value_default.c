/* libFuzzer harness: value_parse_default (the configuration-syntax
 * defaults in plugin schemas) and value_validate against a fixed schema.
 *
 * Input: byte 0 picks the schema type (mod 8), the rest up to the first
 * newline is the default text; what follows the newline is split at
 * further newlines into "name=default" member lines that build the group
 * validated against the fixed schema.  Invariants: no crash, leak or UB; a
 * parsed default has the asked type (an integer counts as a number); a
 * refused validation leaves a message; a validated group is idempotent
 * (validating it again succeeds and changes nothing). */
#include "build-config.h"

#include "fuzz_common.h"
#include "base/util.h"
#include "base/value.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ndf_param_spec step_children[] = {
    NDF_PARAM("name", NDF_VALUE_STRING, NDF_PARAM_REQUIRED, NULL, "step name"),
    NDF_PARAM("step", NDF_VALUE_STRING, NDF_PARAM_REQUIRED, NULL, "step type"),
    NDF_PARAM("params", NDF_VALUE_GROUP, NDF_PARAM_OPEN, NULL, "step parameters"),
    NDF_PARAM_RANGED("retries", NDF_VALUE_INT, 0, "0", 0, 100, "retries"),
    NDF_PARAM("backoff", NDF_VALUE_NUMBER, 0, "0.1", "backoff"),
    NDF_PARAM_END};

static const ndf_param_spec schema[] = {
    NDF_PARAM_RANGED("s", NDF_VALUE_STRING, 0, "\"dflt\"", 0, 16, "a short string"),
    NDF_PARAM_RANGED("i", NDF_VALUE_INT, 0, "5", 1, 4096, "an integer"),
    NDF_PARAM_RANGED("n", NDF_VALUE_NUMBER, 0, "0.8", 0, 1, "a fraction"),
    NDF_PARAM("b", NDF_VALUE_BOOL, 0, "true", "a bool"),
    NDF_PARAM_LIST_RANGED("l", NDF_VALUE_INT, 0, 0, 8, NULL, "a list of integers"),
    NDF_PARAM_LIST("steps", NDF_VALUE_GROUP, 0, step_children, "steps"),
    NDF_PARAM("a", NDF_VALUE_ANY, 0, NULL, "anything"),
    NDF_PARAM("d", NDF_VALUE_LIST, 0, "[1, \"x\", 2.5]", "a default list"),
    NDF_PARAM_END};

static const ndf_value_type types[8] = {NDF_VALUE_STRING, NDF_VALUE_INT,  NDF_VALUE_NUMBER,
                                        NDF_VALUE_BOOL,   NDF_VALUE_LIST, NDF_VALUE_GROUP,
                                        NDF_VALUE_ANY,    NDF_VALUE_NONE};

static int type_fits(ndf_value_type want, const ndf_value *v)
{
    if (want == NDF_VALUE_ANY)
        return 1;
    if (want == NDF_VALUE_NUMBER)
        return v->type == NDF_VALUE_NUMBER || v->type == NDF_VALUE_INT;
    return v->type == want;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    ndf_value_type type = types[data[0] % 8];
    char *text = fuzz_cstr(data + 1, size - 1);
    char *rest = strchr(text, '\n');
    if (rest)
        *rest++ = '\0';

    ndf_value *v = value_parse_default("x", text, type);
    if (v) {
        FUZZ_CHECK(type_fits(type, v), "default '%s' parsed as %s, asked for %s", text,
                   value_type_name(v->type), value_type_name(type));
        strbuf sb;
        sb_init(&sb);
        value_to_json(v, &sb);
        sb_free(&sb);
        value_free(v);
    }

    /* The members of the group under validation: "name=default text", each
     * parsed as ANY (so lists and scalars), "steps" members as groups. */
    ndf_value *g = value_new_group(NULL);
    value_set_pos(g, "fuzz.conf", 1);
    int line = 2;
    for (char *p = rest; p && *p && line < 66; line++) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        char *eq = strchr(p, '=');
        if (eq) {
            *eq = '\0';
            ndf_value *m = value_parse_default(p, eq + 1, NDF_VALUE_ANY);
            if (m && strcmp(p, "steps") == 0 && m->type == NDF_VALUE_LIST) {
                /* a list of steps: each element becomes {name, step} */
                ndf_value *l = value_new_list("steps");
                for (size_t i = 0; i < value_count(m); i++) {
                    ndf_value *st = value_new_group(NULL);
                    const ndf_value *e = value_at(m, i);
                    if (e->type == NDF_VALUE_STRING) {
                        value_append(st, value_new_string("name", e->u.s));
                        value_append(st, value_new_string("step", "noop"));
                    } else {
                        value_append(st, value_dup(e));
                    }
                    value_insert(l, value_count(l), st);
                }
                value_free(m);
                m = l;
            }
            if (m) {
                value_set_pos(m, "fuzz.conf", line);
                value_append(g, m);
            }
        }
        p = nl ? nl + 1 : NULL;
    }
    int rc = value_validate(g, schema, "fuzz");
    if (rc != NDF_OK) {
        FUZZ_CHECK(err_msg() && *err_msg(), "a refused group left no message");
    } else {
        ndf_value *copy = value_dup(g);
        rc = value_validate(g, schema, "fuzz");
        FUZZ_CHECK(rc == NDF_OK, "a validated group fails a second validation: %s", err_msg());
        FUZZ_CHECK(value_equal(copy, g), "a second validation changed the group");
        value_free(copy);
    }
    value_free(g);

    /* The text as a plugin's default for a parameter of the picked type. */
    if (type != NDF_VALUE_NONE && type != NDF_VALUE_GROUP) {
        ndf_param_spec dyn[2] = {NDF_PARAM("p", type, 0, text, "fuzzed default"),
                                 NDF_PARAM_END};
        ndf_value *h = value_new_group(NULL);
        rc = value_validate(h, dyn, "fuzz");
        if (rc == NDF_OK && value_get(h, "p"))
            FUZZ_CHECK(type_fits(type, value_get(h, "p")), "filled default has the wrong type");
        value_free(h);
    }
    free(text);
    return 0;
}
