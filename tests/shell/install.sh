#!/bin/sh
# What a packager checks: `make install DESTDIR=...` installs the expected
# files and nothing outside DESTDIR, no rpath, no .la; an out-of-tree plugin
# builds from the staged SDK with pkg-config alone and the staged ndf loads
# it; `make uninstall` leaves nothing behind.
. "$top_srcdir/tests/shell/lib.sh"
MAKE=${MAKE:-make}
DEST=$SCRATCH/dest

eval "$($MAKE -s --no-print-directory -C "$top_builddir" print-install-dirs 2>/dev/null)"

expect_exit 0 "make install DESTDIR" -- $MAKE -s -C "$top_builddir" install DESTDIR="$DEST"

for f in "$bindir/ndf" "$includedir/ndf/sdk.h" "$includedir/ndf/host.h" \
         "$libdir/pkgconfig/ndf-sdk.pc" "$mandir/man1/ndf.1" "$mandir/man7/ndf-plugin.7" \
         "$sysconfdir/ndf/ndf.conf"; do
    if [ -f "$DEST$f" ]; then ok "installed $f"; else not_ok "installed $f"; fi
done
for la in $plugins; do
    so=$(basename "$la" .la).so
    if [ -f "$DEST$pkglibdir/$so" ]; then ok "plugin $so installed"; else not_ok "plugin $so installed"; fi
done

stray=$(find "$DEST" -type f | grep -v -e "^$DEST$prefix/" -e "^$DEST$sysconfdir/" || true)
if [ -z "$stray" ]; then ok "nothing outside prefix and sysconfdir"; else not_ok "files outside prefix: $stray"; fi
las=$(find "$DEST" -name '*.la')
if [ -z "$las" ]; then ok "no .la files installed"; else not_ok "installed .la files: $las"; fi

rpaths=
for f in $(find "$DEST" -type f); do
    if head -c 4 "$f" | grep -q 'ELF'; then
        if readelf -d "$f" 2>/dev/null | grep -Eq 'RPATH|RUNPATH'; then rpaths="$rpaths $f"; fi
    fi
done
if [ -z "$rpaths" ]; then ok "no RPATH/RUNPATH in installed ELF files"; else not_ok "rpath in:$rpaths"; fi

# The staged ndf runs.
expect_exit 0 "staged ndf --version" -- "$DEST$bindir/ndf" --version

# An out-of-tree plugin from the staged SDK, with pkg-config alone.
cp -R "$top_srcdir/plugins/example" "$SCRATCH/example"
chmod -R u+w "$SCRATCH/example"
export PKG_CONFIG_PATH="$DEST$libdir/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$DEST"
expect_exit 0 "example plugin builds out of tree" -- $MAKE -C "$SCRATCH/example"
so=$(ls "$SCRATCH/example"/*.so 2>/dev/null | head -1)
unset PKG_CONFIG_SYSROOT_DIR
if [ -n "$so" ]; then ok "example plugin built: $(basename "$so")"; else not_ok "example plugin built"; so=$SCRATCH/missing.so; fi
if readelf --dyn-syms -W "$so" 2>/dev/null | awk '$5 == "GLOBAL" && $7 != "UND" {print $8}' | grep -qvx 'ndf_plugin_descriptor'; then
    not_ok "example plugin exports only its descriptor"
else
    ok "example plugin exports only its descriptor"
fi
expect_exit 0 "staged ndf inspect loads it" -- env NDF_RUNTIME_DIR="$SCRATCH/run" "$DEST$bindir/ndf" inspect "$so"
expect_match "$out" 'compatible' "inspect gives the ABI verdict"
mkdir -p "$SCRATCH/plugdir" && cp "$so" "$SCRATCH/plugdir/"
expect_exit 0 "staged ndf plugins lists it" -- env NDF_RUNTIME_DIR="$SCRATCH/run" \
    NDF_PLUGIN_PATH="$SCRATCH/plugdir" "$DEST$bindir/ndf" -c /dev/null plugins
expect_match "$out" 'example' "the example plugin is listed"

expect_exit 0 "make uninstall DESTDIR" -- $MAKE -s -C "$top_builddir" uninstall DESTDIR="$DEST"
left=$(find "$DEST" -type f)
if [ -z "$left" ]; then ok "uninstall leaves no files"; else not_ok "left after uninstall: $left"; fi
finish
