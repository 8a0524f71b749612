/* ndf SDK: parameter schemas and the opaque values they describe.
 *
 * Every pattern type and step declares the parameters it accepts as an array
 * of ndf_param_spec terminated by an entry whose name is NULL.  The host
 * checks a definition against the schema (presence, type, range) and fills in
 * defaults before the plugin sees it, and `ndf inspect` prints the schema.
 *
 * Values reach plugins as `const ndf_value *` handles, read through the
 * accessors in the host services table (ndf/host.h); no configuration
 * library's types ever cross the ABI. */
#ifndef NDF_PARAMS_H
#define NDF_PARAMS_H

#include <stddef.h>

typedef struct ndf_value ndf_value;

typedef enum ndf_value_type {
    NDF_VALUE_NONE = 0,  /* absent */
    NDF_VALUE_STRING = 1,
    NDF_VALUE_INT = 2,    /* 64-bit signed */
    NDF_VALUE_NUMBER = 3, /* double; an INT value reads as a number too */
    NDF_VALUE_BOOL = 4,
    NDF_VALUE_LIST = 5,   /* ordered, unnamed elements */
    NDF_VALUE_GROUP = 6,  /* named members, in definition order */
    NDF_VALUE_ANY = 7     /* schema only: accept any type */
} ndf_value_type;

/* Flags of a parameter. */
#define NDF_PARAM_REQUIRED 0x1u /* must be present; `def` is ignored */
#define NDF_PARAM_RANGE 0x2u    /* min/max apply: value for INT/NUMBER,
                                   length for STRING and LIST */
#define NDF_PARAM_OPEN 0x4u     /* GROUP: members not in `children` are kept
                                   (they belong to someone else, e.g. a step) */

/* One parameter.  This layout is frozen for the life of ABI major 1: arrays
 * of it are laid out by the plugin's compiler, so it can never grow.  Later
 * minors extend it only through `ext`, which v1.0 plugins leave NULL. */
typedef struct ndf_param_spec {
    const char *name;           /* NULL ends the array */
    ndf_value_type type;
    unsigned flags;             /* NDF_PARAM_* */
    const char *def;            /* default in configuration syntax ("300",
                                   "true", "\"fast\""), or NULL for none */
    double min, max;            /* with NDF_PARAM_RANGE */
    ndf_value_type elem_type;   /* LIST: the type of every element (or ANY) */
    const struct ndf_param_spec *children; /* GROUP, or LIST of GROUP */
    const char *doc;            /* one line, shown by `ndf inspect` */
    const void *ext;            /* reserved, NULL */
} ndf_param_spec;

/* Initializers that keep plugin schemas short and readable. */
#define NDF_PARAM(name_, type_, flags_, def_, doc_) \
    { (name_), (type_), (flags_), (def_), 0, 0, NDF_VALUE_NONE, NULL, (doc_), NULL }
#define NDF_PARAM_RANGED(name_, type_, flags_, def_, min_, max_, doc_)                   \
    { (name_), (type_), (flags_) | NDF_PARAM_RANGE, (def_), (min_), (max_), NDF_VALUE_NONE, \
      NULL, (doc_), NULL }
#define NDF_PARAM_LIST(name_, elem_, flags_, children_, doc_) \
    { (name_), NDF_VALUE_LIST, (flags_), NULL, 0, 0, (elem_), (children_), (doc_), NULL }
#define NDF_PARAM_LIST_RANGED(name_, elem_, flags_, min_, max_, children_, doc_)          \
    { (name_), NDF_VALUE_LIST, (flags_) | NDF_PARAM_RANGE, NULL, (min_), (max_), (elem_), \
      (children_), (doc_), NULL }
#define NDF_PARAM_GROUP(name_, flags_, children_, doc_) \
    { (name_), NDF_VALUE_GROUP, (flags_), NULL, 0, 0, NDF_VALUE_NONE, (children_), (doc_), NULL }
#define NDF_PARAM_END { NULL, NDF_VALUE_NONE, 0, NULL, 0, 0, NDF_VALUE_NONE, NULL, NULL, NULL }

#endif
