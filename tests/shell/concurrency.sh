#!/bin/sh
# Exact counts across processes: `ndf serve` running (writing interval
# backups meanwhile), 4 shell loops of
# one-shot `ndf run` and 2 loops of `ndf ctl run` at once on the same
# patterns, one of which runs the other as a sub-pattern.  Afterwards each
# pattern's stored count equals its execution rows equals the runs
# acknowledged (exit 0), exactly.
. "$top_srcdir/tests/shell/lib.sh"

PROBE=$top_builddir/tests/store_probe
ROUNDS=${NDF_CONCURRENCY_ROUNDS:-15}
STATE=$SCRATCH/state
RUN=$SCRATCH/run
mkdir -m 700 "$RUN"
export NDF_RUNTIME_DIR=$RUN
CONF=$SCRATCH/ndf.conf
cat >"$CONF" <<EOF
storage: { path = "$STATE"; history_limit = 1000000; backups = 2; backup_interval = 0.3; };
confidence: { threshold = 0.0; };
patterns = (
    { name = "inner"; type = "sequential"; params = { steps = ( { name = "n"; step = "noop"; } ); }; },
    { name = "outer"; type = "sequential";
      params = { steps = ( { name = "a"; step = "noop"; },
                           { name = "sub"; step = "pattern"; params = { pattern = "inner"; }; } ); }; },
$(awk 'BEGIN { for (i = 0; i < 70; i++) printf "    { name = \"pad%02d\"; type = \"sequential\"; params = { steps = ( { name = \"n\"; step = \"noop\"; } ); }; }%s\n", i, i < 69 ? "," : "" }')
);
EOF
# (72 patterns: the registry reads the stored learning state in one pass,
# from 64 definitions on, which `ndf show` below goes through)
export NDF_CONFIG=$CONF

"$NDF" serve 2>"$SCRATCH/serve.log" &
SERVER=$!
for i in $(seq 1 200); do "$NDF" ctl ping >/dev/null 2>&1 && break; sleep 0.02; done

# loop KIND N: ROUNDS runs alternating inner and outer, one line per
# acknowledged run ("inner" or "outer") in acked.N
loop() {
    k=0
    : >"$SCRATCH/acked.$2"
    while [ $k -lt "$ROUNDS" ]; do
        k=$((k + 1))
        p=$([ $(((k + $2) % 2)) -eq 0 ] && echo outer || echo inner)
        if [ "$1" = ctl ]; then
            "$NDF" ctl run "$p" >/dev/null 2>>"$SCRATCH/errors" && echo "$p" >>"$SCRATCH/acked.$2"
        else
            "$NDF" run "$p" >/dev/null 2>>"$SCRATCH/errors" && echo "$p" >>"$SCRATCH/acked.$2"
        fi
    done
}
for n in 1 2 3 4; do loop run $n & done
for n in 5 6; do loop ctl $n & done
# `wait` would also wait for the server: wait for the loops' files instead
i=0
while [ "$(cat "$SCRATCH"/acked.[1-6] 2>/dev/null | wc -l)" -lt $((ROUNDS * 6)) ] && [ $i -lt 1200 ]; do
    sleep 0.1
    i=$((i + 1))
done
sleep 0.2
kill "$SERVER"
wait "$SERVER"

cat "$SCRATCH"/acked.[1-6] >"$SCRATCH/acked"
total=$(wc -l <"$SCRATCH/acked")
outer=$(grep -c '^outer$' "$SCRATCH/acked")
inner=$(grep -c '^inner$' "$SCRATCH/acked")
[ "$total" -eq $((ROUNDS * 6)) ] && ok "all $total runs were acknowledged" ||
    { not_ok "only $total of $((ROUNDS * 6)) runs acknowledged"; head -5 "$SCRATCH/errors" | sed 's/^/#   /'; }
expect_exit 0 "counts equal execution rows for every pattern" -- "$PROBE" "$STATE" check
expect_match "$("$PROBE" "$STATE" count outer)" "^$outer\$" "outer's count equals its $outer acknowledged runs"
expect_match "$("$PROBE" "$STATE" count inner)" "^$((inner + outer))\$" \
    "inner's count equals its $inner runs plus the $outer it ran inside outer"
expect_match "$("$NDF" runs outer --limit 1000 --json | tr '{' '\n' | grep -c '"pattern":"outer"')" \
    "^$outer\$" "ndf runs lists exactly the acknowledged outer runs"

expect_match "$("$NDF" show outer)" "executions: +$outer \\($outer succeeded" \
    "ndf show (the registry's one-pass read) has outer's count"
expect_match "$("$NDF" show inner)" "executions: +$((inner + outer)) " "and inner's"

# the server's interval backups (storage.backup_interval), written while
# the loops ran, rotated to storage.backups
nb=$(ls "$STATE/backups" 2>/dev/null | grep -c '^ndf-.*\.db\.gz$')
expect_match "$nb" '^2$' "ndf serve wrote interval backups, keeping the newest 2"
expect_match "$(cat "$SCRATCH/serve.log")" "backup written: .*/backups/ndf-" "and logged them"

finish
