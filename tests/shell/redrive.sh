#!/bin/sh
# `ndf redrive`: for each pattern type a run that fails at a chosen step,
# then a redrive once the cause is fixed.  Every step appends its name to a
# log, which proves that completed steps do not run again and the rest do;
# the new execution links to the old one.  Then the refusals (rolled back,
# succeeded, sub-pattern, unknown id), --from-start, a redrive of a redrive,
# concurrent redrives of one execution (one runs), --json, and the socket
# verb (`ndf ctl redrive`).
. "$top_srcdir/tests/shell/lib.sh"

STATE=$SCRATCH/state
LOG=$SCRATCH/log
OKF=$SCRATCH/ok
CONF=$SCRATCH/ndf.conf
# step NAME [fails unless $OKF exists]
step() {
    if [ "${2:-}" = fails ]; then
        printf '{ name = "%s"; step = "exec"; params = { shell = true; command = "echo %s >> %s; test -e %s"; }; }' \
            "$1" "$1" "$LOG" "$OKF"
    else
        printf '{ name = "%s"; step = "exec"; params = { shell = true; command = "echo %s >> %s"; }; }' \
            "$1" "$1" "$LOG"
    fi
}
task() { # NAME [fails] [depends_on]
    printf '{ name = "%s"; step = "exec"; %s params = { shell = true; command = "echo %s >> %s%s"; }; }' \
        "$1" "${3:+depends_on = [ \"$3\" ];}" "$1" "$LOG" "$([ "${2:-}" = fails ] && echo "; test -e $OKF")"
}
cat >"$CONF" <<EOF
storage: { path = "$STATE"; };
confidence: { threshold = 0.0; };
patterns = (
    { name = "seq"; type = "sequential";
      params = { rollback_enabled = false;
                 steps = ( $(step s1), $(step s2), $(step s3 fails), $(step s4) ); }; },
    { name = "seqrb"; type = "sequential";
      params = { steps = ( $(step r1), $(step r2 fails) ); }; },
    { name = "par"; type = "parallel";
      params = { rollback_enabled = false; failure_tolerance = 0.0; max_concurrent = 1;
                 tasks = ( $(task t1), $(task t2 fails), $(task t3 "" t2), $(task t4) ); }; },
    { name = "m1"; type = "sequential"; params = { steps = ( $(step m1) ); }; },
    { name = "m2"; type = "sequential"; params = { rollback_enabled = false;
                 steps = ( $(step m2a), $(step m2b fails) ); }; },
    { name = "m3"; type = "sequential"; params = { steps = ( $(step m3) ); }; },
    { name = "slowfix"; type = "sequential";
      params = { rollback_enabled = false;
                 steps = ( $(step f1),
                           { name = "f2"; step = "exec"; params = { shell = true;
                             command = "test -e $OKF || exit 1; sleep 1; echo f2 >> $LOG"; }; } ); }; },
    { name = "meta"; type = "meta";
      params = { rollback_strategy = "pattern_level";
                 phases = ( { name = "p1"; patterns = [ "m1" ]; },
                            { name = "p2"; patterns = [ "m1", "m2" ]; },
                            { name = "p3"; patterns = [ "m3" ]; } ); }; }
);
EOF
ndf() { "$NDF" -c "$CONF" "$@"; }
# The id of the newest execution of pattern $1.
newest() { ndf runs "$1" --limit 1 --json | sed -n 's/^\[{"id":"\([^"]*\)".*/\1/p'; }
# The log's lines joined by spaces.
logged() { tr '\n' ' ' <"$LOG" | sed 's/ $//'; }

# ---- sequential: from the failed step ----
rm -f "$LOG" "$OKF"
expect_exit 1 "seq fails at s3" -- ndf run seq
first=$(newest seq)
expect_match "$(logged)" '^s1 s2 s3$' "seq ran s1 s2 s3 and stopped"
: >"$LOG"
touch "$OKF"
expect_exit 0 "seq redrive succeeds" -- ndf redrive "$first"
expect_match "$(logged)" '^s3 s4$' "seq redrive ran s3 and s4 only (s1, s2 reused)"
expect_match "$err" "2 node\(s\) reused" "the redrive says how many nodes it reused"
second=$(newest seq)
expect_exit 0 "status of the redrive" -- ndf status "$second"
expect_match "$out" "redrive of $first" "the redrive links to the original"
expect_match "$out" "by redrive" "its origin is redrive"
expect_match "$out" "step s1 .*reused from execution $first" "s1 is marked reused"
expect_exit 0 "runs --json" -- ndf runs seq --json
expect_match "$out" "\"redrive_of\":\"$first\"" "runs --json has redrive_of"
# the builds it ran on: the pattern type's plugin and every step's
expect_match "$(ndf export seq | tr -d ' \t\n')" \
    '"plugins":\{"type":"sequential","plugin":"sequential","version":"[^"]*","sha256":"[0-9a-f]{64}","steps":\[\{"step":"exec","plugin":"steps","version":"[^"]*","sha256":"[0-9a-f]{64}"\}\]\}' \
    "an execution records the plugin builds (hashes) of its pattern type and of its steps"

# ---- refusals ----
expect_exit 2 "a succeeded execution is not redriven" -- ndf redrive "$second"
expect_match "$err" "succeeded: only a FAILED" "and says why"
expect_exit 3 "an unknown id" -- ndf redrive no-such-execution
expect_exit 2 "redrive takes one id" -- ndf redrive
rm -f "$OKF"
: >"$LOG"
expect_exit 1 "seqrb fails and rolls back" -- ndf run seqrb
rb=$(newest seqrb)
expect_exit 2 "a rolled-back execution is not redriven" -- ndf redrive "$rb"
expect_match "$err" "was rolled back .*--from-start" "it says why and what to do"
touch "$OKF"
: >"$LOG"
expect_exit 0 "--from-start reruns a rolled-back one" -- ndf redrive --from-start "$rb"
expect_match "$(logged)" '^r1 r2$' "--from-start ran every step"

# ---- parallel: the failed and skipped tasks ----
rm -f "$OKF"
: >"$LOG"
expect_exit 1 "par fails at t2" -- ndf run par
pfirst=$(newest par)
expect_match "$(logged)" '^t1 t2$' "par ran t1, t2 failed: t3 (after t2) and t4 never started"
touch "$OKF"
: >"$LOG"
expect_exit 0 "par redrive succeeds" -- ndf redrive "$pfirst" --json
expect_match "$(logged)" '^t2 t3 t4$|^t2 t4 t3$' "par redrive ran the failed t2 and the skipped t3 and t4 only"
expect_match "$out" "\"redrive_of\":\"$pfirst\",\"reused\":1\}$" "--json links and counts reuse"

# ---- meta: from the failed phase ----
rm -f "$OKF"
: >"$LOG"
expect_exit 1 "meta fails in phase p2" -- ndf run meta
mfirst=$(newest meta)
expect_match "$(logged)" '^m1 m1 m2a m2b$' "meta ran p1, then p2 until m2b failed"
touch "$OKF"
: >"$LOG"
expect_exit 0 "meta redrive succeeds" -- ndf redrive "$mfirst"
expect_match "$(logged)" '^m1 m2a m2b m3$' "meta redrive reused p1 and reran p2 whole, then p3"
msecond=$(newest meta)
# after a meta run, the last run is the meta's, not its last sub-pattern's
expect_exit 0 "runs after a meta run" -- ndf runs --json --limit 1
expect_match "$out" "^\\[\\{\"id\":\"$msecond\"" "runs lists the meta run first, as the README's last-run idiom reads it"
expect_exit 0 "status with no ID after a meta run" -- ndf status --json
expect_match "$out" "^\\{\"id\":\"$msecond\"" "status shows the meta run, not a sub-pattern's"
expect_exit 0 "runs --all" -- ndf runs --all --json --limit 1
expect_match "$out" "^\\[\\{\"id\":\"[^\"]*\",\"pattern\":\"m3\".*\"parent_id\":\"$msecond\"" "runs --all lists sub-pattern executions too"
# the sub-pattern executions of the original: one is not redriven alone
sub=$(ndf runs m2 --json --limit 5 | tr '{' '\n' | grep "\"parent_id\":\"$mfirst\"" |
    sed -n 's/^"id":"\([^"]*\)".*/\1/p' | head -1)
if [ -n "$sub" ]; then
    expect_exit 2 "a sub-pattern execution is not redriven alone" -- ndf redrive "$sub"
    expect_match "$err" "ran as a sub-pattern of $mfirst" "it names the parent"
else
    not_ok "no sub-pattern execution of $mfirst was found"
fi
# p1's m1 ran once in the redrive's phase p2 only: counts equal rows
expect_exit 0 "status of the meta redrive" -- ndf status "$msecond"
expect_match "$out" "pattern m1 .*reused from execution $mfirst" "p1's sub-pattern is reused"

# ---- a redrive of a redrive ----
: >"$LOG"
rm -f "$OKF"
expect_exit 1 "seq fails again" -- ndf run seq
a=$(newest seq)
expect_exit 1 "its redrive fails too (still broken)" -- ndf redrive "$a"
b=$(newest seq)
expect_match "$(logged)" '^s1 s2 s3 s3$' "the failing redrive reran only s3"
touch "$OKF"
expect_exit 0 "the redrive of the redrive succeeds" -- ndf redrive "$b"
expect_match "$(logged)" '^s1 s2 s3 s3 s3 s4$' "and reran only s3 and s4"
expect_exit 2 "the chain's first execution is not redriven again" -- ndf redrive "$a"
expect_match "$err" "already redriven by execution .*which succeeded" "it names the redrive that did it"

# ---- redrives of one execution at once: one runs, the others are refused ----
rm -f "$OKF"
: >"$LOG"
expect_exit 1 "slowfix fails at f2" -- ndf run slowfix
sf=$(newest slowfix)
touch "$OKF"
: >"$LOG"
for i in 1 2 3 4; do
    (ndf redrive "$sf" >/dev/null 2>"$SCRATCH/rd.$i"; echo $? >"$SCRATCH/rd.$i.rc") &
done
wait
won=0 lost=0
for i in 1 2 3 4; do
    case $(cat "$SCRATCH/rd.$i.rc") in
    0) won=$((won + 1)) ;;
    2) grep -q "already being redriven by execution\|already redriven by execution" "$SCRATCH/rd.$i" &&
        lost=$((lost + 1)) ;;
    esac
done
expect_match "$won/$lost" '^1/3$' "of 4 concurrent redrives one ran and 3 were refused (exit 2, named)"
expect_match "$(logged)" '^f2$' "the redriven step ran once"
expect_exit 2 "a redrive after the successful one is refused" -- ndf redrive "$sf"
expect_match "$err" "already redriven by execution .*which succeeded" "and says by which"
expect_exit 0 "runs" -- ndf runs slowfix --json
expect_match "$(printf '%s' "$out" | grep -o '"redrive_of":"'"$sf"'"' | wc -l | tr -d ' ')" '^1$' \
    "one redrive of it is recorded"

# ---- the socket verb ----
RUN=$SCRATCH/run
mkdir -m 700 "$RUN"
export NDF_RUNTIME_DIR=$RUN
"$NDF" -c "$CONF" serve 2>"$SCRATCH/serve.log" &
SERVER=$!
for i in $(seq 1 100); do
    "$NDF" -c "$CONF" ctl ping >/dev/null 2>&1 && break
    sleep 0.05
done
rm -f "$OKF"
: >"$LOG"
expect_exit 1 "ctl run seq fails" -- ndf ctl run seq
c1=$(newest seq)
touch "$OKF"
expect_exit 0 "ctl redrive succeeds" -- ndf ctl redrive "$c1"
expect_match "$err" "2 node\(s\) reused" "served: the same report"
expect_match "$(logged)" '^s1 s2 s3 s3 s4$' "served redrive reran s3 and s4 only"
c2=$(newest seq)
expect_exit 0 "status of the served redrive" -- ndf status "$c2"
expect_match "$out" "redrive of $c1" "served: linked to the original"
expect_exit 2 "ctl redrive refuses a succeeded one" -- ndf ctl redrive "$c2"
# ctl show reads the store: runs by other processes count at once
expect_exit 0 "ctl show" -- ndf ctl show seq --json
before=$(printf '%s' "$out" | sed -n 's/.*"statistics":{"executions":\([0-9]*\).*/\1/p')
expect_exit 0 "a one-shot run beside the server" -- ndf run seq
expect_exit 0 "and another" -- ndf run seq
expect_exit 0 "ctl show again" -- ndf ctl show seq --json
after=$(printf '%s' "$out" | sed -n 's/.*"statistics":{"executions":\([0-9]*\).*/\1/p')
expect_match "$before+2=$after" "^$before\\+2=$((before + 2))\$" \
    "ctl show counts the executions other processes recorded (the store's counts)"
kill "$SERVER"
wait "$SERVER"

finish
