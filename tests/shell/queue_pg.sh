#!/bin/sh
# The work queue of a shared PostgreSQL store, end to end: ndf submit (and
# ndf ctl submit), ndf wait on a queued id, three workers (ndf serve
# --worker) on one machine running NDF_QUEUE_N (default 60) queued
# executions of mixed patterns while one worker is SIGKILLed and another's
# database connections are cut (pg_terminate_backend): every item ends
# exactly once as a completed record, counts equal execution rows, and no
# step an execution had recorded as completed ran again when another
# worker took it over; then a worker paused (SIGSTOP) past its lease: its
# items are taken over, nothing it finishes late is recorded, and once
# resumed it starts no step of them (each step checks the claim's local
# deadline).  Every execution has
# origin queue (ndf runs --origin).  Then ndf workers, ndf ctl drain while
# the worker runs items with more queued, and a clean stop.  Then a worker
# paused past its lease with a completed step that has an undo: resumed, it
# undoes nothing and starts no step (the takeover reused them).  Last, ndf
# workers shows the live LOAD of a worker whose heartbeat is 20 s apart.
# On SQLite, submit says the queue needs PostgreSQL.
. "$top_srcdir/tests/shell/lib.sh"
. "$top_srcdir/tests/shell/pglib.sh"

N=${NDF_QUEUE_N:-60}
LEASE=${NDF_QUEUE_LEASE:-4}
LOG=$SCRATCH/steps.log
: >"$LOG"
# "ITEM STEP TIME PID" of each seq3 step as it starts: the ndf process
# that started it (NDF_STEP is "PID.N") and when
TLOG=$SCRATCH/starts.log
: >"$TLOG"

# write_conf FILE STORAGE-LINE [SERVER-KEYS]: patterns whose steps append "ITEM STEP"
# to $LOG, so that a step that ran twice for one item shows
write_conf() {
    cat >"$1" <<EOF2
$2
confidence: { threshold = 0.0; };
executor: { threads = 3; };
server: { worker_lease = $LEASE; worker_poll = 0.1; ${3:-} };
patterns = (
    { name = "seq3"; type = "sequential";
      params = { steps = (
        { name = "a"; step = "exec"; params = { command = "echo \"\$\$NDF_ATTR_ITEM a \$\$(date +%s.%N) \$\${NDF_STEP%%.*}\" >> $TLOG; echo \"\$\$NDF_ATTR_ITEM a\" >> $LOG; sleep 0.1"; shell = true; }; },
        { name = "b"; step = "exec"; params = { command = "echo \"\$\$NDF_ATTR_ITEM b \$\$(date +%s.%N) \$\${NDF_STEP%%.*}\" >> $TLOG; echo \"\$\$NDF_ATTR_ITEM b\" >> $LOG; sleep 1"; shell = true; }; },
        { name = "c"; step = "exec"; params = { command = "echo \"\$\$NDF_ATTR_ITEM c \$\$(date +%s.%N) \$\${NDF_STEP%%.*}\" >> $TLOG; echo \"\$\$NDF_ATTR_ITEM c\" >> $LOG; sleep 0.5"; shell = true; }; } ); }; },
    { name = "par2"; type = "parallel";
      params = { tasks = (
        { name = "x"; step = "exec"; params = { command = "echo \"\$\$NDF_ATTR_ITEM x\" >> $LOG; sleep 0.1"; shell = true; }; },
        { name = "y"; step = "exec"; params = { command = "echo \"\$\$NDF_ATTR_ITEM y\" >> $LOG"; shell = true; }; } ); }; },
    { name = "quick"; type = "sequential";
      params = { steps = ( { name = "q"; step = "exec"; params = { command = "echo \"\$\$NDF_ATTR_ITEM q\" >> $LOG"; shell = true; }; } ); }; }
);
EOF2
}

# SQLite: the queue is refused, saying what to set, and no database is made
write_conf "$SCRATCH/lite.conf" "storage: { path = \"$SCRATCH/lite\"; };"
expect_exit 2 "submit on an SQLite store exits 2" -- "$NDF" -c "$SCRATCH/lite.conf" submit seq3
expect_match "$err" '^ndf: submit: the work queue needs .*storage.backend = "postgresql"' \
    "and says the queue needs storage.backend = \"postgresql\""
[ ! -e "$SCRATCH/lite/ndf.db" ] && ok "no SQLite database was made to refuse it" ||
    not_ok "submit created an SQLite database"
expect_exit 2 "workers on an SQLite store exits 2" -- "$NDF" -c "$SCRATCH/lite.conf" workers
expect_exit 2 "a bad --queue-priority" -- "$NDF" -c "$SCRATCH/lite.conf" submit seq3 --queue-priority x
# numbers are read whole, and within their range, before the store is asked
for v in " 5" 5x +5 1000001 -1000001 0x10 5.0 ""; do
    expect_exit 2 "--queue-priority '$v' is refused" -- "$NDF" -c "$SCRATCH/lite.conf" submit seq3 --queue-priority "$v"
    expect_match "$err" "^ndf: submit: --queue-priority .*: expected a whole number from -1000000 to 1000000\$" \
        "naming the option and its range"
done
for v in 1e300 nan inf " 5" -1 0x10; do
    expect_exit 2 "submit --timeout '$v' is refused" -- "$NDF" -c "$SCRATCH/lite.conf" submit seq3 --timeout "$v"
    expect_match "$err" "^ndf: submit: --timeout .*: expected a number of seconds from 0 to 1000000000\$" \
        "naming the option and its range"
    expect_exit 2 "delegate --submit --timeout '$v' is refused" -- "$NDF" -c "$SCRATCH/lite.conf" delegate --submit --timeout "$v"
    expect_match "$err" "^ndf: delegate: --timeout .*: expected a number of seconds above 0, at most 1000000000\$" \
        "the same way"
done
printf '{"attributes":{"v":"abc\\u0000def"}}\n' >"$SCRATCH/nul.json"
expect_exit 2 "submit --context with \\u0000 in a value" -- "$NDF" -c "$SCRATCH/lite.conf" submit seq3 --context "$SCRATCH/nul.json"
expect_match "$err" "^ndf: submit: .*nul.json: line 1, column 24: a string holds .u0000 \(NUL\), which no attribute name or value may hold\$" \
    "is refused, saying where, not cut short"
expect_exit 2 "delegate --context with it" -- "$NDF" -c "$SCRATCH/lite.conf" delegate --submit --context "$SCRATCH/nul.json"
expect_match "$err" "u0000 \(NUL\)" "refused the same way"
expect_exit 2 "run --context with it" -- "$NDF" -c "$SCRATCH/lite.conf" run quick --context "$SCRATCH/nul.json"
expect_match "$err" "u0000 \(NUL\)" "refused the same way"
printf '{"pattern":"quick","context":{"attributes":{"v":"a\\u0000b"}}}\n' >"$SCRATCH/nul.jsonl"
expect_exit 1 "batch with it" -- "$NDF" -c "$SCRATCH/lite.conf" batch "$SCRATCH/nul.jsonl"
expect_match "$out" '"status":"invalid","error":"[^"]*nul.jsonl:1: column 51: a string holds ..u0000 \(NUL\)' \
    "refuses the line, saying where"
expect_exit 2 "no pattern" -- "$NDF" -c "$SCRATCH/lite.conf" submit
expect_exit 2 "a control character in the name" -- "$NDF" -c "$SCRATCH/lite.conf" submit "$(printf 'a\033b')"
expect_exit 2 "a name that is not UTF-8" -- "$NDF" -c "$SCRATCH/lite.conf" submit "$(printf 'a\377b')"
expect_match "$err" "cannot be a pattern's name .*UTF-8" "says why"

# a worker needs the shared store; a server that is no worker cannot drain
expect_exit 2 "serve --worker on an SQLite store exits 2" -- \
    "$NDF" -c "$SCRATCH/lite.conf" serve --worker --no-watch --socket "$SCRATCH/lite.sock"
expect_match "$err" 'a worker claims from the work queue of a shared store: set storage.backend = "postgresql"' \
    "and says why"
"$NDF" -c "$SCRATCH/lite.conf" serve --no-watch --socket "$SCRATCH/lite.sock" 2>"$SCRATCH/lite.log" &
LS=$!
t=0
until "$NDF" -c "$SCRATCH/lite.conf" ctl --socket "$SCRATCH/lite.sock" ping >/dev/null 2>&1 || [ "$t" -ge 200 ]; do
    sleep 0.05
    t=$((t + 1))
done
expect_exit 2 "drain on a server that is no worker exits 2" -- \
    "$NDF" -c "$SCRATCH/lite.conf" ctl --socket "$SCRATCH/lite.sock" drain
expect_match "$err" 'not a queue worker' "and says so"
expect_exit 2 "drain with a bad --timeout" -- \
    "$NDF" -c "$SCRATCH/lite.conf" ctl --socket "$SCRATCH/lite.sock" drain --timeout x
expect_exit 2 "ctl delegate --submit is refused" -- \
    "$NDF" -c "$SCRATCH/lite.conf" ctl --socket "$SCRATCH/lite.sock" delegate --submit
for v in " 5" 5x 1000001; do
    expect_exit 2 "ctl submit --queue-priority '$v'" -- \
        "$NDF" -c "$SCRATCH/lite.conf" ctl --socket "$SCRATCH/lite.sock" submit quick --queue-priority "$v"
    expect_match "$err" "^ndf: ctl: submit: --queue-priority .*: expected a whole number" "is refused by the server too"
done
expect_exit 2 "ctl submit --timeout 1e300" -- \
    "$NDF" -c "$SCRATCH/lite.conf" ctl --socket "$SCRATCH/lite.sock" submit quick --timeout 1e300
expect_match "$err" "^ndf: ctl: submit: --timeout 1e300: expected a number of seconds from 0 to 1000000000" "likewise"
expect_exit 2 "ctl run --timeout nan" -- \
    "$NDF" -c "$SCRATCH/lite.conf" ctl --socket "$SCRATCH/lite.sock" run quick --timeout nan
expect_match "$err" "^ndf: ctl: run: --timeout nan: expected a number of seconds above 0, at most 1000000000" "likewise"
cat >"$SCRATCH/req1" <<'EOF2'
{"cmd":"run","pattern":"quick","timeout":1e300}
EOF2
cat >"$SCRATCH/req2" <<'EOF2'
{"cmd":"run","pattern":"quick","context":{"attributes":{"v":"a\u0000b"}}}
EOF2
expect_exit 0 "a request with a timeout of 1e300" -- \
    "$NDF" -c "$SCRATCH/lite.conf" ctl --socket "$SCRATCH/lite.sock" send <"$SCRATCH/req1"
expect_match "$out" '"ok":false.*timeout.* must be from 0 to 1000000000 seconds' "is refused by the protocol"
expect_exit 0 "a request whose context holds \\u0000" -- \
    "$NDF" -c "$SCRATCH/lite.conf" ctl --socket "$SCRATCH/lite.sock" send <"$SCRATCH/req2"
expect_match "$out" '"ok":false.*u0000 \(NUL\)' "is refused by the protocol"
# a member the verb does not take is refused, not ignored (drain's
# options go in "args")
for v in 1e300 '"abc"' 5; do
    printf '{"cmd":"drain","timeout":%s}\n' "$v" >"$SCRATCH/req3"
    expect_exit 0 "a drain request with a \"timeout\" member of $v" -- \
        "$NDF" -c "$SCRATCH/lite.conf" ctl --socket "$SCRATCH/lite.sock" send <"$SCRATCH/req3"
    expect_match "$out" '"ok":false,"error":"bad request: \\"drain\\" takes no member \\"timeout\\"' \
        "is refused by the protocol"
done
expect_exit 2 "drain --timeout 1e300" -- \
    "$NDF" -c "$SCRATCH/lite.conf" ctl --socket "$SCRATCH/lite.sock" drain --timeout 1e300
expect_exit 2 "ctl submit on an SQLite store" -- \
    "$NDF" -c "$SCRATCH/lite.conf" ctl --socket "$SCRATCH/lite.sock" submit quick
expect_match "$err" 'storage.backend = "postgresql"' "says the queue needs PostgreSQL"
expect_exit 2 "delegate --submit on an SQLite store" -- "$NDF" -c "$SCRATCH/lite.conf" delegate --submit
# an answer that is slow to come: ctl waits on while the server answers a
# ping (a run longer than the silence), gives up when it does not (stopped)
expect_exit 0 "ctl run of a run longer than the silence waits for it" -- \
    env NDF_CTL_SILENCE=0.3 "$NDF" -c "$SCRATCH/lite.conf" ctl --socket "$SCRATCH/lite.sock" run seq3 --attr item=litectl -q
kill -STOP "$LS"
expect_exit 5 "ctl list on a stopped server exits 5" -- \
    env NDF_CTL_SILENCE=0.5 "$NDF" -c "$SCRATCH/lite.conf" ctl --socket "$SCRATCH/lite.sock" list
expect_match "$err" "^ndf: ctl: list: the server at .*lite.sock has not answered for 0.5s and does not answer a ping: it is stopped or frozen" \
    "saying the server does not answer"
expect_exit 5 "ctl send to a stopped server exits 5" -- \
    env NDF_CTL_SILENCE=0.5 "$NDF" -c "$SCRATCH/lite.conf" ctl --socket "$SCRATCH/lite.sock" send <"$SCRATCH/req3"
expect_match "$err" "^ndf: ctl: send: the server at .*lite.sock has not answered for 0.5s and does not answer a ping" \
    "the same way"
kill -CONT "$LS"
kill -TERM "$LS"
wait "$LS"

pg_start
pg_sql postgres "CREATE DATABASE ndfq" >/dev/null
CI="host=$PG_DIR user=postgres dbname=ndfq"
for w in 1 2 3; do
    write_conf "$SCRATCH/w$w.conf" "storage: { path = \"$SCRATCH/state\"; backend = \"postgresql\"; conninfo = \"$CI application_name=ndfw$w\"; };" \
        "socket = \"$SCRATCH/w$w.sock\";"
done
CONF=$SCRATCH/w1.conf
ndf() { "$NDF" -c "$CONF" "$@"; }

# submit and wait before any worker runs
expect_exit 0 "submit prints an id" -- ndf submit quick --attr item=first
first=$out
expect_match "$first" '^q[0-9a-f]{24}$' "the id is a queue id"
expect_exit 5 "wait --timeout 0 on a queued id exits 5" -- ndf wait "$first" --timeout 0 --json
expect_match "$out" '"status":"QUEUED","queue":"QUEUED","done":false' "and says it is queued"
expect_exit 0 "submit --json" -- ndf submit quick --attr item=second --queue-priority 5 --json
expect_match "$out" '^\{"id":"q[0-9a-f]{24}","pattern":"quick","priority":5,"state":"QUEUED"\}$' \
    "--json gives id, pattern, priority and state"
second=$(printf '%s' "$out" | sed 's/.*"id":"\([^"]*\)".*/\1/')
expect_exit 0 "submit of a pattern no worker has" -- ndf submit nosuch --attr item=none
nosuch=$out
expect_exit 3 "wait on an unknown id exits 3" -- ndf wait qffffffffffffffffffffffff --timeout 0

# the mixed batch: seq3, par2, quick in turn
i=0
while [ "$i" -lt "$N" ]; do
    case $((i % 3)) in 0) p=seq3 ;; 1) p=par2 ;; *) p=quick ;; esac
    echo "$p --attr item=i$i"
    i=$((i + 1))
done >"$SCRATCH/batch"
# four submitters at once
split -n r/4 "$SCRATCH/batch" "$SCRATCH/part."
for f in "$SCRATCH"/part.*; do
    (while read -r p a v; do ndf submit "$p" "$a" "$v" >/dev/null || echo "fail $v"; done <"$f") \
        >"$f.out" 2>&1 &
done
wait
if cat "$SCRATCH"/part.*.out | grep -q .; then
    not_ok "a submit failed"
    cat "$SCRATCH"/part.*.out | head -5 | sed 's/^/#   /'
else
    ok "$N executions submitted by four processes at once"
fi
total=$((N + 2))
expect_match "$(pg_sql ndfq "SELECT count(*) FROM queue WHERE state = 'QUEUED'")" "^$((total + 1))\$" \
    "all are queued"

start_worker() { # N
    "$NDF" -c "$SCRATCH/w$1.conf" serve --worker --grace 20 --no-watch 2>"$SCRATCH/w$1.log" &
    eval "W$1=\$!"
}
start_worker 1
start_worker 2
start_worker 3
t=0
while [ "$(pg_sql ndfq "SELECT count(*) FROM workers" 2>/dev/null)" != 3 ] && [ "$t" -lt 600 ]; do
    sleep 0.1
    t=$((t + 1))
done
if [ "$(pg_sql ndfq "SELECT count(*) FROM workers")" = 3 ]; then
    ok "three workers registered"
else
    not_ok "three workers registered"
    for w in 1 2 3; do tail -5 "$SCRATCH/w$w.log" | sed "s/^/#   w$w: /"; done
    kill -KILL "$W1" "$W2" "$W3" 2>/dev/null
    finish
    exit
fi

done_count() { pg_sql ndfq "SELECT count(*) FROM queue WHERE state = 'DONE'"; }
# wait_done COUNT SECONDS
wait_done() {
    t=0
    while [ "$(done_count)" -lt "$1" ] && [ "$t" -lt $(($2 * 10)) ]; do
        sleep 0.1
        t=$((t + 1))
    done
}

wait_done $((total / 3)) 120
# killed while one of its executions has a step recorded as completed, so
# that the takeover has something it must not run again.  The worker is
# stopped while that is looked up, and killed stopped: otherwise the
# execution seen could end between the look and the kill (with few items,
# NDF_QUEUE_N=30, it was often the only one, and nothing was taken over)
t=0 armed=0
while [ "$t" -lt 1200 ]; do
    kill -STOP "$W1"
    if [ "$(pg_sql ndfq "SELECT count(*) FROM executions e JOIN nodes n ON n.exec_seq = e.seq WHERE e.pid = $W1 AND e.status = 'RUNNING' AND n.state = 'COMPLETED' AND n.path <> ''")" != 0 ]; then
        armed=1
        break
    fi
    kill -CONT "$W1"
    sleep 0.05
    t=$((t + 1))
done
kill -KILL "$W1"
wait "$W1" 2>/dev/null
ok "worker 1 SIGKILLed after $(done_count) of $total"
wait_done $((total / 2)) 120
cut=$(pg_sql ndfq "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'ndfw2'")
expect_match "$cut" '^[1-9]' "worker 2's database connections cut ($cut)"
wait_done "$total" $((60 + N))
expect_match "$(done_count)" "^$total\$" "every runnable item ended"
expect_match "$(pg_sql ndfq "SELECT state FROM queue WHERE id = '$nosuch'")" '^QUEUED$' \
    "the item no worker can run stays queued"

expect_exit 0 "wait on a done queued id" -- ndf wait "$first" --json
expect_match "$out" '"status":"SUCCEEDED","queue":"DONE","execution":"[^"]+","done":true' \
    "reports the execution's end"
expect_exit 0 "wait in text" -- ndf wait "$second"
expect_match "$out" "^queued item $second: DONE, execution .* of 'quick': SUCCEEDED\$" "says both"

# exactly once: one SUCCEEDED top-level execution per item, the item's own
expect_match "$(pg_sql ndfq "SELECT count(*) FROM queue WHERE state = 'DONE' AND status = 'SUCCEEDED'")" \
    "^$total\$" "every item ended SUCCEEDED"
expect_match "$(pg_sql ndfq "SELECT count(*) FROM queue q JOIN executions e ON e.id = q.exec_id WHERE e.status = 'SUCCEEDED' AND e.parent_id IS NULL")" \
    "^$total\$" "each names its SUCCEEDED execution"
expect_match "$(pg_sql ndfq "SELECT count(*) FROM executions WHERE parent_id IS NULL AND status = 'SUCCEEDED'")" \
    "^$total\$" "and no other execution succeeded: each ran to its end once"
expect_match "$(pg_sql ndfq "SELECT count(*) FROM executions WHERE status = 'RUNNING'")" '^0$' \
    "nothing is left RUNNING"
expect_match "$(pg_sql ndfq "SELECT count(*) FROM patterns p WHERE p.executions <> p.pruned + (SELECT count(*) FROM executions e WHERE e.pattern = p.name AND e.counted = 1)")" \
    '^0$' "counts equal execution rows"
taken=$(pg_sql ndfq "SELECT count(*) FROM queue WHERE attempts > 1")
expect_match "$taken" '^[1-9]' "the killed worker's items were taken over ($taken)"
expect_match "$(pg_sql ndfq "SELECT count(*) FROM queue q JOIN executions e ON e.id = q.exec_id WHERE q.attempts > 1 AND e.redrive_of IS NOT NULL")" \
    '^[1-9]' "and redriven from what was recorded"

# no completed step ran twice: a step recorded COMPLETED in an execution
# that was taken over appended its line exactly once; the items that ran
# once appended every line once
pg_sql ndfq "SELECT (e.context::json->'attributes'->>'item') || ' ' || n.path FROM executions e JOIN nodes n ON n.exec_seq = e.seq WHERE e.status = 'CRASHED' AND n.state = 'COMPLETED' AND n.path <> ''" \
    >"$SCRATCH/completed"
bad=0
while read -r item step; do
    c=$(grep -c "^$item $step\$" "$LOG")
    [ "$c" -eq 1 ] || { bad=$((bad + 1)); echo "#   $item $step ran $c times"; }
done <"$SCRATCH/completed"
checked=$(wc -l <"$SCRATCH/completed")
# armed: the kill came while a step of the worker's was recorded completed
# (under a heavy load the progress writes may lag the whole window)
[ "$bad" -eq 0 ] && [ "$checked" -ge "$armed" ] &&
    ok "no step recorded completed ran again ($checked checked)" ||
    not_ok "$bad completed step(s) ran again, of $checked (armed $armed)"
pg_sql ndfq "SELECT e.context::json->'attributes'->>'item' FROM queue q JOIN executions e ON e.id = q.exec_id WHERE q.attempts = 1" \
    | sort >"$SCRATCH/once"
dup=$(sort "$LOG" | uniq -d | cut -d' ' -f1 | sort -u | comm -12 - "$SCRATCH/once" | head -3)
[ -z "$dup" ] && ok "items claimed once ran each step once" || not_ok "steps ran twice for: $dup"
missing=0
for i in $(seq 0 $((N - 1))); do
    grep -q "^i$i " "$LOG" || missing=$((missing + 1))
done
[ "$missing" -eq 0 ] && ok "every item's steps ran" || not_ok "$missing item(s) never ran a step"

# a worker paused past its lease (SIGSTOP: a stalled VM, a partition):
# worker 2 takes its items over; when it resumes it cancels them, and
# nothing it finishes late is recorded
before=$(done_count)
i=0
while [ "$i" -lt 6 ]; do ndf submit seq3 --attr item=p$i >/dev/null; i=$((i + 1)); done
# stopped, then looked at: an execution seen RUNNING before the stop could
# commit its end in between (it did under ThreadSanitizer), and then
# nothing would be held through the pause.  Stopped only once it is seen
# running one: stopped while each look is made, a worker slowed down (a
# sanitizer build, a loaded machine) claimed nothing, worker 2 took all six
w3_running() { pg_sql ndfq "SELECT count(*) FROM executions WHERE pid = $W3 AND status = 'RUNNING'"; }
t=0 paused=0
while [ "$t" -lt 600 ]; do
    t=$((t + 1))
    if [ "$(w3_running)" = 0 ]; then
        sleep 0.02
        continue
    fi
    kill -STOP "$W3"
    [ "$(w3_running)" = 0 ] || { paused=1; break; }
    kill -CONT "$W3"
done
[ "$paused" = 1 ] && ok "worker 3 paused while running one of them" ||
    not_ok "worker 3 was never seen running one of them"
# paused until worker 2 has taken one of them over, not for a fixed time:
# worker 2 busy with its own items under a slow build (ASan on a loaded
# machine) took longer than two leases to look, and nothing was taken over
taken_over() {
    [ "$(pg_sql ndfq "SELECT count(*) FROM queue WHERE id IN (SELECT id FROM queue ORDER BY seq DESC LIMIT 6) AND attempts > 1")" != 0 ]
}
sleep $((LEASE + 1))
t=0
while [ "$paused" = 1 ] && ! taken_over && [ "$t" -lt 1200 ]; do
    sleep 0.1
    t=$((t + 1))
done
resumed=$(date +%s.%N)
kill -CONT "$W3"
wait_done $((before + 6)) 120
expect_match "$(pg_sql ndfq "SELECT count(*) FROM queue WHERE state = 'DONE' AND status = 'SUCCEEDED'")" \
    "^$((before + 6))\$" "the paused worker's items ended, SUCCEEDED"
expect_match "$(pg_sql ndfq "SELECT count(*) FROM executions WHERE parent_id IS NULL AND status = 'SUCCEEDED'")" \
    "^$((before + 6))\$" "each once: nothing the paused worker finished late was recorded"
expect_match "$(pg_sql ndfq "SELECT count(*) FROM queue WHERE id IN (SELECT id FROM queue ORDER BY seq DESC LIMIT 6) AND attempts > 1")" \
    '^[1-9]' "its items were taken over"
sleep 1
grep -Eq "lease.*(lost|cancelling)|no renewal" "$SCRATCH/w3.log" && ok "the resumed worker cancelled what it had lost" ||
    not_ok "the resumed worker did not say it lost its leases"
kill -0 "$W3" && ok "and goes on serving" || not_ok "worker 3 died"
expect_match "$(pg_sql ndfq "SELECT count(*) FROM patterns p WHERE p.executions <> p.pruned + (SELECT count(*) FROM executions e WHERE e.pattern = p.name AND e.counted = 1)")" \
    '^0$' "counts still equal execution rows"
pg_sql ndfq "SELECT (e.context::json->'attributes'->>'item') || ' ' || n.path FROM executions e JOIN nodes n ON n.exec_seq = e.seq WHERE e.status = 'CRASHED' AND n.state = 'COMPLETED' AND n.path <> ''" \
    >"$SCRATCH/completed"
bad=0
while read -r item step; do
    c=$(grep -c "^$item $step\$" "$LOG")
    [ "$c" -eq 1 ] || { bad=$((bad + 1)); echo "#   $item $step ran $c times"; }
done <"$SCRATCH/completed"
[ "$bad" -eq 0 ] && ok "still no step recorded completed ran again" || not_ok "$bad completed step(s) ran again"
# fencing: once resumed, the paused worker started no step of an execution
# it held before the pause, past their deadline (every step checks it
# first); a step it started after the resume belongs to an item it claimed
# again since (a second execution of the item on worker 3)
held=$(awk -v pid="$W3" -v t="$resumed" '$1 ~ /^p[0-9]+$/ && $4 == pid && $3 < t' "$TLOG" | wc -l)
late=0
for item in $(awk -v pid="$W3" -v t="$resumed" '$1 ~ /^p[0-9]+$/ && $4 == pid && $3 >= t { print $1 }' "$TLOG" | sort -u); do
    there=$(pg_sql ndfq "SELECT count(*) FROM executions WHERE pid = $W3 AND parent_id IS NULL AND context::json->'attributes'->>'item' = '$item'")
    [ "$there" -ge 2 ] || { late=$((late + 1)); echo "#   $item: a step of its execution on worker 3 started after the resume"; }
done
[ "$late" -eq 0 ] && [ "$held" -ge 1 ] &&
    ok "no step of a lost execution started after the resume ($held started before the pause)" ||
    not_ok "steps of lost executions started after the resume: $late item(s) ($held before the pause)"
# the executions that ran queued items say so, a takeover too
expect_match "$(pg_sql ndfq "SELECT count(*) FROM executions WHERE parent_id IS NULL AND origin <> 'queue'")" \
    '^0$' "every execution a worker ran has origin queue"
expect_match "$(pg_sql ndfq "SELECT count(*) FROM queue q JOIN executions e ON e.id = q.exec_id WHERE q.attempts > 1 AND e.redrive_of IS NOT NULL AND e.origin = 'queue'")" \
    '^[1-9]' "a takeover too, with redrive_of"
# what a takeover ended reads as crash recovery has it: its duration is how
# long it was seen running (end - start), its running steps FAILED
LOST="status = 'CRASHED' AND message LIKE 'crashed: its worker lost the lease%'"
expect_match "$(pg_sql ndfq "SELECT count(*) FROM executions WHERE $LOST AND end_time > start_time")" \
    '^[1-9]' "a takeover ended the executions it took over as CRASHED"
expect_match "$(pg_sql ndfq "SELECT count(*) FROM executions WHERE $LOST AND (duration IS NULL OR end_time IS NULL OR abs(duration - (end_time - start_time)) > 0.001)")" \
    '^0$' "with their duration end - start"
expect_match "$(pg_sql ndfq "SELECT count(*) FROM nodes n JOIN executions e ON e.seq = n.exec_seq WHERE e.status = 'CRASHED' AND n.state = 'RUNNING'")" \
    '^0$' "and no step of them left RUNNING"
expect_match "$(pg_sql ndfq "SELECT count(*) FROM nodes n JOIN executions e ON e.seq = n.exec_seq WHERE e.status = 'CRASHED' AND e.message LIKE 'crashed: its worker lost the lease%' AND n.state = 'FAILED' AND n.message = 'interrupted: its worker lost the lease' AND n.end_time <= e.end_time")" \
    '^[1-9]' "but FAILED, ending by the execution's end"
expect_exit 0 "runs --origin queue" -- ndf runs --origin queue --limit 1000 --json
expect_match "$(printf '%s' "$out" | grep -o '"origin":"queue"' | wc -l)" \
    "^$(pg_sql ndfq "SELECT count(*) FROM executions WHERE parent_id IS NULL")\$" "lists them all"
expect_exit 0 "runs --origin run lists none" -- ndf runs --origin run --json
expect_match "$out" '^\[\]$' "an empty array"
expect_exit 0 "runs shows the origin" -- ndf runs --limit 1
expect_match "$(printf '%s\n' "$out" | sed -n 2p)" ' queue ' "in its ORIGIN column"
expect_exit 2 "runs --origin of an unknown origin" -- ndf runs --origin nosuch
expect_match "$err" "^ndf: runs: --origin: unknown origin 'nosuch'" "names it"

# the workers: two live, the killed one stale
CONF=$SCRATCH/w3.conf
expect_exit 0 "workers" -- ndf workers
expect_match "$(printf '%s\n' "$out" | grep -c claiming)" '^2$' "two live workers, claiming"
printf '%s\n' "$out" | grep -q ":$W1:" && not_ok "the killed worker is listed as live" ||
    ok "the killed worker is not listed"
expect_exit 0 "workers --all --json" -- ndf workers --all --json
expect_match "$out" "\"pid\":$W1,[^}]*\"state\":\"stale\"" "--all shows it stale"
expect_match "$out" '"patterns":\["par2","quick","seq3"\]' "a worker says what it can run"
expect_match "$out" '"plugins":\[\{"name":' "and its plugins"

# ndf ctl submit, then drain worker 3
expect_exit 0 "ctl submit" -- ndf ctl submit quick --attr item=ctl
ctlid=$out
expect_match "$ctlid" '^q[0-9a-f]{24}$' "ctl submit prints the id"
expect_exit 0 "wait for it" -- ndf wait "$ctlid" --timeout 60
# an item whose context a worker cannot read (written past ndf): it ends
# FAILED with the reason, and wait says so
pg_sql ndfq "INSERT INTO queue (id, pattern, context, submitted, state) VALUES ('qbadctx', 'quick', '{not json', 0, 'QUEUED')" >/dev/null
expect_exit 1 "wait on an item that could not start exits 1" -- ndf wait qbadctx --timeout 60
expect_match "$out" "^queued item qbadctx of 'quick': DONE, not started: FAILED: .*context of queued item qbadctx" \
    "and says why"
expect_exit 1 "wait --json on it" -- ndf wait qbadctx --json
expect_match "$out" '"status":"FAILED","queue":"DONE","execution":null,"message":"' "gives the message"
expect_exit 0 "delegate --submit" -- ndf delegate --submit --seed 7 --attr item=dlg
dlg=$out
expect_match "$dlg" '^q[0-9a-f]{24}$' "prints the queued id"
expect_match "$err" "^delegate: chose '(seq3|par2|quick)' \(.*; seed 7\): queued\$" "and the choice"
expect_exit 0 "a worker runs the choice" -- ndf wait "$dlg" --timeout 60 --json
expect_match "$out" '"status":"SUCCEEDED","queue":"DONE"' "to its end"
expect_exit 0 "delegate --submit --json" -- ndf delegate --submit --seed 7 --json --attr item=dlg2
expect_match "$out" '^\{"id":"q[0-9a-f]{24}","pattern":"[a-z0-9]+","reason":"[^"]+","state":"QUEUED","delegation":\{' \
    "--json gives the id, the choice and the delegation"
dlg2=$(printf '%s' "$out" | sed 's/^{"id":"\([^"]*\)".*/\1/')
expect_exit 0 "and it runs" -- ndf wait "$dlg2" --timeout 60
# drained while it runs items, with more queued: what it holds ends
# SUCCEEDED, it claims nothing after, and worker 2 runs the rest
pg_sql ndfq "INSERT INTO queue (id, pattern, context, submitted, state) SELECT 'qdrain' || g, 'seq3', '{\"attributes\":{\"item\":\"dr' || g || '\"}}', extract(epoch from clock_timestamp()), 'QUEUED' FROM generate_series(1, 9) g; NOTIFY ndf_queue" >/dev/null
t=0
until [ "$(pg_sql ndfq "SELECT count(*) FROM executions WHERE pid = $W3 AND status = 'RUNNING'")" != 0 ] ||
    [ "$t" -ge 300 ]; do
    sleep 0.02
    t=$((t + 1))
done
expect_exit 0 "ctl drain while it runs items" -- ndf ctl drain --timeout 30
drained=$(pg_sql ndfq "SELECT extract(epoch from clock_timestamp())")
expect_match "$out" '^worker .*: drained: [0-9]+ claimed, [0-9]+ ended, [0-9]+ lease\(s\) lost, 0 still running$' \
    "drain reports what it ran"
t=0
until [ "$(pg_sql ndfq "SELECT count(*) FROM queue WHERE id LIKE 'qdrain%' AND state = 'DONE'")" = 9 ] ||
    [ "$t" -ge 1200 ]; do
    sleep 0.1
    t=$((t + 1))
done
expect_match "$(pg_sql ndfq "SELECT count(*) FROM queue WHERE id LIKE 'qdrain%' AND state = 'DONE' AND status = 'SUCCEEDED'") $(pg_sql ndfq "SELECT count(DISTINCT e.pid) FROM queue q JOIN executions e ON e.id = q.exec_id WHERE q.id LIKE 'qdrain%'")" \
    '^9 2$' "the items queued meanwhile ended SUCCEEDED, run by both workers"
expect_match "$(pg_sql ndfq "SELECT count(*) FROM queue WHERE worker LIKE '%:$W3:%' AND claimed > $drained")" \
    '^0$' "the drained worker claimed nothing after the drain"
expect_match "$(pg_sql ndfq "SELECT count(*) || ' ' || count(*) FILTER (WHERE status = 'SUCCEEDED') FROM executions WHERE pid = $W3 AND context::json->'attributes'->>'item' LIKE 'dr%'")" \
    '^([1-9][0-9]*) \1$' "and what it held when drained ended SUCCEEDED"
expect_exit 0 "workers --json after the drain" -- ndf workers --json
sleep "$LEASE"
expect_exit 0 "workers --json after a heartbeat" -- ndf workers --json
expect_match "$out" "\"pid\":$W3,[^}]*\"state\":\"draining\"" "the drained worker says so"
kill -TERM "$W2" "$W3"
wait "$W2" && ok "worker 2 stopped cleanly" || not_ok "worker 2's exit status"
wait "$W3" && ok "worker 3 stopped cleanly" || not_ok "worker 3's exit status"
expect_match "$(pg_sql ndfq "SELECT count(*) FROM workers WHERE pid IN ($W2, $W3)")" '^0$' \
    "a worker that stops leaves the table"

# a worker paused past its lease with a completed step that has an undo:
# the worker that takes the item over reuses that step, so the stale one,
# resumed, must neither undo it nor start a step of its own
pg_sql postgres "CREATE DATABASE ndfl" >/dev/null
JLOG=$SCRATCH/job.log
: >"$JLOG"
for w in a b; do
    cat >"$SCRATCH/l$w.conf" <<EOF2
storage: { path = "$SCRATCH/lstate"; backend = "postgresql"; conninfo = "host=$PG_DIR user=postgres dbname=ndfl application_name=ndfl$w"; };
confidence: { threshold = 0.0; };
executor: { threads = 3; };
server: { worker_lease = 6.0; worker_poll = 0.1; socket = "$SCRATCH/l$w.sock"; };
patterns = (
    { name = "job"; type = "sequential";
      params = { steps = (
        { name = "one"; step = "exec"; params = { command = "echo one >> $JLOG"; shell = true;
          undo = "echo one-UNDO >> $JLOG"; }; },
        { name = "two"; step = "exec"; params = { command = "sleep 4"; shell = true; }; },
        { name = "three"; step = "exec"; params = { command = "echo three >> $JLOG"; shell = true; }; } ); }; }
);
EOF2
done
"$NDF" -c "$SCRATCH/la.conf" serve --worker --grace 20 --no-watch 2>"$SCRATCH/la.log" &
LA=$!
expect_exit 0 "submit a job with an undo" -- "$NDF" -c "$SCRATCH/la.conf" submit job
job=$out
t=0
until grep -q '^one$' "$JLOG" || [ "$t" -ge 300 ]; do
    sleep 0.05
    t=$((t + 1))
done
sleep 1.5
kill -STOP "$LA"
"$NDF" -c "$SCRATCH/lb.conf" serve --worker --grace 20 --no-watch 2>"$SCRATCH/lb.log" &
LB=$!
expect_exit 0 "the other worker takes it over and ends it" -- \
    "$NDF" -c "$SCRATCH/lb.conf" wait "$job" --timeout 60 --json
expect_match "$out" '"status":"SUCCEEDED","queue":"DONE"' "SUCCEEDED"
kill -CONT "$LA"
sleep 2
grep -q "no renewal of queued item $job" "$SCRATCH/la.log" && ok "the resumed worker cancelled it" ||
    not_ok "the resumed worker did not say it lost the lease"
grep -q UNDO "$JLOG" && not_ok "the stale worker undid a step the takeover reused: $(tr '\n' ' ' <"$JLOG")" ||
    ok "no undo ran on the stale worker"
expect_match "$(grep -c '^one$' "$JLOG") $(grep -c '^three$' "$JLOG")" '^1 1$' \
    "each step with an effect ran once (one reused, three not started by the stale worker)"
expect_match "$(pg_sql ndfl "SELECT count(*) FROM executions WHERE parent_id IS NULL AND status = 'SUCCEEDED'") $(pg_sql ndfl "SELECT state || ' ' || status FROM queue WHERE id = '$job'")" \
    '^1 DONE SUCCEEDED$' "the item ended SUCCEEDED, once"
# fenced: the stale worker says its result was discarded, and nothing of
# that execution that reads as an outcome (a success, a rollback)
lx=$(pg_sql ndfl "SELECT id FROM executions WHERE pid = $LA AND parent_id IS NULL")
t=0
until grep -q "execution $lx: pattern job: lease lost; result discarded" "$SCRATCH/la.log" ||
    [ "$t" -ge 100 ]; do
    sleep 0.1
    t=$((t + 1))
done
expect_match "$(grep "execution $lx: pattern job: " "$SCRATCH/la.log")"     "^ndf: warning: execution $lx: pattern job: lease lost; result discarded"     "the stale worker logs that it lost the lease and discarded the result"
grep "execution $lx: pattern job: " "$SCRATCH/la.log" | grep -Eiv 'started|lease lost; result discarded' >"$SCRATCH/la.outcome"
[ -s "$SCRATCH/la.outcome" ] && not_ok "the stale worker logged an outcome: $(head -3 "$SCRATCH/la.outcome")" ||
    ok "and no line that reads as an outcome (succeeded, rollback, failure)"
expect_match "$(pg_sql ndfl "SELECT status || ' ' || message FROM executions WHERE id = '$lx'")" \
    '^(CANCELLED lease lost; result discarded|CRASHED .*lost the lease.*)$' \
    "its own record says so"
kill -0 "$LA" && ok "the resumed worker goes on serving" || not_ok "the resumed worker died"
kill -TERM "$LA" "$LB"
wait "$LA" && ok "worker a stopped cleanly" || not_ok "worker a's exit status"
wait "$LB" && ok "worker b stopped cleanly" || not_ok "worker b's exit status"

# the load in the workers table is the live one, not the last heartbeat's:
# a worker with a 60 s lease (a heartbeat every 20 s) says within a few
# seconds that it holds an execution, and then that it holds none
HLOG=$SCRATCH/hold.log
cat >"$SCRATCH/lc.conf" <<EOF2
storage: { path = "$SCRATCH/lstate"; backend = "postgresql"; conninfo = "host=$PG_DIR user=postgres dbname=ndfl application_name=ndflc"; };
confidence: { threshold = 0.0; };
executor: { threads = 2; };
server: { worker_lease = 60; worker_poll = 0.1; socket = "$SCRATCH/lc.sock"; };
patterns = ( { name = "hold"; type = "sequential";
    params = { steps = ( { name = "h"; step = "exec"; params = { command = "echo held >> $HLOG; sleep 8"; shell = true; }; } ); }; } );
EOF2
"$NDF" -c "$SCRATCH/lc.conf" serve --worker --no-watch 2>"$SCRATCH/lc.log" &
LC=$!
# load_of: the live worker's load (empty while it is not registered)
load_of() {
    "$NDF" -c "$SCRATCH/lc.conf" workers --json 2>/dev/null |
        sed -n "s/.*\"pid\":$LC,[^}]*\"load\":\([0-9]*\).*/\1/p"
}
t=0
until [ "$(load_of)" = 0 ] || [ "$t" -ge 300 ]; do sleep 0.05; t=$((t + 1)); done
expect_exit 0 "submit to a worker with a long lease" -- "$NDF" -c "$SCRATCH/lc.conf" submit hold
hold=$out
t=0
until [ -s "$HLOG" ] || [ "$t" -ge 300 ]; do sleep 0.05; t=$((t + 1)); done
t=0
until [ "$(load_of)" = 1 ] || [ "$t" -ge 50 ]; do sleep 0.1; t=$((t + 1)); done
expect_exit 0 "workers in text" -- "$NDF" -c "$SCRATCH/lc.conf" workers
expect_match "$(load_of)" '^1$' "workers shows LOAD 1 while it runs (well before the next heartbeat)"
expect_match "$(printf '%s\n' "$out" | grep " $LC ")" " $LC +2 +1 claiming " "with capacity 2 and load 1"
expect_exit 0 "it ends" -- "$NDF" -c "$SCRATCH/lc.conf" wait "$hold" --timeout 60
t=0
until [ "$(load_of)" = 0 ] || [ "$t" -ge 50 ]; do sleep 0.1; t=$((t + 1)); done
expect_match "$(load_of)" '^0$' "and LOAD 0 once it ended"
kill -TERM "$LC"
wait "$LC" && ok "that worker stopped cleanly" || not_ok "that worker's exit status"

# Frozen work.  A step that ignores cancellation (mb_spin, in process) and
# a worker process that is stopped (SIGSTOP): ndf ctl drain --timeout ends
# at its timeout, says what still runs and gives it back, another worker
# takes it over; SIGTERM stops a worker within its grace, kill grace and
# 2 s even with a thread that never returns.
pg_sql postgres "CREATE DATABASE ndfz" >/dev/null
mkdir "$SCRATCH/plugins"
cp "$NDF_FIXTURE_DIR/misbehave.so" "$SCRATCH/plugins/"
ZFLAG=$SCRATCH/zslow
ZLOG=$SCRATCH/z.log
: >"$ZLOG"
for w in a b; do
    cat >"$SCRATCH/z$w.conf" <<EOF2
storage: { path = "$SCRATCH/zstate"; backend = "postgresql"; conninfo = "host=$PG_DIR user=postgres dbname=ndfz application_name=ndfz$w"; };
plugins: { trust = [ "misbehave" ]; };
confidence: { threshold = 0.0; };
executor: { threads = 3; kill_grace = 3.0; };
server: { worker_lease = 4.0; worker_poll = 0.1; socket = "$SCRATCH/z$w.sock"; };
patterns = (
    { name = "spin"; type = "sequential";
      params = { steps = ( { name = "s"; step = "mb_spin"; params = { seconds = 30.0; }; } ); }; },
    { name = "slow"; type = "sequential";
      params = { steps = (
        { name = "one"; step = "exec"; params = { command = "echo \"\$\$NDF_ATTR_ITEM one\" >> $ZLOG"; shell = true; }; },
        { name = "two"; step = "exec"; params = { command = "if [ -e $ZFLAG ]; then sleep 60; fi; echo \"\$\$NDF_ATTR_ITEM two\" >> $ZLOG"; shell = true; }; } ); }; },
    { name = "hold"; type = "sequential";
      params = { steps = ( { name = "h"; step = "exec"; params = { command = "sleep 9"; shell = true; }; } ); }; }
);
EOF2
done
zndf() { # a|b ARGS...
    zw=$1
    shift
    NDF_PLUGIN_PATH="$NDF_PLUGIN_PATH:$SCRATCH/plugins" "$NDF" -c "$SCRATCH/z$zw.conf" "$@"
}
zserve() { # a|b
    NDF_PLUGIN_PATH="$NDF_PLUGIN_PATH:$SCRATCH/plugins" "$NDF" -c "$SCRATCH/z$1.conf" serve --worker --grace 2 --no-watch 2>>"$SCRATCH/z$1.log" &
}
: >"$ZFLAG"
zserve a
ZA=$!
t=0
until [ "$(pg_sql ndfz "SELECT count(*) FROM workers WHERE pid = $ZA")" = 1 ] || [ "$t" -ge 300 ]; do
    sleep 0.05
    t=$((t + 1))
done
expect_exit 0 "submit an item that blocks" -- zndf a submit slow --attr item=z1
z1=$out
expect_exit 0 "submit one whose step ignores cancellation" -- zndf a submit spin
z2=$out
t=0
until [ "$(pg_sql ndfz "SELECT count(*) FROM executions WHERE pid = $ZA AND status = 'RUNNING' AND parent_id IS NULL")" = 2 ] &&
    grep -q '^z1 one$' "$ZLOG" || [ "$t" -ge 300 ]; do
    sleep 0.05
    t=$((t + 1))
done
t0=$(date +%s)
expect_exit 5 "drain --timeout 1 with work that does not end exits 5" -- \
    zndf a ctl --socket "$SCRATCH/za.sock" drain --timeout 1
took=$(($(date +%s) - t0))
[ "$took" -le 6 ] && ok "drain ended at its timeout (${took}s)" || not_ok "drain took ${took}s with --timeout 1"
expect_match "$out" '^worker .*: draining: 2 claimed, 0 ended, 0 lease\(s\) lost, 2 still running after 1s: 2 given back' \
    "it says what still runs and that it was given back"
rm -f "$ZFLAG"
zserve b
ZB=$!
expect_exit 0 "another worker takes the given-back item over" -- zndf b wait "$z1" --timeout 60 --json
expect_match "$out" '"status":"SUCCEEDED","queue":"DONE"' "and ends it SUCCEEDED"
expect_match "$(pg_sql ndfz "SELECT e.pid || ' ' || (e.redrive_of IS NOT NULL) FROM queue q JOIN executions e ON e.id = q.exec_id WHERE q.id = '$z1'")" \
    "^$ZB true$" "run by the other worker, redriven from what the drained one recorded"
expect_match "$(grep -c '^z1 one$' "$ZLOG")" '^1$' "its completed step did not run again"
expect_match "$(pg_sql ndfz "SELECT status || ': ' || message FROM executions WHERE pid = $ZA AND parent_id IS NULL AND context::json->'attributes'->>'item' = 'z1'")" \
    '^CANCELLED: lease lost; result discarded$' "the drained worker's execution of it ended CANCELLED, discarded"
grep "pattern slow: " "$SCRATCH/za.log" | grep -Ev 'started|lease lost; result discarded' >"$SCRATCH/za.outcome"
[ -s "$SCRATCH/za.outcome" ] && not_ok "the drained worker logged an outcome: $(head -2 "$SCRATCH/za.outcome")" ||
    ok "the drained worker logs no outcome of it"
# the thread in mb_spin never returns; the executor gives up on it
t=0
until grep -q "pattern spin: lease lost; result discarded" "$SCRATCH/za.log" || [ "$t" -ge 300 ]; do
    sleep 0.1
    t=$((t + 1))
done
expect_exit 5 "drain again while a thread is still inside a step" -- \
    zndf a ctl --socket "$SCRATCH/za.sock" drain --timeout 0
expect_match "$out" '^worker .*: draining: .* 0 still running; 1 thread\(s\) still inside steps that ignored their cancellation$' \
    "it is not reported drained"
# the other worker takes the spinning item over, and is stopped while its
# thread spins: --grace 2, then kill_grace 3 and 2 s (the executor used
# to wait two kill graces more for the thread)
t=0
until [ "$(pg_sql ndfz "SELECT count(*) FROM executions WHERE pid = $ZB AND status = 'RUNNING' AND pattern = 'spin'")" = 1 ] ||
    [ "$t" -ge 300 ]; do
    sleep 0.1
    t=$((t + 1))
done
expect_match "$(pg_sql ndfz "SELECT attempts FROM queue WHERE id = '$z2'")" '^2$' \
    "the other worker took the spinning item over"
t0=$(date +%s)
kill -TERM "$ZB"
wait "$ZB" && ok "SIGTERM stops a worker with a thread stuck in a step" || not_ok "exit status after SIGTERM"
took=$(($(date +%s) - t0))
[ "$took" -le 10 ] && ok "within its grace, kill grace and 2 s (${took}s)" || not_ok "SIGTERM took ${took}s"
expect_match "$(grep -c "queued item $z2 given back" "$SCRATCH/zb.log")" '^1$' "it gave the item back"
# a worker process that is stopped: the drain's client does not wait on it
kill -STOP "$ZA"
t0=$(date +%s)
expect_exit 5 "drain of a stopped worker exits 5" -- zndf a ctl --socket "$SCRATCH/za.sock" drain --timeout 1
took=$(($(date +%s) - t0))
expect_match "$err" "^ndf: ctl: drain: the server at .* did not answer within 6s: it is stopped or frozen" \
    "and says the server is stopped or frozen"
[ "$took" -le 10 ] && ok "at its timeout and a margin (${took}s)" || not_ok "the drain of a stopped worker took ${took}s"
kill -CONT "$ZA"
kill -TERM "$ZA"
wait "$ZA" && ok "the resumed worker stops at SIGTERM" || not_ok "exit status of the resumed worker"

# the connection that LISTENs is cut again and again while the worker holds
# an item for two leases: it reconnects without blocking its thread, which
# renews the lease all along (the item is never taken over, nothing is
# cancelled)
: >"$SCRATCH/zb.log"
zserve b
ZB=$!
expect_exit 0 "submit an item held for two leases" -- zndf b submit hold
z4=$out
t=0
until [ "$(pg_sql ndfz "SELECT count(*) FROM executions WHERE pid = $ZB AND status = 'RUNNING' AND pattern = 'hold'")" = 1 ] ||
    [ "$t" -ge 300 ]; do
    sleep 0.05
    t=$((t + 1))
done
cuts=0
for i in 1 2 3 4 5 6; do
    n=$(pg_sql ndfz "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'ndfzb' AND query LIKE '%LISTEN%'")
    cuts=$((cuts + n))
    sleep 1
done
expect_match "$cuts" '^[1-9]' "the LISTEN connection was cut ($cuts times)"
expect_exit 0 "the item ends" -- zndf b wait "$z4" --timeout 60 --json
expect_match "$out" '"status":"SUCCEEDED","queue":"DONE"' "SUCCEEDED"
expect_match "$(pg_sql ndfz "SELECT attempts FROM queue WHERE id = '$z4'")" '^1$' \
    "claimed once: its lease was renewed all along"
grep -q "lost the connection that listens" "$SCRATCH/zb.log" && ok "the worker saw the cut" ||
    not_ok "the worker did not say its LISTEN connection was cut"
grep -Eq "no renewal|may have expired|cancelling it" "$SCRATCH/zb.log" &&
    not_ok "the worker gave up a lease: $(grep -E 'no renewal|may have expired|cancelling it' "$SCRATCH/zb.log" | head -2)" ||
    ok "and never doubted its lease"
kill -TERM "$ZB"
wait "$ZB" && ok "that worker stops cleanly" || not_ok "exit status of that worker"

if [ "$fail" -ne 0 ]; then
    for w in a b; do tail -15 "$SCRATCH/z$w.log" | sed "s/^/#   z$w: /"; done
    for w in 1 2 3; do tail -15 "$SCRATCH/w$w.log" | sed "s/^/#   w$w: /"; done
    for w in a b; do tail -15 "$SCRATCH/l$w.log" | sed "s/^/#   l$w: /"; done
    sed 's/^/#   job: /' "$JLOG"
fi
finish
