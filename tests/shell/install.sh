#!/bin/sh
# What a packager checks: `make install DESTDIR=...` installs the expected
# files and nothing outside DESTDIR, no rpath, no .la; an out-of-tree plugin
# builds from the staged SDK with pkg-config alone and the staged ndf loads
# it; `make uninstall` leaves nothing behind.
. "$top_srcdir/tests/shell/lib.sh"
MAKE=${MAKE:-make}
DEST=$SCRATCH/dest

# The tools the checks below rely on.  A missing one is a failure, never a
# silent pass: binutils and pkg-config are declared CI dependencies.
for need in readelf:binutils pkg-config:pkg-config; do
    tool=${need%%:*}
    if command -v "$tool" >/dev/null 2>&1; then
        ok "$tool is available"
    else
        not_ok "$tool is not installed (on Debian: apt-get install ${need#*:})"
    fi
done

eval "$($MAKE -s --no-print-directory -C "$top_builddir" print-install-dirs 2>/dev/null)"
if [ -n "${prefix:-}" ] && [ -n "${pkglibdir:-}" ]; then
    ok "make print-install-dirs"
else
    not_ok "make print-install-dirs gave no layout"
fi

expect_exit 0 "make install DESTDIR" -- $MAKE -s -C "$top_builddir" install DESTDIR="$DEST"

# Exactly the expected set: each file below is installed, and nothing else.
# A new installed file belongs in this list (a packager sees it too).
expected=$SCRATCH/expected
{
    echo "$bindir/ndf"
    for h in "$top_srcdir"/sdk/ndf/*.h; do echo "$includedir/ndf/$(basename "$h")"; done
    echo "$libdir/pkgconfig/ndf-sdk.pc"
    echo "$mandir/man1/ndf.1"
    echo "$mandir/man5/ndf.conf.5"
    echo "$mandir/man7/ndf-plugin.7"
    echo "$sysconfdir/ndf/ndf.conf"
    echo "$docdir/examples/ndf.conf"
    for c in "$top_srcdir"/conf/patterns.d/*.conf; do
        echo "$docdir/examples/patterns.d/$(basename "$c")"
    done
    echo "$docdir/examples/delegation/patterns.conf"
    echo "$docdir/examples/delegation/demo.sh"
    echo "$prefix/lib/systemd/system/ndf.service"
    echo "$bashcompletiondir/ndf"
    for la in $plugins; do echo "$pkglibdir/$(basename "$la" .la).so"; done
} | LC_ALL=C sort >"$expected"
# ==== section: the plugin author's kit ====
# The template is documentation to copy, not a live plugin.
for f in example.c Makefile README.md; do echo "$docdir/examples/plugin/$f"; done >>"$expected"
LC_ALL=C sort -o "$expected" "$expected"
# ==== end: the plugin author's kit ====
missing=$(while read -r f; do [ -f "$DEST$f" ] || echo "$f"; done <"$expected")
if [ -z "$missing" ]; then
    ok "every expected file is installed ($(wc -l <"$expected") files)"
else
    not_ok "expected files not installed:"
    printf '%s\n' "$missing" | sed 's/^/#   /'
fi
extra=$(cd "$DEST" && find . -type f -o -type l | sed 's/^\.//' | LC_ALL=C sort | LC_ALL=C comm -13 "$expected" -)
if [ -z "$extra" ]; then
    ok "no unexpected file is installed"
else
    not_ok "installed but not expected (add them to tests/shell/install.sh if meant):"
    printf '%s\n' "$extra" | sed 's/^/#   /'
fi
sos=0
for la in $plugins; do sos=$((sos + 1)); done
if [ "$sos" -gt 0 ]; then ok "$sos plugins to install"; else not_ok "no plugins in the install layout"; fi

stray=$(find "$DEST" -type f | grep -v -e "^$DEST$prefix/" -e "^$DEST$sysconfdir/" || true)
if [ -z "$stray" ]; then ok "nothing outside prefix and sysconfdir"; else not_ok "files outside prefix: $stray"; fi
las=$(find "$DEST" -name '*.la')
if [ -z "$las" ]; then ok "no .la files installed"; else not_ok "installed .la files: $las"; fi

# RPATH/RUNPATH: readelf must read every installed ELF file, and a file it
# cannot read is a failure, not a pass.
rpaths= unread= elves=0
for f in $(find "$DEST" -type f); do
    if head -c 4 "$f" | grep -q 'ELF'; then
        elves=$((elves + 1))
        if ! dyn=$(readelf -d "$f" 2>&1); then
            unread="$unread $f"
        elif printf '%s\n' "$dyn" | grep -Eq 'RPATH|RUNPATH'; then
            rpaths="$rpaths $f"
        fi
    fi
done
if [ "$elves" -gt 0 ]; then ok "$elves installed ELF files"; else not_ok "no installed ELF file found"; fi
if [ -z "$unread" ]; then ok "readelf reads every installed ELF file"; else not_ok "readelf failed on:$unread"; fi
if [ -z "$rpaths" ]; then ok "no RPATH/RUNPATH in installed ELF files"; else not_ok "rpath in:$rpaths"; fi

# The ABI version is written once, in version.h; the .pc and --version
# must say the same.
abi_major=$(sed -n 's/^#define NDF_ABI_MAJOR \([0-9][0-9]*\)$/\1/p' "$top_srcdir/sdk/ndf/version.h")
abi_minor=$(sed -n 's/^#define NDF_ABI_MINOR \([0-9][0-9]*\)$/\1/p' "$top_srcdir/sdk/ndf/version.h")
abi=$abi_major.$abi_minor
expect_match "$abi" '^[0-9]+\.[0-9]+$' "version.h gives the ABI version ($abi)"
pcabi=$(PKG_CONFIG_PATH="$DEST$libdir/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$DEST" \
    pkg-config --variable=abi ndf-sdk 2>&1)
if [ "$pcabi" = "$abi" ]; then ok "ndf-sdk.pc abi=$pcabi, as version.h"; else not_ok "ndf-sdk.pc abi='$pcabi', version.h says $abi"; fi
if cmp -s "$top_srcdir/sdk/ndf/version.h" "$DEST$includedir/ndf/version.h"; then
    ok "the installed version.h is the source one"
else
    not_ok "the installed version.h differs from sdk/ndf/version.h"
fi

# The staged ndf runs.
expect_exit 0 "staged ndf --version" -- "$DEST$bindir/ndf" --version
expect_match "$out" "plugin ABI $abi_major\\.$abi_minor\\)" "--version names the ABI of version.h"

# An out-of-tree plugin from the staged SDK, with pkg-config alone.
# ==== section: the plugin author's kit ====
# The template as installed under the documentation directory.
cp -R "$DEST$docdir/examples/plugin" "$SCRATCH/example"
chmod -R u+w "$SCRATCH/example"
export PKG_CONFIG_PATH="$DEST$libdir/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$DEST"
expect_exit 0 "example plugin builds out of tree" -- $MAKE -C "$SCRATCH/example"
expect_exit 0 "its make check passes (ndf test-step)" -- $MAKE -C "$SCRATCH/example" check \
    NDF="env NDF_RUNTIME_DIR=$SCRATCH/run $DEST$bindir/ndf"
# ==== end: the plugin author's kit ====
so=$(ls "$SCRATCH/example"/*.so 2>/dev/null | head -1)
unset PKG_CONFIG_SYSROOT_DIR
if [ -n "$so" ] && [ -f "$so" ]; then
    ok "example plugin built: $(basename "$so")"
else
    not_ok "example plugin built (no .so in $SCRATCH/example)"
    so=$SCRATCH/missing.so
fi
# The exported symbols: exactly the descriptor.  No .so, or a readelf that
# fails, is a failure (an empty list would otherwise read as "only").
if syms=$(readelf --dyn-syms -W "$so" 2>&1); then
    exported=$(printf '%s\n' "$syms" | awk '$5 == "GLOBAL" && $7 != "UND" {print $8}' | sort -u)
    if [ "$exported" = ndf_plugin_descriptor ]; then
        ok "example plugin exports only its descriptor"
    else
        not_ok "example plugin exports only its descriptor (exports: $(echo $exported))"
    fi
else
    not_ok "readelf --dyn-syms $so failed: $syms"
fi
expect_exit 0 "staged ndf inspect loads it" -- env NDF_RUNTIME_DIR="$SCRATCH/run" "$DEST$bindir/ndf" inspect "$so"
expect_match "$out" 'compatible' "inspect gives the ABI verdict"
mkdir -p "$SCRATCH/plugdir" && cp "$so" "$SCRATCH/plugdir/"
expect_exit 0 "staged ndf plugins lists it" -- env NDF_RUNTIME_DIR="$SCRATCH/run" \
    NDF_PLUGIN_PATH="$SCRATCH/plugdir" "$DEST$bindir/ndf" -c /dev/null plugins
expect_match "$out" 'example' "the example plugin is listed"

# ---- packaging that keeps state: begin ----
# The live configuration and plugin directories hold only what a service
# runs: ndf.conf, an empty patterns.d for the operator's own patterns, and
# the real plugins (the demo patterns are examples, under docdir).
live=$(cd "$DEST" && find ".$sysconfdir/ndf" ".$pkglibdir" -type f 2>/dev/null | sed 's/^\.//' | LC_ALL=C sort)
unexpected_live=$(printf '%s\n' "$live" | grep -v -x -e "$sysconfdir/ndf/ndf.conf" \
    $(for la in $plugins; do printf -- '-e %s ' "$pkglibdir/$(basename "$la" .la).so"; done) || true)
if [ -z "$unexpected_live" ]; then
    ok "live config and plugin directories hold only ndf.conf and the plugins"
else
    not_ok "live config or plugin directories hold more than ndf.conf and the plugins:"
    printf '%s\n' "$unexpected_live" | sed 's/^/#   /'
fi
if [ -d "$DEST$sysconfdir/ndf/patterns.d" ] && [ -z "$(ls -A "$DEST$sysconfdir/ndf/patterns.d")" ]; then
    ok "patterns.d is installed empty"
else
    not_ok "patterns.d is installed empty"
fi
# The installed configuration, the unit and ctl agree on the store and the
# socket (with the README's --localstatedir=/var --runstatedir=/run these are
# the unit's StateDirectory and RuntimeDirectory).
expect_exit 0 "the installed ndf.conf loads, with no pattern" -- \
    env NDF_PLUGIN_PATH="$DEST$pkglibdir" "$DEST$bindir/ndf" -c "$DEST$sysconfdir/ndf/ndf.conf" config --json
expect_match "$out" "\"storage\":\\{\"path\":\"$localstatedir/lib/ndf\"" \
    "its storage.path is \$(localstatedir)/lib/ndf"
expect_match "$out" "\"server\":\\{\"socket\":\"$runstatedir/ndf/ndf.sock\"" \
    "its server.socket is \$(runstatedir)/ndf/ndf.sock"
unit=$DEST$prefix/lib/systemd/system/ndf.service
expect_match "$(cat "$unit")" '^StateDirectory=ndf$' "the unit's StateDirectory is ndf"
expect_match "$(cat "$unit")" '^RuntimeDirectory=ndf$' "the unit's RuntimeDirectory is ndf"
expect_match "$(grep '^ExecStart=' "$unit")" "^ExecStart=$bindir/ndf serve --grace [0-9]+\$" \
    "the unit's ExecStart takes the socket from ndf.conf (no --socket of its own)"
expect_match "$(cat "$unit")" "storage.path = $localstatedir/lib/ndf" "the unit says which store it uses"
# ctl finds the configured socket with no option: nothing listens there, and
# it says where it looked.
expect_exit 9 "ndf ctl with the installed ndf.conf looks at the configured socket" -- \
    "$DEST$bindir/ndf" -c "$DEST$sysconfdir/ndf/ndf.conf" ctl list
expect_match "$err" "$runstatedir/ndf/ndf.sock" "and names it"
if command -v systemd-analyze >/dev/null 2>&1 &&
    systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
    sec=$(systemd-analyze security --offline=true "$unit" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    if [ -n "$sec" ] && awk "BEGIN { exit !($sec <= 2.0) }"; then
        ok "systemd-analyze security rates the unit $sec (<= 2.0)"
    else
        not_ok "systemd-analyze security rates the unit '$sec' (wanted <= 2.0)"
    fi
else
    echo "# systemd-analyze security --offline is not available: the unit's rating is not checked"
fi
# ---- packaging that keeps state: end ----
# ==== section: the plugin author's kit ====
# ndf new-plugin, built against the staged SDK alone: it builds, inspects
# and passes its own make check at once.
STAGED="env NDF_RUNTIME_DIR=$SCRATCH/run $DEST$bindir/ndf"
export PKG_CONFIG_SYSROOT_DIR="$DEST"
expect_exit 0 "staged ndf new-plugin" -- $STAGED new-plugin scaffold --step probe --pattern-type chain \
    "$SCRATCH/scaffold"
expect_exit 0 "the scaffold builds with -Werror" -- $MAKE -C "$SCRATCH/scaffold" CFLAGS="-O2 -Wall -Wextra -Werror"
expect_exit 0 "the staged ndf inspects it" -- $STAGED inspect "$SCRATCH/scaffold/scaffold.so"
expect_match "$out" 'verdict: compatible' "compatible"
expect_exit 0 "its make check passes" -- $MAKE -C "$SCRATCH/scaffold" check NDF="$STAGED"
expect_exit 0 "it passes ndf inspect --conformance" -- $STAGED inspect --conformance "$SCRATCH/scaffold/scaffold.so"
# A third party's plugin using SDK 1.2: a quorum pattern type that cancels
# its losers with group_cancel, and a step tested with ndf test-step.
cp -R "$top_srcdir/tests/oot/quorum" "$SCRATCH/quorum"
chmod -R u+w "$SCRATCH/quorum"
expect_exit 0 "the quorum plugin builds from the staged SDK" -- \
    $MAKE -C "$SCRATCH/quorum" CFLAGS="-O2 -Wall -Wextra -Werror"
expect_exit 0 "its step passes ndf test-step (make check)" -- $MAKE -C "$SCRATCH/quorum" check NDF="$STAGED"
mkdir -p "$SCRATCH/qplug" && cp "$SCRATCH/quorum/quorum.so" "$SCRATCH/qplug/"
cat >"$SCRATCH/quorum.conf" <<QCONF
storage: { path = "$SCRATCH/qstate"; };
executor: { threads = 3; kill_grace = 0.5; };
patterns = (
  { name = "race"; type = "quorum";
    params = { need = 2; tasks = (
      { name = "fast1"; step = "delay"; params = { seconds = 0.05; }; },
      { name = "slow"; step = "delay"; params = { seconds = 60; }; },
      { name = "fast2"; step = "delay"; params = { seconds = 0.1; }; } ); }; }
);
QCONF
QRUN="env NDF_RUNTIME_DIR=$SCRATCH/run NDF_PLUGIN_PATH=$SCRATCH/qplug $DEST$bindir/ndf -c $SCRATCH/quorum.conf"
expect_exit 0 "the quorum pattern succeeds once 2 of 3 did" -- $QRUN run race --force
expect_match "$err" 'task slow: CANCELLED' "the loser was cancelled (group_cancel), not waited for"
expect_match "$err" 'COMPLETED in [0-9.]+s .*2 COMPLETED, 1 CANCELLED' "the record says so"
unset PKG_CONFIG_SYSROOT_DIR
# ==== end: the plugin author's kit ====

expect_exit 0 "make uninstall DESTDIR" -- $MAKE -s -C "$top_builddir" uninstall DESTDIR="$DEST"
left=$(find "$DEST" -type f)
if [ -z "$left" ]; then ok "uninstall leaves no files"; else not_ok "left after uninstall: $left"; fi
finish
