#!/bin/sh
# SIGKILL at random moments of `ndf batch` and of `ndf serve` under load
# (4 client loops of `ndf ctl run`, sub-patterns included).  Afterwards:
# every acknowledged execution (a result line printed by batch, an answer
# received by a client) is in the store; none is half-recorded (an ended
# execution without its root node, nodes or outputs without their
# execution, a sub-pattern execution without its parent); RUNNING leftovers
# became CRASHED on the next open; every pattern's count equals its counted
# rows.
#
# The default run kills 10 times each way (some 30 s on a loaded machine);
# NDF_CRASH_KILLS=N kills N times each way (the issue's 200 kills:
# NDF_CRASH_KILLS=100 make check TESTS=tests/shell/crash.sh).
. "$top_srcdir/tests/shell/lib.sh"

KILLS=${NDF_CRASH_KILLS:-10}
PROBE=$top_builddir/tests/store_probe
STATE=$SCRATCH/state
RUN=$SCRATCH/run
mkdir -m 700 "$RUN"
export NDF_RUNTIME_DIR=$RUN
CONF=$SCRATCH/ndf.conf
cat >"$CONF" <<EOF
storage: { path = "$STATE"; history_limit = 1000000; };
confidence: { threshold = 0.0; };
executor: { threads = 4; };
patterns = (
    { name = "nop"; type = "sequential"; params = { steps = ( { name = "n"; step = "noop"; } ); }; },
    { name = "outer"; type = "sequential";
      params = { steps = ( { name = "a"; step = "noop"; },
                           { name = "sub"; step = "pattern"; params = { pattern = "nop"; }; } ); }; },
    { name = "slow"; type = "sequential";
      params = { steps = ( { name = "a"; step = "noop"; },
                           { name = "wait"; step = "sleep"; params = { seconds = 5.0; }; } ); }; },
    { name = "hang"; type = "sequential";
      params = { steps = ( { name = "a"; step = "noop"; },
                           { name = "long"; step = "exec"; params = { shell = true;
                             command = "echo \$\$\$\$ > $SCRATCH/hang.pid; exec sleep 120"; }; } ); }; },
    { name = "wide"; type = "parallel";
      params = { tasks = ( { name = "t1"; step = "noop"; }, { name = "t2"; step = "noop"; },
                           { name = "t3"; step = "pattern"; params = { pattern = "nop"; }; } ); }; }
);
EOF
export NDF_CONFIG=$CONF
ACKED=$SCRATCH/acked
: >"$ACKED"
# a pseudo-random delay in seconds below $1, different each call
n=0
delay() { n=$((n + 1)); awk -v s="$$$n" -v m="$1" 'BEGIN { srand(s); printf "%.3f", rand() * m }'; }

# ---- batch ----
# A batch prints its results when all its lines have run: small batches,
# so that some end before their kill and are acknowledged.
awk 'BEGIN { for (i = 0; i < 600; i++) {
    p = i % 10 == 0 ? "outer" : i % 10 == 5 ? "wide" : "nop"
    printf "{\"pattern\":\"%s\",\"context\":{\"domain\":\"d%d\"}}\n", p, i % 3 } }' >"$SCRATCH/batch.jsonl"
# How long a whole batch of 40 lines takes here, now: the kills fall within
# three times that (at least 0.8 s), so that a loaded machine still sees
# batches end before their kill as well as batches killed midway.
head -n 40 "$SCRATCH/batch.jsonl" >"$SCRATCH/batch.part"
t0=$(date +%s.%N)
"$NDF" batch "$SCRATCH/batch.part" >"$SCRATCH/batch.out" 2>>"$SCRATCH/batch.err"
sed -n 's/.*"id":"\([^"]*\)".*}$/\1/p' "$SCRATCH/batch.out" >>"$ACKED"
bmax=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { m = 3 * (b - a); printf "%.3f", (m > 0.8 ? m : 0.8) }')
echo "# a 40-line batch took about a third of $bmax s"
i=0
killed=0
while [ $i -lt "$KILLS" ]; do
    i=$((i + 1))
    # 40 to 600 lines
    head -n "$(awk -v s="$$$i" 'BEGIN { srand(s); print 40 + int(rand() * 560) }')" \
        "$SCRATCH/batch.jsonl" >"$SCRATCH/batch.part"
    "$NDF" batch "$SCRATCH/batch.part" >"$SCRATCH/batch.out" 2>>"$SCRATCH/batch.err" &
    pid=$!
    sleep "$(delay "$bmax")"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    [ "$(wc -l <"$SCRATCH/batch.out")" -lt "$(wc -l <"$SCRATCH/batch.part")" ] && killed=$((killed + 1))
    # a line printed is acknowledged; a torn last line is not
    sed -n 's/.*"id":"\([^"]*\)".*}$/\1/p' "$SCRATCH/batch.out" >>"$ACKED"
done
nb=$(wc -l <"$ACKED")
echo "# batch: $killed of $KILLS runs were killed before they ended"
[ "$nb" -gt 0 ] && ok "batch: $nb executions acknowledged across $KILLS runs and the calibration" ||
    not_ok "batch acknowledged nothing in $KILLS runs"

# ---- serve under load ----
start_server() {
    "$NDF" serve --grace 1 2>>"$SCRATCH/serve.log" &
    SERVER=$!
    for w in $(seq 1 200); do
        "$NDF" ctl ping >/dev/null 2>&1 && return 0
        sleep 0.02
    done
    return 1
}
# client loop $1: ctl runs until $SCRATCH/stop exists, each answered id
# appended to acked.$1 (an answer is an acknowledgement)
client() {
    k=0
    while [ ! -e "$SCRATCH/stop" ]; do
        k=$((k + 1))
        case $1 in 5) p=slow ;; *) case $(( (k + $1) % 4 )) in 0) p=outer ;; 1) p=wide ;; *) p=nop ;; esac ;; esac
        "$NDF" ctl run "$p" --json 2>/dev/null | sed -n 's/^{"id":"\([^"]*\)".*/\1/p' >>"$SCRATCH/acked.$1"
    done
}
rm -f "$SCRATCH/stop"
# client 5 keeps a 5 s execution running, so every kill leaves one RUNNING
for c in 1 2 3 4 5; do : >"$SCRATCH/acked.$c"; client $c & done
i=0
up=0
while [ $i -lt "$KILLS" ]; do
    i=$((i + 1))
    start_server && up=$((up + 1))
    sleep "$(delay 0.5)"
    # at least once, certainly with the slow one running
    [ $i -eq 1 ] && sleep 0.5
    kill -9 "$SERVER" 2>/dev/null
    wait "$SERVER" 2>/dev/null
done
touch "$SCRATCH/stop"
wait
[ "$up" -eq "$KILLS" ] && ok "serve: started and killed $KILLS times" ||
    not_ok "serve answered only $up of $KILLS starts"
cat "$SCRATCH"/acked.[1-5] >>"$ACKED"
ns=$(($(wc -l <"$ACKED") - nb))
[ "$ns" -gt 0 ] && ok "serve: $ns executions acknowledged to clients" ||
    not_ok "no client run was answered"

# ---- a step's processes do not outlive a killed ndf ----
# Without a cgroup only the store knows the step's process group: the next
# ndf that opens the store marks the execution CRASHED and kills the group.
rm -f "$SCRATCH/hang.pid"
NDF_CGROUP=off "$NDF" run hang 2>"$SCRATCH/hang.err" &
pid=$!
for w in $(seq 1 250); do [ -s "$SCRATCH/hang.pid" ] && break; sleep 0.02; done
spid=$(cat "$SCRATCH/hang.pid" 2>/dev/null)
sleep 0.5 # the group's row is queued, not waited for
kill -9 "$pid"
wait "$pid" 2>/dev/null
if [ -n "$spid" ] && kill -0 "$spid" 2>/dev/null; then
    ok "the step's process ($spid) outlived the SIGKILLed ndf run (no cgroup)"
    expect_exit 0 "the next command recovers the store" -- "$NDF" runs hang --limit 1 --json
    expect_match "$err" "killed [1-9][0-9]* leftover process" "recovery says it killed the step's leftovers"
    gone=0
    for w in $(seq 1 100); do kill -0 "$spid" 2>/dev/null || { gone=1; break; }; sleep 0.02; done
    [ $gone -eq 1 ] && ok "the step's process is gone" || not_ok "the step's process $spid still runs"
    expect_match "$out" '"status":"CRASHED"' "the execution is CRASHED"
    expect_match "$out" '"duration":(0\.0*[1-9]|[1-9])' \
        "its duration runs to the last the store heard of it (its last step's start), not 0"
else
    not_ok "the step did not start or did not outlive ndf (pid '$spid')"
    [ -n "$spid" ] && kill -9 "$spid" 2>/dev/null
fi

# ---- what the store holds ----
expect_exit 0 "the store's invariants hold after the kills" -- "$PROBE" "$STATE" check
echo "# $out"
expect_match "$out" 'running=0 ' "no execution is left RUNNING: leftovers became CRASHED"
expect_match "$out" 'crashed=[1-9]' "the killed servers' running executions are CRASHED"
"$PROBE" "$STATE" ids | sort >"$SCRATCH/stored"
sort -u "$ACKED" >"$SCRATCH/acked.sorted"
missing=$(comm -23 "$SCRATCH/acked.sorted" "$SCRATCH/stored" | wc -l)
[ "$missing" -eq 0 ] && ok "every acknowledged execution is stored" ||
    not_ok "$missing acknowledged executions are missing: $(comm -23 "$SCRATCH/acked.sorted" "$SCRATCH/stored" | head -3 | tr '\n' ' ')"
# the server's RUNNING rows of killed runs: CRASHED, naming no running node
expect_exit 0 "ndf runs --status CRASHED" -- "$NDF" runs --status CRASHED --limit 1 --json

finish
