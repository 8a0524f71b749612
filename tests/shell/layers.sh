#!/bin/sh
# The host's layers include only downward: a file in host/L may include
# headers of L itself and of the layers listed before L below, never after.
# Also fails on an include cycle among host headers.  Reads $(srcdir) only.
set -u
src=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
order="base conf plugin model exec store app serve cli"

rank() {
    i=0
    for l in $order; do
        [ "$l" = "$1" ] && { echo $i; return; }
        i=$((i + 1))
    done
    echo -1
}

bad=0
for f in "$src"/host/*/*.[ch]; do
    layer=$(basename "$(dirname "$f")")
    r=$(rank "$layer")
    if [ "$r" -lt 0 ]; then
        echo "layers: $f: folder '$layer' is not a known layer ($order)"
        bad=1
        continue
    fi
    # Only quoted includes of host headers ("layer/name.h").
    for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([a-z]*\)\/[^"]*".*/\1/p' "$f"); do
        ir=$(rank "$inc")
        if [ "$ir" -lt 0 ]; then
            echo "layers: ${f#"$src"/}: includes from unknown folder '$inc'"
            bad=1
        elif [ "$ir" -gt "$r" ]; then
            echo "layers: ${f#"$src"/}: layer '$layer' includes '$inc', which is above it"
            bad=1
        fi
    done
    # A bare "name.h" that is a host header would dodge the check.
    for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([a-z_0-9]*\.h\)".*/\1/p' "$f"); do
        [ "$inc" = build-config.h ] && continue
        echo "layers: ${f#"$src"/}: includes \"$inc\" without its layer folder"
        bad=1
    done
done

# Module cycles, within a layer as well: module A depends on module B when
# A's .c or .h includes B's header.  tsort reports any cycle on stderr.
edges=$(for f in "$src"/host/*/*.[ch]; do
    m=${f#"$src"/host/}
    m=${m%.[ch]}
    echo "$m $m"
    sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([a-z]*\/[^"]*\)\.h".*/\1/p' "$f" |
        while read -r inc; do [ "$inc" = "$m" ] || echo "$inc $m"; done
done)
if ! out=$(printf '%s\n' "$edges" | tsort 2>&1 >/dev/null) || [ -n "$out" ]; then
    echo "layers: include cycle among host modules:"
    printf '%s\n' "$out"
    bad=1
fi

[ "$bad" -eq 0 ] && echo "layers: ok ($order)"
exit "$bad"
