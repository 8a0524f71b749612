#!/bin/sh
# Step output under hostile sizes: what `ndf logs` prints is exactly the
# newest output_limit bytes, past the 1 MiB the record keeps raw (the rest
# is kept compressed in a spill file while the step runs, and copied to the
# store from there); `status ID --json` carries at most the newest 64 KiB
# of a stream, so NUL bytes (six bytes each in JSON) cannot blow it up; and
# a step writing hundreds of MB through a 64 MiB limit, compressible or
# random, holds neither the output nor its compressed form in memory;
# nor do `ndf logs` and `status --json` when they read it back; and
# hundreds of tasks each below that bound share one budget.
#
# NDF_TEST_MANY: tasks of 1,000,000 bytes each in the budget check (200)
. "$top_srcdir/tests/shell/lib.sh"
STATE=$SCRATCH/state
CONF=$SCRATCH/out.conf
# OUT_MB: the size of the big run (default 300 MB; smaller under sanitizers)
OUT_MB=${NDF_TEST_OUT_MB:-300}
# RAND_MB: megabytes of random bytes on each of stdout and stderr (default 100)
RAND_MB=${NDF_TEST_RAND_MB:-100}
cat >"$CONF" <<EOF2
storage: { path = "$STATE"; };
patterns = (
    { name = "text"; type = "sequential"; params = { steps = ( { name = "s"; step = "exec";
      params = { argv = [ "sh", "-c", "seq 1 700000" ]; output_limit = 3000000; }; } ); }; },
    { name = "nul"; type = "sequential"; params = { steps = ( { name = "s"; step = "exec";
      params = { argv = [ "head", "-c", "4194304", "/dev/zero" ]; output_limit = 8388608; }; } ); }; },
    { name = "flood"; type = "sequential"; params = { steps = ( { name = "s"; step = "exec";
      params = { shell = true; command = "head -c ${OUT_MB}000000 /dev/zero | tr -c x x; echo END";
                 output_limit = 67108864; }; } ); }; },
    { name = "noise"; type = "sequential"; params = { steps = ( { name = "s"; step = "exec";
      params = { shell = true; output_limit = 67108864; command =
          "head -c ${RAND_MB}000000 /dev/urandom | tee $SCRATCH/noise.out; head -c ${RAND_MB}000000 /dev/urandom | tee $SCRATCH/noise.err >&2"; };
      } ); }; }
);
EOF2
# WIDE: tasks of the wide pattern, each writing past the per-node bound
# (200; 40 under sanitizers, still 2.5 times the record's bound)
if [ -n "${NDF_SAN_CFLAGS:-}" ]; then WIDE=${NDF_TEST_WIDE:-40}; else WIDE=${NDF_TEST_WIDE:-200}; fi
{
    printf 'patterns = ( { name = "wide"; type = "parallel"; params = { tasks = (\n'
    i=1
    while [ $i -le "$WIDE" ]; do
        [ $i -gt 1 ] && printf ',\n'
        printf '{ name = "t%d"; step = "exec"; params = { argv = [ "head", "-c", "70000", "/dev/zero" ]; }; }' $i
        i=$((i + 1))
    done
    printf '\n); }; } );\n'
} >"$SCRATCH/wide.conf"
printf 'storage: { path = "%s"; };\n@include "%s"\n' "$STATE" "$SCRATCH/wide.conf" >"$SCRATCH/wide-main.conf"
last_id() { "$NDF" -c "$CONF" runs "$1" --limit 1 --json | sed -n 's/^\[{"id":"\([^"]*\)".*/\1/p'; }

expect_exit 0 "4.9 MB of text through a 3,000,000-byte limit" -- "$NDF" -c "$CONF" run text
id=$(last_id text)
"$NDF" -c "$CONF" logs "$id" s >"$SCRATCH/text.got"
seq 1 700000 | tail -c 3000000 >"$SCRATCH/text.want"
cmp -s "$SCRATCH/text.got" "$SCRATCH/text.want" && ok "logs prints exactly its newest 3,000,000 bytes" ||
    not_ok "logs differs from the newest 3,000,000 bytes ($(wc -c <"$SCRATCH/text.got") bytes)"
expect_exit 0 "status --json of it" -- "$NDF" -c "$CONF" status "$id" --json
expect_match "$out" "\"stdout_truncated\":$(( $(seq 1 700000 | wc -c) - 65536 ))[,}]" \
    "counts what its JSON leaves out (the newest 64 KiB is in it)"

expect_exit 0 "4 MiB of NUL bytes through an 8 MiB limit" -- "$NDF" -c "$CONF" run nul
id=$(last_id nul)
n=$("$NDF" -c "$CONF" logs "$id" s | tr -d '\000' | wc -c)
m=$("$NDF" -c "$CONF" logs "$id" s | wc -c)
# (and the newline logs adds to output that does not end in one)
[ "$m" -eq 4194305 ] && [ "$n" -eq 1 ] && ok "logs prints all 4 MiB of NUL bytes" ||
    not_ok "logs printed $m bytes, $n of them not NUL"
"$NDF" -c "$CONF" status "$id" --json >"$SCRATCH/nul.json"
sz=$(wc -c <"$SCRATCH/nul.json")
[ "$sz" -le $((6 * 65536 + 8192)) ] && ok "status --json stays within six times 64 KiB ($sz bytes)" ||
    not_ok "status --json is $sz bytes"
expect_match "$(cat "$SCRATCH/nul.json")" '"stdout_truncated":4128768[,}]' "and counts the 4 MiB - 64 KiB it leaves out"

# the whole record is bounded, not only each node: $WIDE tasks at the
# per-node bound (64 KiB of NUL bytes, 384 KiB of JSON each) share 1 MiB
# of output text (6 MiB of JSON at most), and say what they left out
expect_exit 0 "$WIDE parallel tasks, each past the per-node bound" -- \
    "$NDF" -c "$SCRATCH/wide-main.conf" run wide --json
sz=$(printf '%s' "$out" | wc -c)
[ "$sz" -le $((6 * 1048576 + WIDE * 300 + 8192)) ] && ok "run --json of it stays within the record's bound ($sz bytes)" ||
    not_ok "run --json of it is $sz bytes"
expect_match "$out" '"output_omitted":[1-9]' "and says how much the bound left out"
id=$("$NDF" -c "$SCRATCH/wide-main.conf" runs wide --limit 1 --json | sed -n 's/^\[{"id":"\([^"]*\)".*/\1/p')
expect_exit 0 "status --json of it" -- "$NDF" -c "$SCRATCH/wide-main.conf" status "$id" --json
sz=$(printf '%s' "$out" | wc -c)
[ "$sz" -le $((6 * 1048576 + WIDE * 600 + 8192)) ] && ok "status --json of it stays within the bound too ($sz bytes)" ||
    not_ok "status --json of it is $sz bytes"
expect_match "$out" '"output_omitted":[1-9]' "and says so"
n=$("$NDF" -c "$SCRATCH/wide-main.conf" logs "$id" t1 | wc -c)
[ "$n" -eq 65537 ] && ok "logs still prints all a task kept" || not_ok "logs printed $n bytes of t1"

# the peak memory of the run: the old record held a 64 MiB limit raw twice
# over (a sliding window), and the store copied and deflated it whole again
if [ -n "${NDF_SAN_CFLAGS:-}" ] || [ ! -x /usr/bin/time ]; then
    echo "# skipped the peak memory check: sanitizer build or no /usr/bin/time"
else
    /usr/bin/time -f '%M' -o "$SCRATCH/rss" "$NDF" -c "$CONF" run flood >/dev/null 2>&1
    rc=$?
    [ "$rc" -eq 0 ] && ok "${OUT_MB} MB through a 64 MiB limit runs" || not_ok "flood exit $rc"
    rss=$(tail -1 "$SCRATCH/rss")
    [ "$rss" -lt 65536 ] && ok "its peak RSS stays under 64 MiB ($rss KiB)" ||
        not_ok "its peak RSS is $rss KiB"
    id=$(last_id flood)
    # logs reads the stored output in pieces, inflating as it writes: its
    # memory is the store's page cache (16 MiB at most), not the output
    # (it held the whole output and its compressed row)
    /usr/bin/time -f '%M' -o "$SCRATCH/rss" "$NDF" -c "$CONF" logs "$id" s >"$SCRATCH/flood.got"
    rss=$(tail -1 "$SCRATCH/rss")
    [ "$rss" -lt 40960 ] && ok "logs of a 64 MiB output: peak RSS under 40 MiB ($rss KiB)" ||
        not_ok "logs of a 64 MiB output: peak RSS $rss KiB"
    /usr/bin/time -f '%M' -o "$SCRATCH/rss" "$NDF" -c "$CONF" status "$id" --json >"$SCRATCH/flood.json"
    rss=$(tail -1 "$SCRATCH/rss")
    [ "$rss" -lt 40960 ] && ok "status --json of it: peak RSS under 40 MiB ($rss KiB)" ||
        not_ok "status --json of a 64 MiB output: peak RSS $rss KiB"
    expect_match "$(cat "$SCRATCH/flood.json")" '"stdout_truncated":[0-9]+' "and it says what it left out"
    [ "$(wc -c <"$SCRATCH/flood.got")" -eq 67108864 ] && [ "$(tail -c 4 "$SCRATCH/flood.got")" = "END" ] &&
        ok "logs prints its newest 64 MiB, ending in END" ||
        not_ok "logs printed $(wc -c <"$SCRATCH/flood.got") bytes"
    db=$(du -k "$STATE/ndf.db" | cut -f1)
    [ "$db" -lt 8192 ] && ok "stored compressed (the store is $db KiB)" || not_ok "the store is $db KiB"
    # random bytes do not compress: held in memory, even deflated, two
    # streams kept at 64 MiB each cost over 128 MiB (364 MB before spill files)
    /usr/bin/time -f '%M' -o "$SCRATCH/rss" "$NDF" -c "$CONF" run noise >/dev/null 2>&1
    rc=$?
    [ "$rc" -eq 0 ] && ok "2 x ${RAND_MB} MB of random bytes through a 64 MiB limit runs" ||
        not_ok "noise exit $rc"
    rss=$(tail -1 "$SCRATCH/rss")
    [ "$rss" -lt 65536 ] && ok "its peak RSS stays under 64 MiB ($rss KiB)" ||
        not_ok "its peak RSS is $rss KiB"
    id=$(last_id noise)
    for s in out err; do
        tail -c 67108864 "$SCRATCH/noise.$s" >"$SCRATCH/want"
        "$NDF" -c "$CONF" logs "$id" s --stream std$s | head -c "$(wc -c <"$SCRATCH/want")" |
            cmp -s - "$SCRATCH/want" && ok "logs prints exactly the newest 64 MiB of std$s" ||
            not_ok "the stored std$s differs from its newest 64 MiB"
    done
    rm -f "$SCRATCH/noise.out" "$SCRATCH/noise.err" "$SCRATCH/want"

    # the whole execution's raw capture is bounded too: $MANY tasks each
    # keeping 1,000,000 bytes (below the 1 MiB that one stream keeps raw)
    # held 2 MB each in memory until the execution ended (800 of them: 1.6
    # GB); past the 64 MiB budget the streams keep 16 KiB raw and the rest
    # in spill files, and logs still prints every byte
    MANY=${NDF_TEST_MANY:-200}
    seq 1 200000 | head -c 1000000 >"$SCRATCH/mb"
    {
        printf 'storage: { path = "%s"; };\npatterns = ( { name = "many"; type = "parallel"; params = { tasks = (\n' "$STATE"
        i=1
        while [ $i -le "$MANY" ]; do
            [ $i -gt 1 ] && printf ',\n'
            printf '{ name = "t%d"; step = "exec"; params = { argv = [ "cat", "%s" ]; output_limit = 1000000; }; }' $i "$SCRATCH/mb"
            i=$((i + 1))
        done
        printf '\n); }; } );\n'
    } >"$SCRATCH/many.conf"
    /usr/bin/time -f '%M' -o "$SCRATCH/rss" "$NDF" -c "$SCRATCH/many.conf" run many >/dev/null 2>&1
    rc=$?
    [ "$rc" -eq 0 ] && ok "$MANY tasks of 1,000,000 bytes each run" || not_ok "many exit $rc"
    rss=$(tail -1 "$SCRATCH/rss")
    # (200 tasks: 132 MiB; 410 MiB without the budget)
    [ "$rss" -lt 262144 ] && ok "their peak RSS stays under 256 MiB ($rss KiB)" ||
        not_ok "their peak RSS is $rss KiB"
    id=$("$NDF" -c "$SCRATCH/many.conf" runs many --limit 1 --json | sed -n 's/^\[{"id":"\([^"]*\)".*/\1/p')
    { cat "$SCRATCH/mb"; echo; } >"$SCRATCH/want"
    for t in t1 "t$MANY"; do
        "$NDF" -c "$SCRATCH/many.conf" logs "$id" "$t" | cmp -s - "$SCRATCH/want" &&
            ok "logs prints all 1,000,000 bytes of $t" || not_ok "logs of $t differs"
    done
fi
finish
