/* ndf SDK: the plugin descriptor.
 *
 * A plugin exports exactly one symbol, `ndf_plugin_descriptor`, made with
 * NDF_PLUGIN_DEFINE().  The host reads it, checks the ABI version and size,
 * then calls init() with the services table and a registrar. */
#ifndef NDF_PLUGIN_H
#define NDF_PLUGIN_H

#include <stdint.h>
#include <ndf/host.h>
#include <ndf/version.h>

#define NDF_PLUGIN_SYMBOL "ndf_plugin_descriptor"

#if defined(__GNUC__)
#define NDF_EXPORT __attribute__((visibility("default")))
#else
#define NDF_EXPORT
#endif

typedef struct ndf_plugin {
    uint32_t size;          /* sizeof(ndf_plugin) as the plugin was built */
    uint16_t abi_major;     /* NDF_ABI_MAJOR as the plugin was built */
    uint16_t abi_minor;     /* NDF_ABI_MINOR as the plugin was built */
    const char *name;       /* [a-z0-9_-]+, unique among loaded plugins */
    const char *version;    /* the plugin's own version */
    const char *license;    /* SPDX identifier */
    const char *description;/* one line */

    /* Registers what the plugin provides through `reg`, and may keep state
     * for fini() in *state.  Returns NDF_OK, or a status with a message set
     * by host->fail(); the plugin is then refused and fini() is not called. */
    int (*init)(const ndf_host *host, ndf_registrar *reg, void **state);

    /* Optional.  Called before the plugin is unloaded, once nothing it
     * registered is in use. */
    void (*fini)(const ndf_host *host, void *state);

    /* ---- ABI 1.1: state handoff across a hot reload (both optional) ----
     * When a new build of a plugin replaces a loaded one, the host calls
     * the old build's state_save() after the new build's init() succeeded,
     * then the new build's state_restore() with the bytes saved, and frees
     * them.  Executions of the old build may still be running while
     * state_save() runs: guard the state accordingly.  A host reads these
     * members only when `size` says the descriptor has them. */

    /* Serializes `state` (from the old build's init) into *blob, allocated
     * with malloc() (the host frees it with free(): the one direction in
     * which the plugin allocates and the host frees), of *len bytes.  NDF_OK,
     * or a status with a message set by host->fail(): the new build is then
     * refused and the old one keeps serving. */
    int (*state_save)(const ndf_host *host, void *state, char **blob, size_t *len);
    /* Takes over what an older build saved.  `blob` is only valid during
     * the call.  NDF_OK, or a status: the new build is refused (its fini()
     * is called) and the old one keeps serving. */
    int (*state_restore)(const ndf_host *host, void *state, const char *blob, size_t len);
} ndf_plugin;

/* The v1.0 layout ends after fini; a host refuses a smaller descriptor. */
#define NDF_PLUGIN_V1_0_SIZE (offsetof(ndf_plugin, fini) + sizeof(void (*)(void)))
/* The v1.1 layout ends after state_restore. */
#define NDF_PLUGIN_V1_1_SIZE (offsetof(ndf_plugin, state_restore) + sizeof(void (*)(void)))

#ifdef __cplusplus
#define NDF_EXTERN_C extern "C"
#else
#define NDF_EXTERN_C
#endif

/* The minor a plugin records in its descriptor: the oldest host minor that
 * loads it.  An author who wants older hosts to load the plugin defines
 * NDF_SDK_MIN_MINOR (before including <ndf/sdk.h>) to the lowest minor
 * whose calls the plugin uses without an NDF_HOST_HAS() check; the
 * compiler then warns wherever the plugin reads a newer member of the
 * services table directly (see NDF_SINCE in host.h), so the declaration
 * cannot silently go stale.  Left undefined, the plugin records the minor
 * of the headers it was built with (always safe, loads only on hosts at
 * least that new). */
#ifdef NDF_SDK_MIN_MINOR
#if NDF_SDK_MIN_MINOR > NDF_ABI_MINOR
#error "NDF_SDK_MIN_MINOR is newer than these SDK headers"
#endif
#if NDF_SDK_MIN_MINOR < 0
#error "NDF_SDK_MIN_MINOR must be 0 or more"
#endif
#define NDF_PLUGIN_MINOR_ (NDF_SDK_MIN_MINOR)
#else
#define NDF_PLUGIN_MINOR_ NDF_ABI_MINOR
#endif

/* Defines the plugin's descriptor.  Use once per plugin, at file scope.
 * Members it does not name (the 1.1 state hooks) are NULL. */
#define NDF_PLUGIN_DEFINE(name_, version_, license_, description_, init_, fini_) \
    NDF_EXTERN_C NDF_EXPORT const ndf_plugin ndf_plugin_descriptor = {          \
        .size = sizeof(ndf_plugin),                                              \
        .abi_major = NDF_ABI_MAJOR,                                              \
        .abi_minor = NDF_PLUGIN_MINOR_,                                          \
        .name = (name_),                                                         \
        .version = (version_),                                                   \
        .license = (license_),                                                   \
        .description = (description_),                                           \
        .init = (init_),                                                         \
        .fini = (fini_)}

/* The same with the ABI 1.1 state handoff hooks (either may be NULL).  The
 * plugin records at least minor 1: a 1.0 host would not call the hooks. */
#define NDF_PLUGIN_DEFINE_1_1(name_, version_, license_, description_, init_, fini_, save_,  \
                              restore_)                                                    \
    NDF_EXTERN_C NDF_EXPORT const ndf_plugin ndf_plugin_descriptor = {                     \
        .size = sizeof(ndf_plugin),                                                         \
        .abi_major = NDF_ABI_MAJOR,                                                         \
        .abi_minor = NDF_PLUGIN_MINOR_ > 1 ? NDF_PLUGIN_MINOR_ : 1,                         \
        .name = (name_),                                                                    \
        .version = (version_),                                                              \
        .license = (license_),                                                              \
        .description = (description_),                                                      \
        .init = (init_),                                                                    \
        .fini = (fini_),                                                                    \
        .state_save = (save_),                                                              \
        .state_restore = (restore_)}

#endif
