#!/bin/sh
# The host's layers include only downward: a file in host/L may include
# headers of L itself and of the layers listed before L below, never after.
# Also fails on an include cycle among host headers.  Reads $(srcdir) only.
# One awk reads every file (a process per file or per include made this
# test take minutes on a busy machine).
set -u
src=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
order="base conf plugin model exec store app serve cli"

# scan MODE FILE...: MODE "check" prints a message per violation and exits
# 1 if there is one; MODE "edges" prints the module dependencies for tsort:
# "m m" for every module, "inc m" when m's .c or .h includes inc's header.
scan() {
    mode=$1
    shift
    awk -v src="$src" -v order="$order" -v mode="$mode" '
    function rank(l,    i) {
        for (i = 1; i <= nlayers; i++)
            if (layers[i] == l)
                return i - 1
        return -1
    }
    BEGIN {
        nlayers = split(order, layers, " ")
        bad = 0
        incre = "^[[:space:]]*#[[:space:]]*include[[:space:]]*\""
        for (a = 1; a < ARGC; a++) {
            f = ARGV[a]
            rel = substr(f, length(src) + 2)            # host/L/name.c
            m = substr(rel, 6)                          # L/name.c
            sub(/\.[ch]$/, "", m)
            d = f
            sub(/\/[^\/]*$/, "", d)
            layer = d
            sub(/^.*\//, "", layer)
            r = rank(layer)
            if (mode == "edges")
                print m " " m
            else if (r < 0) {
                print "layers: " f ": folder \047" layer "\047 is not a known layer (" order ")"
                bad = 1
            }
            nbare = 0
            while ((getline line < f) > 0) {
                if (line !~ incre)
                    continue
                q = substr(line, index(line, "\"") + 1)   # after the opening quote
                if (mode == "edges") {
                    # "folder/path.h"
                    if (match(q, /^[a-z]*\/[^"]*\.h"/)) {
                        inc = substr(q, 1, RLENGTH - 3)
                        if (inc != m)
                            print inc " " m
                    }
                    continue
                }
                if (r < 0)
                    continue
                # Only quoted includes of host headers ("layer/name.h").
                if (match(q, /^[a-z]*\/[^"]*"/)) {
                    inc = substr(q, 1, index(q, "/") - 1)
                    ir = rank(inc)
                    if (inc == "")
                        ;                               # "/path": not a host header
                    else if (ir < 0) {
                        print "layers: " rel ": includes from unknown folder \047" inc "\047"
                        bad = 1
                    } else if (ir > r) {
                        print "layers: " rel ": layer \047" layer "\047 includes \047" inc "\047, which is above it"
                        bad = 1
                    }
                }
                # A bare "name.h" that is a host header would dodge the check.
                if (match(q, /^[a-z_0-9]*\.h"/)) {
                    inc = substr(q, 1, RLENGTH - 1)
                    if (inc != "build-config.h")
                        bare[++nbare] = "layers: " rel ": includes \"" inc "\" without its layer folder"
                }
            }
            close(f)
            for (i = 1; i <= nbare; i++) {
                print bare[i]
                bad = 1
            }
        }
        exit bad
    }' "$@"
}

bad=0
scan check "$src"/host/*/*.[ch] || bad=1

# Module cycles, within a layer as well.  tsort reports any cycle on stderr.
edges=$(scan edges "$src"/host/*/*.[ch])
if ! out=$(printf '%s\n' "$edges" | tsort 2>&1 >/dev/null) || [ -n "$out" ]; then
    echo "layers: include cycle among host modules:"
    printf '%s\n' "$out"
    bad=1
fi

[ "$bad" -eq 0 ] && echo "layers: ok ($order)"
exit "$bad"
