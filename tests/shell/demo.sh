#!/bin/sh
# `make demo` (conf/demo.sh) passes three times in a row: it keeps its
# learning in a store of its own, so the failures it causes on purpose never
# leave a pattern below the confidence gate for the next run, and its
# resource waits count ndf's own processes (resources.scope = "ndf"), so a
# busy machine does not fail it.
. "$top_srcdir/tests/shell/lib.sh"
for i in 1 2 3; do
    expect_exit 0 "demo run $i of 3 passes" -- \
        env NDF_RUNTIME_DIR="$SCRATCH/run" sh "$top_srcdir/conf/demo.sh" "$NDF" \
        "$top_builddir/conf/ndf-build.conf"
    expect_match "$out" '^== Demo complete$' "and says it is complete"
done
finish
