#!/bin/sh
# The reference's API as ndf's commands: `list --domain` ordered like
# find_patterns_by_domain, a meta pattern's complexity_threshold as a gate
# on explicit runs (and --force), "already exists" with its own exit code,
# `record` (record_execution) counted exactly as a run, one-shot and through
# a server, reset-stats / cleanup through the server, and wait ID --timeout.
. "$top_srcdir/tests/shell/lib.sh"
CONF=$SCRATCH/ndf.conf
cat >"$CONF" <<CONF
executor: { threads = 2; default_timeout = 30.0; };
storage: { path = "$SCRATCH/state"; };
confidence: { threshold = 0.0; min_samples = 1; };
patterns = (
  { name = "zeta"; type = "sequential"; domains = [ "web*" ];
    params = { steps = ( { name = "s"; step = "noop"; } ); }; },
  { name = "alpha"; type = "sequential"; domains = [ "web" ];
    params = { steps = ( { name = "s"; step = "noop"; } ); }; },
  { name = "mid"; type = "sequential"; domains = [ "web" ];
    params = { steps = ( { name = "s"; step = "noop"; } ); }; },
  { name = "down"; type = "sequential"; domains = [ "web" ];
    params = { steps = ( { name = "s"; step = "fail"; } ); }; },
  { name = "other"; type = "sequential"; domains = [ "db" ];
    params = { steps = ( { name = "s"; step = "noop"; } ); }; },
  { name = "twin_run"; type = "sequential"; domains = [ "ops" ];
    params = { steps = ( { name = "s"; step = "exec"; params = { argv = [ "sh", "-c", "exit \${attr.rc}" ]; }; } ); }; },
  { name = "twin_rec"; type = "sequential"; domains = [ "ops" ];
    params = { steps = ( { name = "s"; step = "noop"; } ); }; },
  { name = "slow"; type = "sequential"; domains = [ "ops" ];
    params = { steps = ( { name = "s"; step = "exec"; params = { argv = [ "sh", "-c", "while [ ! -f $SCRATCH/go ]; do sleep 0.05; done; exit \${attr.rc}" ]; }; } ); }; },
  { name = "m"; type = "meta"; params = { complexity_threshold = 5;
    phases = ( { name = "p"; patterns = [ "alpha" ]; } ); }; }
);
CONF
R="$NDF -c $CONF"

# ---- list --domain: most confident first, ties by name ----
expect_exit 0 "zeta succeeds" -- $R run zeta
expect_exit 0 "zeta succeeds again" -- $R run zeta
expect_exit 1 "down fails" -- $R run down
expect_exit 0 "list --domain web" -- $R list --domain web
names=$(printf '%s\n' "$out" | awk 'NR > 1 { print $1 }' | tr '\n' ' ')
# m has no domains: it serves every domain, web too.
expect_match "$names" '^zeta alpha m mid down $' \
    "list --domain orders by confidence, then name (got: $names)"
expect_exit 0 "list without --domain" -- $R list
names=$(printf '%s\n' "$out" | awk 'NR > 1 { print $1 }' | tr '\n' ' ')
expect_match "$names" '^alpha down m mid other slow twin_rec twin_run zeta $' "plain list stays by name (got: $names)"
expect_exit 0 "list --domain web --json" -- $R list --domain web --json
names=$(printf '%s\n' "$out" | grep -o '"name":"[a-z]*"' | tr '\n' ' ')
expect_match "$names" '^"name":"zeta" "name":"alpha" "name":"m" "name":"mid" "name":"down" $' \
    "the JSON form has the same order"

# ---- the type's gate: meta's complexity_threshold ----
expect_exit 2 "a context below complexity_threshold is refused" -- \
    $R run m --attr complexity=2
expect_match "$err" "^ndf: run: pattern 'm': not started: the context's complexity 2 is below complexity_threshold 5 \(use --force to run it anyway\)$" \
    "the refusal names both numbers and the way round it"
expect_exit 0 "runs did not change" -- $R runs m
[ -z "$out" ] && ok "a refused run leaves no execution" || not_ok "a refused run was recorded: $out"
expect_exit 2 "an unreadable complexity is refused" -- $R run m --attr complexity=huge
expect_match "$err" "complexity is not a number" "and says what it wanted"
expect_exit 0 "--force runs it anyway" -- $R run m --attr complexity=2 --force
expect_exit 0 "at the threshold it runs" -- $R run m --attr complexity=medium
expect_exit 0 "without a complexity it runs" -- $R run m

# ---- "already exists" has its own exit code ----
cat >"$SCRATCH/dup.conf" <<CONF
storage: { path = "$SCRATCH/state"; };
patterns = (
  { name = "twice"; type = "sequential"; params = { steps = ( { name = "s"; step = "noop"; } ); }; },
  { name = "twice"; type = "sequential"; params = { steps = ( { name = "s"; step = "noop"; } ); }; }
);
CONF
expect_exit 12 "a pattern defined twice exits 12" -- $NDF -c "$SCRATCH/dup.conf" run twice
expect_match "$err" "dup\.conf:4: duplicate pattern 'twice' \(first defined at .*dup\.conf:3\)" \
    "and names both places"

# ---- record: an outside outcome counts exactly as a run ----
stats() { # PATTERN: the statistics of `show --json`, without times
    $R show "$1" --json | sed 's/.*"statistics":\({[^}]*}\).*/\1/; s/"last_used":[^,]*,//; s/"avg_duration":[^,]*,//'
}
expect_exit 0 "a run of twin_run in web" -- $R run twin_run --domain web --attr rc=0
expect_exit 1 "a failed run of twin_run in db" -- $R run twin_run --domain db --attr rc=1
expect_exit 0 "record a success of twin_rec in web" -- $R record twin_rec --success --domain web --duration 2.5
expect_match "$out" "^recorded a success of 'twin_rec' \(execution [^)]+\): confidence 0\.667 after 1 execution\(s\)$" \
    "record says what it did"
expect_exit 0 "record a failure of twin_rec in db" -- $R record twin_rec --failure --domain db
a=$(stats twin_run) m=$(stats twin_rec)
expect_match "$a" '"executions":2,"successes":1' "the runs counted"
[ "$a" = "$m" ] && ok "recorded outcomes move confidence as runs do: $m" || not_ok "run $a, recorded $m"
expect_exit 0 "record a success of mid in web" -- $R record mid --success --domain web --duration 2.5
m=$(stats mid)
expect_exit 0 "record a failure of zeta in db" -- $R record zeta --failure --domain db --message "agent gave up"
expect_exit 0 "zeta's runs" -- $R runs zeta
expect_match "$out" "FAILED .* external " "the recorded failure is in the history, origin external"
expect_exit 0 "record --json" -- $R record other --success --json --attr size=3
expect_match "$out" '^\{"id":"[^"]+","pattern":"other","success":true,"confidence":0\.666667,"executions":1,"successes":1\}$' \
    "record --json"
expect_exit 0 "runs --json shows the duration" -- $R runs mid --json
expect_match "$out" '"origin":"external"' "origin external in JSON"
expect_exit 0 "export keeps the message" -- $R export zeta
expect_match "$out" '"message":[[:space:]]*"agent gave up"' "the failure's message is kept"

expect_exit 3 "record of an unknown pattern" -- $R record nosuch --success
expect_match "$err" "^ndf: record: no pattern named 'nosuch'$" "names it"
expect_exit 2 "record without an outcome" -- $R record mid
expect_match "$err" "^ndf: record: say how it went: --success or --failure$" "says what is missing"
expect_exit 2 "record with both outcomes" -- $R record mid --success --failure
expect_exit 2 "record with a bad duration" -- $R record mid --success --duration -1
expect_exit 2 "record with a bad context" -- $R record mid --success --priority 9
before=$(stats mid)
[ "$before" = "$m" ] && ok "bad requests changed nothing" || not_ok "changed: $m -> $before"

# ---- one-shot wait: an execution another process runs ----
rm -f "$SCRATCH/go"
$R run slow --attr rc=0 >/dev/null 2>&1 &
RUNNER=$!
for i in $(seq 1 100); do
    $R runs slow --status running 2>/dev/null | awk 'NR > 1' | grep -q . && break
    sleep 0.05
done
id=$($R runs slow --status running 2>/dev/null | awk 'NR == 2 { print $1 }')
[ -n "$id" ] && ok "the running execution is in the store" || not_ok "no running execution of slow"
expect_exit 5 "ndf wait --timeout returns at the timeout" -- $R wait "$id" --timeout 0.3
expect_match "$err" "^ndf: wait: execution '$id' is still running after 0\.3s \(the wait ended, the execution goes on\)$" \
    "and says the execution goes on"
expect_exit 5 "ndf wait --timeout --json returns at the timeout" -- $R wait "$id" --timeout 0.1 --json
expect_match "$out" "^\{\"id\":\"$id\",\"pattern\":\"slow\",\"status\":\"RUNNING\",\"done\":false\}$" \
    "and says it is not done"
kill -0 "$RUNNER" 2>/dev/null && ok "the run goes on after the wait" || not_ok "the run ended with the wait"
touch "$SCRATCH/go"
expect_exit 0 "ndf wait ends with the execution" -- $R wait "$id" --json
expect_match "$out" "^\{\"id\":\"$id\",\"pattern\":\"slow\",\"status\":\"SUCCEEDED\",\"done\":true\}$" "wait --json"
wait "$RUNNER"
expect_exit 3 "ndf wait for an unknown execution" -- $R wait nosuch --timeout 0
expect_exit 2 "ndf wait with a bad timeout" -- $R wait "$id" --timeout x
# an id made moments ago may belong to a run that has not written its row
# yet: it is waited for (bounded by --timeout); an old or malformed one is
# not found at once
fresh=$(date -u +%Y%m%dT%H%M%S)-7fffffff-1
expect_exit 3 "ndf wait for a fresh id that never appears" -- $R wait "$fresh" --timeout 0.3
expect_match "$err" "^ndf: wait: no execution with id '$fresh' is kept \(yet: the wait ended before its row was written\)$" \
    "a fresh id is waited for until the timeout"
expect_exit 3 "ndf wait for an old id" -- $R wait 20200101T000000-1-1
expect_match "$err" "^ndf: wait: no execution with id '20200101T000000-1-1' is kept$" "an old id is not waited for"
rm -f "$SCRATCH/go"

# ---- through a server: record, reset-stats, cleanup ----
RUN=$SCRATCH/run
mkdir -m 700 "$RUN"
export NDF_RUNTIME_DIR=$RUN
"$NDF" -c "$CONF" serve --no-watch 2>"$SCRATCH/serve.log" &
SERVER=$!
for i in $(seq 1 100); do
    "$NDF" -c "$CONF" ctl ping >/dev/null 2>&1 && break
    sleep 0.05
done
C="$NDF -c $CONF ctl"
# a client runs the same pattern throughout: nothing it does may fail
( i=0; while [ $i -lt 200 ] && [ ! -f "$SCRATCH/stop" ]; do
      $C run alpha >/dev/null 2>&1 || echo "run $i failed" >>"$SCRATCH/client.err"; i=$((i + 1))
  done ) &
CLIENT=$!
expect_exit 0 "ctl record" -- $C record mid --success --domain web
expect_match "$out" "^recorded a success of 'mid' .*after 2 execution\(s\)$" "the server counts it"
expect_exit 0 "ctl show sees it at once" -- $C show mid --json
expect_match "$out" '"executions":2,"successes":2' "the server's pattern learnt it"
printf '{"domain": "batch", "attributes": {"k": 1}}' >"$SCRATCH/ctx.json"
expect_exit 0 "ctl record --context FILE (read on the client side)" -- \
    $C record mid --failure --context "$SCRATCH/ctx.json"
expect_exit 0 "ctl show" -- $C show mid --json
expect_match "$out" '\{"domain":"batch","executions":1,"successes":0\}' "the context's domain was counted"
expect_exit 3 "ctl record of an unknown pattern" -- $C record nosuch --failure
expect_exit 2 "ctl record without an outcome" -- $C record mid
expect_exit 0 "ctl reset-stats" -- $C reset-stats mid
expect_match "$out" "^reset the statistics of 'mid'" "reset-stats answers through the server"
expect_exit 0 "ctl show after the reset" -- $C show mid --json
expect_match "$out" '"statistics":\{"executions":0,"successes":0' "the server's counts are reset at once"
expect_exit 0 "one-shot reset-stats while the server runs" -- $R reset-stats alpha
sleep 0.3
touch "$SCRATCH/stop"
wait "$CLIENT"
expect_exit 0 "one-shot runs after it" -- $R runs alpha --limit 1
n_after=$($R show alpha --json | sed 's/.*"statistics":{"executions":\([0-9]*\).*/\1/')
n_rows=$($R runs alpha --limit 1000 | awk 'NR > 1' | wc -l)
[ "$n_after" -lt "$n_rows" ] && ok "the reset stays: $n_after counted, $n_rows kept in the history" ||
    not_ok "the reset was undone: $n_after counted of $n_rows"
[ -s "$SCRATCH/client.err" ] && not_ok "client runs failed: $(head -3 "$SCRATCH/client.err")" ||
    ok "no execution of the client failed"
# ---- wait: bounds the wait, never the execution ----
expect_exit 0 "ctl run --async" -- $C run slow --async --attr rc=0
id=$out
expect_exit 5 "wait --timeout returns at the timeout" -- $C wait "$id" --timeout 0.3
expect_match "$err" "^ndf: ctl: wait: execution '$id' is still running after 0\.3s \(the wait ended, the execution goes on\)$" \
    "and says the execution goes on"
expect_exit 0 "status after the timed-out wait" -- $C status "$id" --json
expect_match "$out" '"state":"RUNNING"' "the execution is still running"
expect_exit 5 "wait --timeout 0 only looks" -- $C wait "$id" --timeout 0
touch "$SCRATCH/go"
expect_exit 0 "wait without a timeout ends with the execution" -- $C wait "$id"
expect_match "$out" "^execution $id: ok in " "and shows its record"
expect_exit 0 "another run --async, failing" -- $C run slow --async --attr rc=3
id=$out
expect_exit 1 "wait exits as the execution did" -- $C wait "$id" --timeout 30
expect_exit 3 "wait for an unknown execution" -- $C wait nosuch --timeout 1
expect_exit 2 "wait with a bad timeout" -- $C wait "$id" --timeout -1
expect_exit 2 "wait without an id" -- $C wait

# ---- batch through the server: the client sends the lines, the output
# and exit code are the one-shot's ----
printf '{"pattern":"alpha"}\n# a comment\n{"pattern":"nosuch"}\n{"pattern":"down","timeout":5}\nnot json\n' >"$SCRATCH/b.jsonl"
norm() { printf '%s\n' "$1" | sed 's/"id":"[^"]*",//; s/,"duration":[0-9.e+-]*//; s/"[^"]*b\.jsonl:/"FILE:/; s/"request:/"FILE:/'; }
expect_exit 1 "one-shot batch with failures" -- $R batch "$SCRATCH/b.jsonl"
one=$(norm "$out")
expect_exit 1 "ctl batch with failures" -- $C batch "$SCRATCH/b.jsonl"
two=$(norm "$out")
[ "$one" = "$two" ] && ok "ctl batch prints what one-shot batch prints" \
    || { not_ok "ctl batch differs"; printf '# one: %s\n# two: %s\n' "$one" "$two"; }
expect_match "$two" '^\{"line":4,"pattern":"down","success":false' "a failed line is reported in its place"
expect_exit 0 "ctl batch --sequential from standard input" -- sh -c "printf '{\"pattern\":\"alpha\"}\n' | $C batch --sequential -"
expect_match "$out" '^\{"line":1,"pattern":"alpha","success":true' "the line ran on the server"
expect_exit 3 "ctl batch of a missing file" -- $C batch "$SCRATCH/nosuch.jsonl"
expect_match "$err" "^ndf: ctl: batch: cannot read .*nosuch.jsonl: No such file or directory$" "names the file (read on the client side)"
expect_exit 2 "a served batch naming a server-side file is refused" -- sh -c "printf '%s\n' '{\"cmd\":\"batch\",\"args\":[\"/etc/passwd\"]}' | $C send | grep -q '\"ok\":false' && exit 2"

expect_exit 0 "ctl cleanup" -- $C cleanup --json
expect_match "$out" '^\{"dry_run":false,"executions_removed":[0-9]+' "cleanup answers through the server"
kill -TERM "$SERVER"
wait "$SERVER" && ok "the server stops cleanly" || not_ok "the server exited $?"

finish
