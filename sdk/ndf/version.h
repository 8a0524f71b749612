/* ndf SDK: the ABI version this header set describes.
 *
 * A plugin records the version it was built against in its descriptor; the
 * host accepts it when the majors are equal and the plugin's minor is not
 * newer than the host's (see ndf-plugin(7)). */
#ifndef NDF_VERSION_H
#define NDF_VERSION_H

#define NDF_ABI_MAJOR 1
#define NDF_ABI_MINOR 3

/* Encodes a major/minor pair as one comparable number. */
#define NDF_ABI_VERSION(major, minor) (((major) << 16) | (minor))

#endif
