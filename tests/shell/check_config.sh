#!/bin/sh
# `ndf check-config` and `ndf config` on the build-tree configuration and on
# broken fixtures: exit codes, file:line messages, and the JSON shape.
. "$top_srcdir/tests/shell/lib.sh"
CONF=$top_builddir/conf/ndf-build.conf
FIX=$top_srcdir/tests/configs

expect_exit 0 "check-config accepts the build configuration" -- "$NDF" -c "$CONF" check-config
expect_match "$out" '^ndf-build\.conf: OK, [1-9][0-9]* patterns, [1-9][0-9]* plugins?$' \
    "check-config prints a one-line summary"
expect_match "$out" ' 1[0-9] patterns,' "every shipped pattern is built"

expect_exit 2 "a syntax error exits 2" -- "$NDF" -c "$FIX/syntax.conf" check-config
expect_match "$err" "^ndf: check-config: $FIX/syntax\.conf:3: syntax error\$" "the syntax error names file:line"

expect_exit 2 "wrong types exit 2" -- "$NDF" -c "$FIX/types.conf" check-config
expect_match "$err" "^ndf: check-config: $FIX/types\.conf:4: 'executor\.threads' must be an integer, not a float\$" \
    "a type error names file:line"
expect_match "$err" "^ndf: check-config: $FIX/types\.conf:7: 'server' must be a group" "every type error is reported"

expect_exit 2 "out-of-range values exit 2" -- "$NDF" -c "$FIX/ranges.conf" check-config
expect_match "$err" "^ndf: check-config: $FIX/ranges\.conf:6: 'executor\.threads' is 257, out of range \[1, 256\]\$" \
    "a range error names file:line"

expect_exit 2 "broken patterns exit 2" -- "$NDF" -c "$FIX/patterns.conf" check-config
expect_match "$err" "^ndf: check-config: $FIX/patterns\.conf:19: duplicate pattern 'twice' \(first defined at $FIX/patterns\.conf:14\)\$" \
    "a duplicate names both places"

expect_exit 12 "duplicates (and nothing else wrong) exit 12, already exists" -- \
    "$NDF" -c "$FIX/dup/main.conf" check-config
expect_match "$err" "^ndf: check-config: $FIX/dup/d/20-second\.conf:3: duplicate pattern 'alpha' \(first defined at $FIX/dup/d/10-first\.conf:2\)\$" \
    "a duplicate across files names both files"

expect_exit 2 "a missing file exits 2" -- "$NDF" -c "$SCRATCH/none.conf" check-config
expect_match "$err" "cannot read $SCRATCH/none\.conf: No such file or directory" \
    "a missing file is named with the reason"

# Unknown keys warn but do not fail.
expect_exit 0 "unknown keys only warn" -- "$NDF" -c "$FIX/unknown.conf" check-config
expect_match "$err" "^ndf: check-config: warning: $FIX/unknown\.conf:2: unknown key 'thread' in 'executor' \(did you mean 'threads'\?\)\$" \
    "the warning suggests the right key"
expect_exit 0 "-q hides warnings" -- "$NDF" -q -c "$FIX/unknown.conf" check-config
expect_match "x$err" '^x$' "-q leaves stderr empty"

# Errors found when patterns are built (unknown type, unknown step, bad
# parameters) also name file:line.
cat >"$SCRATCH/types.conf" <<EOC
plugins: { dirs = [ "$top_builddir/plugins/.libs" ]; cache_dir = "$SCRATCH/cache"; };
patterns = (
    { name = "a"; type = "no_such_type"; },
    { name = "b"; type = "sequential";
      params = { steps = ( { name = "s"; step = "no_such_step"; } ); }; },
    { name = "c"; type = "sequential";
      params = { steps = ( { name = "s"; step = "noop"; retries = 1000; } ); }; },
    { name = "d"; type = "parallel"; params = { }; }
);
EOC
expect_exit 2 "pattern build errors exit 2" -- "$NDF" -c "$SCRATCH/types.conf" check-config
expect_match "$err" "^ndf: check-config: $SCRATCH/types\.conf:3: .*no_such_type" "an unknown type names file:line"
expect_match "$err" "^ndf: check-config: $SCRATCH/types\.conf:5: .*no_such_step" "an unknown step names file:line"
expect_match "$err" "^ndf: check-config: $SCRATCH/types\.conf:7: .*retries" "an out-of-range parameter names file:line"
expect_match "$err" "^ndf: check-config: $SCRATCH/types\.conf:8: .*tasks" "a missing parameter names file:line"

# ndf config: one JSON object mirroring the configuration's sections.
expect_exit 0 "config exits 0" -- "$NDF" -c "$CONF" config
expect_match "$out" '"threshold":0\.75,' "config prints the threshold"
if command -v python3 >/dev/null 2>&1; then
    printf '%s\n' "$out" >"$SCRATCH/config.json"
    expect_exit 0 "config prints valid JSON with every section" -- python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
for k in ("file", "confidence", "registry", "executor", "storage", "plugins", "server",
          "patterns_dir", "patterns"):
    assert k in j, k
assert j["confidence"]["algorithm"] == "adaptive_bayes"
assert j["executor"]["threads"] == 4
assert isinstance(j["plugins"]["dirs"], list)
names = [p["name"] for p in j["patterns"]]
assert "data_processing_pipeline" in names, names
' "$SCRATCH/config.json"
fi
expect_exit 0 "config --json is the same" -- "$NDF" -c "$CONF" config --json

# Sub-pattern references that come back to their pattern: itself, two and
# three patterns, through each pattern type (a `pattern` step of sequential,
# a `pattern` task of parallel, a meta phase).  Each is a configuration
# error naming every edge with its file:line, never a stack overflow.
P="plugins: { dirs = [ \"$top_builddir/plugins/.libs\" ]; cache_dir = \"$SCRATCH/cache\"; };"
seq() { echo "{ name = \"$1\"; type = \"sequential\"; params = { steps = ( { name = \"s\"; step = \"pattern\"; params = { pattern = \"$2\"; }; } ); }; },"; }
par() { echo "{ name = \"$1\"; type = \"parallel\"; params = { tasks = ( { name = \"t\"; step = \"pattern\"; params = { pattern = \"$2\"; }; } ); }; },"; }
meta() { echo "{ name = \"$1\"; type = \"meta\"; params = { phases = ( { name = \"ph\"; patterns = [ \"$2\" ]; } ); }; },"; }
ok() { echo "{ name = \"$1\"; type = \"sequential\"; params = { steps = ( { name = \"s\"; step = \"noop\"; } ); }; }"; }
for kind in seq par meta; do
    { echo "$P"; echo "patterns = ("; $kind self self; ok fine; echo ");"; } >"$SCRATCH/self-$kind.conf"
    expect_exit 2 "$kind: a pattern that runs itself is refused" -- \
        "$NDF" -c "$SCRATCH/self-$kind.conf" check-config
    expect_match "$err" "^ndf: check-config: $SCRATCH/self-$kind\.conf:3: pattern 'self' runs itself: self -> self \($SCRATCH/self-$kind\.conf:3\)\$" \
        "$kind: the self reference names its file:line"
    expect_exit 2 "$kind: running it is a configuration error, not a crash" -- \
        "$NDF" -c "$SCRATCH/self-$kind.conf" run self

    { echo "$P"; echo "patterns = ("; $kind a b; $kind b a; ok fine; echo ");"; } >"$SCRATCH/two-$kind.conf"
    expect_exit 2 "$kind: a two-pattern cycle is refused" -- \
        "$NDF" -c "$SCRATCH/two-$kind.conf" check-config
    expect_match "$err" "two-$kind\.conf:4: pattern 'a' runs itself: a -> b \(.*two-$kind\.conf:3\); b -> a \(.*two-$kind\.conf:4\)\$" \
        "$kind: both edges are named"
done
# Three patterns, each through a different type.
{ echo "$P"; echo "patterns = ("; seq x y; par y z; meta z x; ok fine; echo ");"; } >"$SCRATCH/three.conf"
expect_exit 2 "a three-pattern cycle across the types is refused" -- \
    "$NDF" -c "$SCRATCH/three.conf" check-config
expect_match "$err" "runs itself: x -> y \(.*:3\); y -> z \(.*:4\); z -> x \(.*:5\)\$" \
    "every edge of the cycle is named"
# A pattern that runs a cyclic one is left out too, and so on up the chain.
{ echo "$P"; echo "patterns = ("; meta b b; meta c b; meta d c; ok fine; echo ");"; } >"$SCRATCH/upchain.conf"
expect_exit 2 "patterns that depend on a cycle are refused" -- "$NDF" -c "$SCRATCH/upchain.conf" check-config
expect_match "$err" ":4: pattern 'b' is left out \(see above\), so 'c' is too\$" "the dependent names the cyclic one"
expect_match "$err" ":5: pattern 'c' is left out \(see above\), so 'd' is too\$" "and so on up the chain"
# A diamond (two paths to one pattern) is not a cycle.
{ echo "$P"; echo "patterns = ("; echo "{ name = \"top\"; type = \"meta\"; params = { phases = ( { name = \"ph\"; patterns = [ \"l\", \"r\" ]; } ); }; },"; seq l fine; seq r fine; ok fine; echo ");"; } >"$SCRATCH/diamond.conf"
expect_exit 0 "a diamond is not a cycle" -- "$NDF" -c "$SCRATCH/diamond.conf" check-config
# A long chain does not exhaust the stack of the check.
{ echo "$P"; echo "patterns = ("; i=0; while [ $i -lt 3000 ]; do seq "c$i" "c$((i + 1))"; i=$((i + 1)); done; seq "c3000" c0; ok fine; echo ");"; } >"$SCRATCH/chain.conf"
expect_exit 2 "a 3001-pattern cycle is found" -- "$NDF" -c "$SCRATCH/chain.conf" check-config
expect_match "$err" "pattern 'c0' runs itself: c0 -> c1 " "the long cycle is reported"
# output_limit has a documented maximum, 64 MiB, for exec and agent steps;
# check-config writes nothing anywhere (no store is opened or created).
cat >"$SCRATCH/olimit.conf" <<EOF
storage: { path = "$SCRATCH/olstate"; };
patterns = (
  { name = "max"; type = "sequential";
    params = { steps = ( { name = "s"; step = "exec";
                           params = { argv = [ "true" ]; output_limit = 67108864; }; } ); }; },
  { name = "over"; type = "sequential";
    params = { steps = ( { name = "s"; step = "exec";
                           params = { argv = [ "true" ]; output_limit = 67108865; }; } ); }; },
  { name = "wide"; type = "sequential";
    params = { steps = ( { name = "s"; step = "exec";
                           params = { argv = [ "true" ]; output_limit = 4294967296; }; } ); }; }
);
EOF
expect_exit 2 "an output_limit above 64 MiB is refused" -- "$NDF" -c "$SCRATCH/olimit.conf" check-config
expect_match "$err" "olimit\.conf:8: .*output_limit.*67108865" "at its line, with its value"
expect_match "$err" "olimit\.conf:11: .*output_limit.*4294967296" "a value beyond 32 bits too, whole"
[ "$(printf '%s\n' "$err" | grep -c 'output_limit')" -eq 2 ] && ok "64 MiB itself is accepted" ||
    not_ok "64 MiB itself is accepted"
[ ! -e "$SCRATCH/olstate" ] && ok "check-config created no state directory" ||
    not_ok "check-config wrote $(find "$SCRATCH/olstate" | head -3)"

finish
