#!/bin/sh
# Patterns and settings defined at run time: ndf define / undefine / edit /
# setting / definitions, one-shot and through a server while a client runs
# the pattern being changed (no execution may fail; the change applies to
# executions started after it, a running one keeps its definition), a
# restart (the changes are still there), and a bad request of each kind (a
# clear error, nothing changed).
. "$top_srcdir/tests/shell/lib.sh"
CONF=$SCRATCH/ndf.conf
cat >"$CONF" <<CONF
executor: { threads = 4; default_timeout = 30.0; };
storage: { path = "$SCRATCH/state"; };
confidence: { threshold = 0.0; min_samples = 1; };
patterns = (
  { name = "work"; type = "sequential"; domains = [ "web" ];
    params = { steps = ( { name = "s"; step = "noop"; } ); }; },
  { name = "par"; type = "parallel";
    params = { tasks = ( { name = "t1"; step = "noop"; }, { name = "t2"; step = "noop"; } ); }; },
  { name = "meta"; type = "meta";
    params = { phases = ( { name = "p1"; patterns = [ "work" ]; } ); }; },
  { name = "slow"; type = "sequential";
    params = { steps = ( { name = "wait"; step = "exec"; params = { argv = [ "sh", "-c", "while [ ! -f $SCRATCH/go ]; do sleep 0.05; done" ]; }; } ); }; }
);
CONF
R="$NDF -c $CONF"
export NDF_RUNTIME_DIR=$SCRATCH/run
mkdir -m 700 "$NDF_RUNTIME_DIR"

# ---- one-shot ----
cat >"$SCRATCH/extra.conf" <<'EOF2'
# a definition as a patterns_dir file holds it
{ name = "extra"; type = "sequential"; domains = [ "web" ];
  params = { steps = ( { name = "one"; step = "noop"; } ); }; }
EOF2
expect_exit 0 "define a pattern (libconfig, one bare group)" -- $R define "$SCRATCH/extra.conf"
expect_match "$out" "^defined pattern 'extra'$" "define says what it did"
expect_exit 0 "list" -- $R list
expect_match "$out" "^extra .* run-time$" "list marks a run-time definition's origin"
expect_match "$out" "^work .* file$" "and a file's"
expect_exit 0 "show" -- $R show extra
expect_match "$out" "^defined at: +run-time\[[0-9T:-]+Z uid $(id -u)\]:2 \(run-time definition" \
    "show says where and by whom it was defined"
expect_exit 0 "a one-shot run of the run-time pattern" -- $R run extra
# times in JSON in full (not 1.79598e+09)
expect_exit 0 "show --json after a run" -- $R show extra --json
expect_match "$out" '"last_used":[0-9]{10}' "show --json prints last_used in full"
expect_exit 0 "definitions --json" -- $R definitions --json
expect_match "$out" '"time":[0-9]{10}' "definitions --json prints the time in full"
expect_exit 12 "define of a name that exists" -- $R define "$SCRATCH/extra.conf"
expect_match "$err" "^ndf: define: request:2: pattern 'extra' already exists \(defined at run time; --replace to replace it\)$" \
    "'already exists' names the request line and the way round it"
expect_exit 12 "define of a file pattern's name" -- $R define --text '{ name = "work"; type = "sequential"; params = { steps = ( { name = "x"; step = "noop"; } ); }; }'
expect_match "$err" "already exists \(defined at $CONF:5; --replace to shadow it" "names the file's definition"
printf '{"name": "jay", "type": "sequential",\n "params": {"steps": [{"name": "a", "step": "noop", "timeout": 2.5}]}}\n' >"$SCRATCH/jay.json"
expect_exit 0 "define in the JSON form" -- $R define "$SCRATCH/jay.json"
expect_exit 0 "definitions --export" -- $R definitions --export
expect_match "$out" "timeout = 2.5;" "the JSON definition is kept as configuration text"
printf '{"name": "bad", "type": "sequential",\n "params": {"steps": [{"name": "a", "step": "noop", "timeout": -1}]}}\n' >"$SCRATCH/bad.json"
expect_exit 2 "a JSON definition that does not check" -- $R define "$SCRATCH/bad.json"
expect_match "$err" "^ndf: define: request:2: pattern 'bad' .*timeout.* is -1, out of range" "the error names request:line"
expect_exit 2 "a JSON null" -- $R define --text '{"name": "n", "type": null}'
expect_match "$err" "request:1: JSON: null is not a value" "null is refused with a reason"
expect_exit 2 "an @include in a definition" -- $R define --text "$(printf '@include "/etc/passwd"\n')"
expect_match "$err" "request:1: @include is not allowed here" "a request names no file on the server side"
expect_exit 2 "edit: insert at a misspelled top-level key" -- $R edit work insert foo '{ a = 1; }'
expect_match "$err" "path 'foo' is not part of a pattern definition" "a one-shot edit refuses the unknown key"
expect_match "$err" "nothing changed" "and says nothing changed"
expect_exit 0 "definitions after the refused edit" -- $R definitions
case "$out" in *work*) not_ok "the refused edit stored a row for 'work'" ;; *) ok "the refused edit stored nothing" ;; esac
expect_exit 2 "two definitions in one request" -- $R define --text 'patterns = ( { name = "a1"; type = "sequential"; params = { steps = ( { name = "x"; step = "noop"; } ); }; }, { name = "a2"; type = "sequential"; params = { steps = ( { name = "x"; step = "noop"; } ); }; } );'
expect_exit 2 "a syntax error" -- $R define --text "$(printf '{ name = "s";\n  type = ; }')"
expect_match "$err" "^ndf: define: request:2: syntax error" "a syntax error names request:line"
# a name with a control character in it is refused whole, never read as
# some other name: a newline, a tab, DEL; an empty component and '..' too
nl=$(printf 'params.steps[s].time\nout')
tab=$(printf 'params.steps[s]\t.timeout')
del=$(printf 'confidence\177_threshold')
for p in "$nl" "$tab" "$del"; do
    expect_exit 2 "edit: a PATH with a control character" -- $R edit work set "$p" 3
    expect_match "$err" "holds a control character \(byte 0x[0-9a-f]{2} at offset [0-9]+\)" \
        "the control character is named"
    expect_match "$err" "nothing changed" "and nothing changed"
done
expect_exit 2 "edit unset: a PATH with a newline" -- $R edit work unset "$nl"
expect_exit 2 "edit insert: a PATH with a newline" -- $R edit work insert "$(printf 'params.ste\nps')" '{ name = "x"; step = "noop"; }'
expect_exit 2 "edit: an empty component" -- $R edit work set 'params..timeout' 3
expect_exit 2 "edit: '..'" -- $R edit work set '..' 3
expect_exit 2 "edit: an empty selector" -- $R edit work set 'params.steps[].timeout' 3
expect_exit 2 "setting: a KEY with a newline" -- $R setting "$(printf 'confidence.thre\nshold')" 0.5
expect_match "$err" "setting 'confidence.thre.x0ashold' holds a control character" \
    "the setting's key is refused, the newline shown escaped"
expect_exit 2 "setting --unset: a KEY with a tab" -- $R setting --unset "$(printf 'confidence.\tthreshold')"
expect_exit 0 "definitions after the refused names" -- $R definitions
case "$out" in *work*|*threshold*) not_ok "a refused name stored a row: $out" ;; *) ok "the refused names stored nothing" ;; esac
expect_exit 0 "undefine" -- $R undefine jay
expect_exit 3 "undefine of a file pattern" -- $R undefine work
expect_match "$err" "pattern 'work' has no run-time definition \(it is defined at $CONF:5: remove it there\)" \
    "undefine says where the pattern is defined"
expect_exit 0 "list after undefine" -- $R list
case $out in *jay*) not_ok "undefined pattern still listed" ;; *) ok "undefined pattern gone" ;; esac

# ---- through a server ----
"$NDF" -c "$CONF" serve --no-watch 2>"$SCRATCH/serve.log" &
SERVER=$!
for i in $(seq 1 100); do
    $R ctl ping >/dev/null 2>&1 && break
    sleep 0.05
done
C="$R ctl"
# a client runs the pattern being changed throughout: nothing may fail
( i=0; while [ ! -f "$SCRATCH/stop" ]; do
      $C run work >/dev/null 2>&1 || echo "run $i failed" >>"$SCRATCH/client.err"; i=$((i + 1))
  done; echo "$i" >"$SCRATCH/client.n" ) &
CLIENT=$!

# a running execution keeps the definition it started with
expect_exit 0 "start a run that waits" -- $C run slow --async
slow_id=$(printf '%s\n' "$out" | grep -o '[0-9]\{8\}T[0-9]\{6\}-[0-9a-f]*-[0-9]*' | head -1)
expect_exit 0 "ctl edit: add_step" -- $C edit work insert params.steps '{ name = "added"; step = "noop"; }'
expect_match "$out" "^pattern 'work': insert params.steps \(generation [0-9]+ serves\)$" "the server serves the change"
expect_exit 0 "a run after add_step" -- $C run work
expect_match "$err$out" "added" "the new step runs in executions started after the change"
expect_exit 0 "ctl edit: add a step to the running pattern" -- $C edit slow insert params.steps '{ name = "late"; step = "noop"; }'
touch "$SCRATCH/go"
expect_exit 0 "wait for the running execution" -- $C wait "$slow_id" --timeout 20
expect_match "$out$err" "COMPLETED +step wait" "the wait shows the running execution's steps"
case $out$err in *late*) not_ok "the running execution took the new definition" ;;
    *) ok "the running execution kept its definition" ;; esac
expect_exit 0 "ctl edit: set_step_timeout" -- $C edit work set 'params.steps[added].timeout' 7
expect_exit 0 "ctl edit: remove_step" -- $C edit work unset 'params.steps[s]'
expect_exit 0 "a run after remove_step" -- $C run work
case $out$err in *"step s:"*) not_ok "the removed step ran" ;; *) ok "the removed step is gone" ;; esac
expect_exit 0 "ctl edit: add_task_dependency" -- $C edit par insert 'params.tasks[t2].depends_on' '"t1"'
expect_exit 0 "ctl edit: set_task_resource_requirement" -- $C edit par set 'params.tasks[t1].cpu' 0.2
expect_exit 0 "ctl run par" -- $C run par
expect_exit 0 "ctl edit: add_phase" -- $C edit meta insert params.phases '{ name = "p2"; patterns = [ "extra" ]; }'
expect_exit 0 "ctl edit: set_phase_success_criteria" -- $C edit meta set 'params.phases[p2].success_criteria' '{ min_success_rate = 1.0; }'
expect_exit 0 "ctl run meta" -- $C run meta
expect_match "$err$out" "p2" "the added phase runs"
expect_exit 0 "ctl edit: set_confidence_threshold" -- $C edit work set confidence_threshold 0.1
expect_exit 0 "ctl setting: set_global_confidence_threshold" -- $C setting confidence.threshold 0.05
expect_exit 0 "ctl setting: set_pattern_timeout" -- $C setting executor.pattern_timeout 60
printf '{ name = "served"; type = "sequential";\n  params = { steps = ( { name = "x"; step = "noop"; } ); }; }\n' >"$SCRATCH/served.conf"
expect_exit 0 "ctl define (the client reads the file)" -- $C define "$SCRATCH/served.conf"
expect_exit 0 "ctl run of the new pattern" -- $C run served
expect_exit 0 "ctl run -q" -- $R -q ctl run served
[ -z "$out$err" ] && ok "ctl run -q prints nothing, as run -q" || not_ok "ctl run -q printed: $err$out"
expect_exit 0 "ctl show --json after a run" -- $C show served --json
expect_match "$out" '"last_used":[0-9]{10}' "ctl show --json prints last_used in full"
expect_exit 0 "ctl definitions --json" -- $C definitions --json
expect_match "$out" '"time":[0-9]{10}' "ctl definitions --json prints the time in full"
expect_exit 0 "ctl define --replace" -- $C define --replace "$SCRATCH/served.conf"
expect_match "$out" "^replaced pattern 'served'" "replace says so"
# the served generation carries the stored row's origin and lines, as a
# registry built from the store (one-shot, or after SIGHUP) does
expect_exit 0 "ctl show after ctl define" -- $C show served
expect_match "$out" "^defined at: +run-time\[[0-9T:-]+Z uid $(id -u)\]:2 \(run-time definition" \
    "ctl show names the run-time origin and the stored line right after a define"
ctl_def=$(printf '%s\n' "$out" | grep '^defined at:')
expect_exit 0 "one-shot show of the same" -- $R show served
[ "$(printf '%s\n' "$out" | grep '^defined at:')" = "$ctl_def" ] && ok "ctl show and one-shot show agree on the origin" \
    || not_ok "ctl show said '$ctl_def', one-shot '$(printf '%s\n' "$out" | grep '^defined at:')'"
expect_exit 0 "ctl edit of a file's pattern" -- $C edit work set params.timeout_seconds 9
expect_exit 0 "ctl show after ctl edit" -- $C show work
expect_match "$out" "^defined at: +run-time\[[0-9T:-]+Z uid $(id -u)\]:[0-9]+ \(run-time definition" \
    "ctl show names the run-time origin after an edit, not the file"
ctl_def=$(printf '%s\n' "$out" | grep '^defined at:')
expect_exit 0 "one-shot show after the edit" -- $R show work
[ "$(printf '%s\n' "$out" | grep '^defined at:')" = "$ctl_def" ] && ok "ctl show and one-shot show agree after an edit" \
    || not_ok "ctl show said '$ctl_def', one-shot '$(printf '%s\n' "$out" | grep '^defined at:')'"
expect_exit 0 "ctl plan after ctl edit" -- $C plan work
case "$out" in *"$CONF"*) not_ok "ctl plan names the file as the origin after an edit" ;;
*run-time\[*) ok "ctl plan names the run-time origin after an edit" ;;
*) not_ok "ctl plan names no run-time origin: $out" ;; esac
expect_exit 0 "ctl config" -- $C config
expect_match "$out" '"threshold":0.05' "the served configuration has the run-time setting"
expect_exit 0 "ctl definitions --export" -- $C definitions --export
before=$out

# bad requests of each kind: a clear error, nothing changed
expect_exit 2 "ctl define: syntax error" -- $C define --text "$(printf '{ name = "q";\n type = ; }')"
expect_match "$err" "^ndf: ctl: define: request:2: syntax error|^ndf: define: request:2: syntax error" "names request:line"
expect_exit 12 "ctl define: exists" -- $C define "$SCRATCH/served.conf"
expect_exit 2 "ctl define: unknown type" -- $C define --text '{ name = "q"; type = "nosuch"; }'
expect_exit 3 "ctl edit: no such pattern" -- $C edit nosuch set confidence_threshold 0.5
expect_exit 3 "ctl edit: no such element" -- $C edit work set 'params.steps[nosuch].timeout' 3
expect_exit 2 "ctl edit: a bad path" -- $C edit work set 'params..steps' 3
expect_exit 2 "ctl edit: a value out of range" -- $C edit work set confidence_threshold 7
expect_match "$err" "request:1: pattern 'work': 'confidence_threshold' is 7, out of range \[0, 1\]" "the range error names the key"
expect_exit 2 "ctl edit: a step the plugins do not have" -- $C edit work set 'params.steps[added].step' '"nosuch"'
expect_exit 2 "ctl edit: not a value" -- $C edit work set confidence_threshold '0.5; x = 1'
expect_exit 2 "ctl edit: the name" -- $C edit work set name '"other"'
expect_exit 2 "ctl edit: insert into a non-list" -- $C edit work insert confidence_threshold 1
expect_exit 2 "ctl edit: insert at a misspelled top-level key" -- $C edit work insert foo '{ a = 1; }'
expect_match "$err" "path 'foo' is not part of a pattern definition" "the unknown key is refused, not stored as nothing"
expect_match "$err" "nothing changed" "and says nothing changed"
expect_exit 2 "ctl edit: set of a misspelled top-level key" -- $C edit work set foo 3
expect_exit 2 "ctl setting: a key read only at start" -- $C setting storage.path '"/tmp/x"'
expect_exit 2 "ctl setting: a bad value" -- $C setting confidence.threshold '"high"'
expect_exit 2 "ctl edit: a PATH with a newline" -- $C edit work set "$(printf 'params.steps[added].time\nout')" 3
expect_match "$err" "holds a control character \(byte 0x0a" "the server refuses the newline"
expect_exit 2 "ctl edit: a PATH with a tab" -- $C edit work set "$(printf 'params\t.timeout_seconds')" 3
expect_exit 2 "ctl edit: an empty component" -- $C edit work set 'params.steps[added]..timeout' 3
expect_exit 2 "ctl setting: a KEY with a newline" -- $C setting "$(printf 'confidence.thre\nshold')" 0.5
expect_match "$err" "holds a control character" "the server refuses the setting's key"
printf '%s\n' '{"cmd":"edit","args":["work","set","params.steps[added].time\u0000out","3"]}' \
    '{"cmd":"setting","args":["confidence.thre\u0000shold","0.5"]}' >"$SCRATCH/nul.in"
expect_exit 0 "a NUL in an edit PATH and a setting KEY, as JSON over the socket" -- sh -c "$NDF -c $CONF ctl send <'$SCRATCH/nul.in'"
expect_match "$(printf '%s\n' "$out" | sed -n 1p)" '"ok":false,.*NUL' "the NUL in the PATH is refused"
expect_match "$(printf '%s\n' "$out" | sed -n 2p)" '"ok":false,.*NUL' "the NUL in the KEY is refused"
expect_exit 3 "ctl undefine: no such pattern" -- $C undefine nosuch
expect_exit 3 "ctl setting --unset: no run-time value" -- $C setting --unset executor.kill_grace
expect_exit 0 "ctl definitions --export after the bad requests" -- $C definitions --export
[ "$out" = "$before" ] && ok "the bad requests changed nothing" || not_ok "the definitions changed"

touch "$SCRATCH/stop"
wait "$CLIENT"
[ ! -s "$SCRATCH/client.err" ] && ok "no client execution failed ($(cat "$SCRATCH/client.n") runs)" \
    || not_ok "client executions failed: $(head -3 "$SCRATCH/client.err")"

# ---- a restart: still there ----
kill -TERM "$SERVER"
wait "$SERVER" && ok "the server stops cleanly" || not_ok "the server exited $?"
"$NDF" -c "$CONF" serve --no-watch 2>"$SCRATCH/serve2.log" &
SERVER=$!
for i in $(seq 1 100); do
    $R ctl ping >/dev/null 2>&1 && break
    sleep 0.05
done
expect_exit 0 "ctl definitions --export after a restart" -- $C definitions --export
[ "$out" = "$before" ] && ok "the definitions survive a restart" || not_ok "the definitions changed across a restart"
expect_exit 0 "ctl run after the restart" -- $C run work
expect_match "$err$out" "added" "the edited definition serves after the restart"
expect_exit 0 "ctl run served after the restart" -- $C run served
expect_exit 0 "ctl undefine" -- $C undefine work
expect_match "$out" "^undefined the run-time definition of 'work' \($CONF:5 serves again\)" "the file's definition serves again"
expect_exit 0 "ctl run work: the file's definition" -- $C run work
expect_match "$err$out" "step s" "the file's steps run again"
expect_exit 0 "ctl setting --unset" -- $C setting --unset confidence.threshold
expect_exit 0 "ctl config" -- $C config
expect_match "$out" '"threshold":0[,}]' "the file's threshold applies again"
kill -TERM "$SERVER"
wait "$SERVER" && ok "the server stops cleanly again" || not_ok "the server exited $?"
# one-shot commands see what the server did
expect_exit 0 "one-shot list" -- $R list
expect_match "$out" "^served .* run-time$" "a one-shot list sees the server's run-time definition"
expect_match "$out" "^work .* file$" "and the undefine"

# ---- one-shot changes while a server runs: the next request sees them ----
# (the one-shot commands keep their plugin copies in a runtime directory of
# their own: they share the store, not the server's private copies)
rm -f "$SCRATCH/stop" "$SCRATCH/client.err"
"$NDF" -c "$CONF" serve --no-watch 2>"$SCRATCH/serve3.log" &
SERVER=$!
for i in $(seq 1 100); do
    $R ctl ping >/dev/null 2>&1 && break
    sleep 0.05
done
mkdir -m 700 "$SCRATCH/run1"
O="env NDF_RUNTIME_DIR=$SCRATCH/run1 $R"
( i=0; while [ ! -f "$SCRATCH/stop" ]; do
      $C run work >/dev/null 2>&1 || echo "run $i failed" >>"$SCRATCH/client.err"; i=$((i + 1))
  done; echo "$i" >"$SCRATCH/client.n" ) &
CLIENT=$!
expect_exit 0 "one-shot edit while the server runs" -- $O edit work insert params.steps '{ name = "oneshot"; step = "noop"; }'
expect_exit 0 "ctl show right after it, no reload" -- $C show work
expect_match "$out" '"name":"oneshot"' "the server serves the one-shot edit"
expect_exit 0 "ctl run right after it" -- $C run work
expect_match "$err$out" "step oneshot" "the next ctl run runs the added step"
expect_exit 0 "one-shot define while the server runs" -- $O define --text '{ name = "fresh"; type = "sequential"; params = { steps = ( { name = "f"; step = "noop"; } ); }; }'
expect_exit 0 "ctl run of the one-shot definition, no reload" -- $C run fresh
expect_exit 0 "one-shot setting while the server runs" -- $O setting confidence.threshold 0.02
expect_exit 0 "ctl config right after it" -- $C config
expect_match "$out" '"threshold":0.02' "the server serves the one-shot setting"
expect_exit 0 "one-shot undefine while the server runs" -- $O undefine fresh
expect_exit 3 "ctl run of the undefined pattern, no reload" -- $C run fresh
expect_match "$err" "no pattern named 'fresh'" "the server dropped it"
expect_exit 0 "one-shot setting --unset" -- $O setting --unset confidence.threshold
expect_exit 0 "one-shot undefine of the edit" -- $O undefine work
expect_exit 0 "ctl show after the undefine" -- $C show work
case "$out" in *oneshot*) not_ok "the server still serves the undefined edit" ;;
    *) ok "the file's definition serves again" ;; esac
touch "$SCRATCH/stop"
wait "$CLIENT"
[ ! -s "$SCRATCH/client.err" ] && ok "no client execution failed ($(cat "$SCRATCH/client.n") runs)" \
    || not_ok "client executions failed: $(head -3 "$SCRATCH/client.err")"
grep -q "run-time definitions changed in the store: generation [0-9]* serves" "$SCRATCH/serve3.log" \
    && ok "the server logs each change it took" || not_ok "no change logged: $(tail -3 "$SCRATCH/serve3.log")"
n=$(grep -c "run-time definitions changed in the store" "$SCRATCH/serve3.log")
[ "$n" -le 6 ] && ok "one new generation per change at most ($n for 6 changes)" \
    || not_ok "$n new generations for 6 changes"
kill -TERM "$SERVER"
wait "$SERVER" && ok "the server stops cleanly a third time" || not_ok "the server exited $?"

finish
