#!/bin/sh
# Step output under hostile sizes: what `ndf logs` prints is exactly the
# newest output_limit bytes, past the 1 MiB the record keeps raw (the rest
# is kept compressed while the step runs, and handed to the store so);
# `status ID --json` carries at most the newest 1 MiB of a stream, so NUL
# bytes (six bytes each in JSON) cannot blow it up; and a step writing
# hundreds of MB through a 64 MiB limit does not hold it raw.
. "$top_srcdir/tests/shell/lib.sh"
STATE=$SCRATCH/state
CONF=$SCRATCH/out.conf
# OUT_MB: the size of the big run (default 300 MB; smaller under sanitizers)
OUT_MB=${NDF_TEST_OUT_MB:-300}
cat >"$CONF" <<EOF2
storage: { path = "$STATE"; };
patterns = (
    { name = "text"; type = "sequential"; params = { steps = ( { name = "s"; step = "exec";
      params = { argv = [ "sh", "-c", "seq 1 700000" ]; output_limit = 3000000; }; } ); }; },
    { name = "nul"; type = "sequential"; params = { steps = ( { name = "s"; step = "exec";
      params = { argv = [ "head", "-c", "4194304", "/dev/zero" ]; output_limit = 8388608; }; } ); }; },
    { name = "flood"; type = "sequential"; params = { steps = ( { name = "s"; step = "exec";
      params = { shell = true; command = "head -c ${OUT_MB}000000 /dev/zero | tr -c x x; echo END";
                 output_limit = 67108864; }; } ); }; }
);
EOF2
last_id() { "$NDF" -c "$CONF" runs "$1" --limit 1 --json | sed -n 's/^\[{"id":"\([^"]*\)".*/\1/p'; }

expect_exit 0 "4.9 MB of text through a 3,000,000-byte limit" -- "$NDF" -c "$CONF" run text
id=$(last_id text)
"$NDF" -c "$CONF" logs "$id" s >"$SCRATCH/text.got"
seq 1 700000 | tail -c 3000000 >"$SCRATCH/text.want"
cmp -s "$SCRATCH/text.got" "$SCRATCH/text.want" && ok "logs prints exactly its newest 3,000,000 bytes" ||
    not_ok "logs differs from the newest 3,000,000 bytes ($(wc -c <"$SCRATCH/text.got") bytes)"
expect_exit 0 "status --json of it" -- "$NDF" -c "$CONF" status "$id" --json
expect_match "$out" "\"stdout_truncated\":$(( $(seq 1 700000 | wc -c) - 1048576 ))[,}]" \
    "counts what its JSON leaves out (the newest 1 MiB is in it)"

expect_exit 0 "4 MiB of NUL bytes through an 8 MiB limit" -- "$NDF" -c "$CONF" run nul
id=$(last_id nul)
n=$("$NDF" -c "$CONF" logs "$id" s | tr -d '\000' | wc -c)
m=$("$NDF" -c "$CONF" logs "$id" s | wc -c)
# (and the newline logs adds to output that does not end in one)
[ "$m" -eq 4194305 ] && [ "$n" -eq 1 ] && ok "logs prints all 4 MiB of NUL bytes" ||
    not_ok "logs printed $m bytes, $n of them not NUL"
"$NDF" -c "$CONF" status "$id" --json >"$SCRATCH/nul.json"
sz=$(wc -c <"$SCRATCH/nul.json")
[ "$sz" -le $((6 * 1048576 + 8192)) ] && ok "status --json stays within six times 1 MiB ($sz bytes)" ||
    not_ok "status --json is $sz bytes"
expect_match "$(cat "$SCRATCH/nul.json")" '"stdout_truncated":3145728[,}]' "and counts the 3 MiB it leaves out"

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
    "$NDF" -c "$CONF" logs "$id" s >"$SCRATCH/flood.got"
    [ "$(wc -c <"$SCRATCH/flood.got")" -eq 67108864 ] && [ "$(tail -c 4 "$SCRATCH/flood.got")" = "END" ] &&
        ok "logs prints its newest 64 MiB, ending in END" ||
        not_ok "logs printed $(wc -c <"$SCRATCH/flood.got") bytes"
    db=$(du -k "$STATE/ndf.db" | cut -f1)
    [ "$db" -lt 8192 ] && ok "stored compressed (the store is $db KiB)" || not_ok "the store is $db KiB"
fi
finish
