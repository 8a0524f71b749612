#!/bin/sh
# Delegation through the server and in batches: `ndf ctl delegate` (the
# "delegate" request: the same choice as `ndf delegate` for the same seed
# and history, fallbacks linked and recorded, exit 11 for no candidate,
# bad requests refused), and "delegate" lines of `ndf batch` (in input
# order, after the runs, each learning from the one before).
. "$top_srcdir/tests/shell/lib.sh"

RUN=$SCRATCH/run
mkdir -m 700 "$RUN"
export NDF_RUNTIME_DIR=$RUN
SOCK=$RUN/d.sock

# mkconf NAME: a configuration with its own store; sets $R.
mkconf() {
    cat >"$SCRATCH/$1.conf" <<CONF
executor: { threads = 2; default_timeout = 30.0; kill_grace = 0.3; };
storage: { path = "$SCRATCH/$1.state"; };
confidence: { threshold = 0.75; };
patterns = (
  { name = "exact_fails"; type = "sequential"; domains = [ "web" ];
    params = { steps = ( { name = "s"; step = "exec"; params = { argv = [ "false" ]; }; } ); }; },
  { name = "glob_ok"; type = "sequential"; domains = [ "web*" ];
    params = { steps = ( { name = "s"; step = "exec"; params = { argv = [ "true" ]; }; } ); }; },
  { name = "only_fails"; type = "sequential"; domains = [ "solo" ];
    params = { steps = ( { name = "s"; step = "exec"; params = { argv = [ "false" ]; }; } ); }; },
  { name = "plain"; type = "sequential"; domains = [ "other" ];
    params = { steps = ( { name = "s"; step = "exec"; params = { argv = [ "true" ]; }; } ); }; }
);
CONF
    R="$NDF -c $SCRATCH/$1.conf"
}

json_get() {
    printf '%s\n' "$out" | python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"
}

# ---- the socket verb ----
mkconf srv
$R serve --no-watch --socket "$SOCK" 2>"$SCRATCH/serve.log" &
SERVER=$!
i=0
while [ $i -lt 200 ]; do
    $R ctl --socket "$SOCK" ping >/dev/null 2>&1 && break
    sleep 0.05
    i=$((i + 1))
done
C="$R ctl --socket $SOCK"

expect_exit 0 "ctl delegate --policy fixed --json: the fallback succeeds" -- \
    $C delegate --domain web --policy fixed --seed 3 --json
expect_match "$(json_get '" ".join(a["pattern"] + ":" + a["outcome"] for a in d["attempts"])')" \
    '^exact_fails:failure glob_ok:success$' "the server ran the choice, then the fallback"
expect_match "$(json_get 'd["success"], d["pattern"], d["delegation"]["seed"], d["delegation"]["policy"]')" \
    '^True glob_ok 3 fixed$' "the answer is the delegation, as 'ndf delegate --json' prints it"
fb_id=$(json_get 'd["attempts"][1]["id"]')
expect_exit 0 "ctl status of the fallback attempt" -- $C status "$fb_id" --json
expect_match "$out" '"fallback_from":"exact_fails"' "it is linked to the attempt before it"
expect_match "$out" '"delegate_reason":"fixed: similarity' "and carries why it was chosen"

expect_exit 0 "ctl delegate without --json" -- $C delegate --domain web --policy fixed --explain
expect_match "$out" "^delegation: policy fixed, seed [0-9]+, domain 'web', 2 candidates$" \
    "--explain prints the table"
expect_match "$out" '^exact_fails +0\.750 +[0-9.]+ +\[[0-9. ]+\] +1/1 ' \
    "with what the server learned (1 of 1 in 'web')"
expect_match "$err" "^delegate: chose 'exact_fails' \\(fixed: similarity 0\\.750" "says what it chose"
expect_match "$err" "^delegate: falling back to 'glob_ok'" "and the fallback"

expect_exit 0 "after two failures in 'web', fixed holds exact_fails back" -- \
    $C delegate --domain web --policy fixed --max-fallbacks 0 --json
expect_match "$(json_get '" ".join(c["pattern"] + ":" + c["verdict"] for c in d["delegation"]["candidates"])')" \
    '^exact_fails:below threshold glob_ok:chosen$' "it is confidently below its threshold now"
expect_exit 1 "ctl delegate --max-fallbacks 0: the failure is the result (exit 1)" -- \
    $C delegate --domain solo --max-fallbacks 0
expect_match "$err" "^delegate: chose 'only_fails'" "says what it chose"
expect_match "$err" "^pattern only_fails: execution failed \\(execution [^)]+\\)" "and how it ended"
expect_exit 11 "ctl delegate with no candidate exits 11" -- $C delegate --domain nowhere
expect_match "$err" "no pattern suits the context \\(domain 'nowhere'" "and says why"
expect_exit 11 "with --json too" -- $C delegate --domain nowhere --json
expect_match "$(json_get 'd["success"], d["status"], len(d["attempts"])')" '^False not found 0$' \
    "the JSON says nothing was tried"
expect_exit 2 "an unknown policy is a usage error on the client" -- $C delegate --policy best
printf '%s\n' '{"cmd":"delegate","policy":"best"}' '{"cmd":"delegate","seed":-1}' \
    '{"cmd":"delegate","max_fallbacks":1.5}' '{"cmd":"delegate","context":[]}' >"$SCRATCH/bad.req"
expect_exit 0 "raw bad delegate requests" -- sh -c "$C send <'$SCRATCH/bad.req'"
expect_match "$out" '"policy\\" must be thompson' "a bad policy is refused"
expect_match "$out" '"seed\\" must be a whole number' "a negative seed is refused"
expect_match "$out" '"max_fallbacks\\" must be a whole number' "a fractional max_fallbacks is refused"
expect_match "$out" '"context\\" must be an object' "a context that is no object is refused"

# the same seed and history: the server and the one-shot command agree
mkconf same1
expect_exit 0 "one-shot delegation, seed 11" -- $R delegate --domain web --seed 11 --json
one=$(json_get '",".join(d["delegation"]["order"]) + " %.6f" % d["delegation"]["candidates"][0]["score"]')
kill -TERM $SERVER
wait $SERVER
mkconf same2
$R serve --no-watch --socket "$SOCK" 2>"$SCRATCH/serve2.log" &
SERVER=$!
i=0
while [ $i -lt 200 ]; do
    $R ctl --socket "$SOCK" ping >/dev/null 2>&1 && break
    sleep 0.05
    i=$((i + 1))
done
C="$R ctl --socket $SOCK"
expect_exit 0 "served delegation, seed 11, fresh store" -- $C delegate --domain web --seed 11 --json
two=$(json_get '",".join(d["delegation"]["order"]) + " %.6f" % d["delegation"]["candidates"][0]["score"]')
if [ -n "$one" ] && [ "$one" = "$two" ]; then
    ok "the server draws what the command draws ($one)"
else
    not_ok "served and one-shot choices differ: '$one' vs '$two'"
fi
# several clients at once: every delegation answered, every attempt stored
pids=
i=0
while [ $i -lt 6 ]; do
    $C delegate --domain web --seed $i --json >"$SCRATCH/par.$i" 2>&1 &
    pids="$pids $!"
    i=$((i + 1))
done
for p in $pids; do wait $p; done
good=$(cat "$SCRATCH"/par.* | grep -c '"success": *true')
[ "$good" -eq 6 ] && ok "6 delegations at once all succeeded" ||
    not_ok "only $good of 6 concurrent delegations succeeded"
kill -TERM $SERVER
wait $SERVER
expect_exit 0 "runs after the server stopped" -- $R runs --limit 100
expect_match "$(printf '%s\n' "$out" | grep -c ' delegate ')" '^([7-9]|1[0-9])$' \
    "every attempt was stored with the delegate origin"
if grep -q 'not recorded\|ERROR' "$SCRATCH/serve.log" "$SCRATCH/serve2.log"; then
    not_ok "the server logged errors"
    sed 's/^/# /' "$SCRATCH/serve.log" "$SCRATCH/serve2.log" | head
else
    ok "the server logged no errors"
fi

# ---- batch ----
mkconf batch
cat >"$SCRATCH/b.jsonl" <<'EOF'
{"pattern": "plain"}
{"kind": "delegate", "context": {"domain": "web"}, "policy": "fixed", "seed": 1}
{"kind": "delegate", "context": {"domain": "web"}, "policy": "greedy", "seed": 2}
{"kind": "delegate", "context": {"domain": "nowhere"}}
{"kind": "delegate", "pattern": "plain"}
{"kind": "delegate", "policy": "best"}
{"kind": "frob"}
EOF
expect_exit 1 "batch with delegate lines (some fail)" -- $R batch "$SCRATCH/b.jsonl"
lines=$(printf '%s\n' "$out" | python3 -c '
import json, sys
for l in sys.stdin:
    d = json.loads(l)
    print(d["line"], d.get("kind", "run"), d.get("pattern"), d["status"],
          "+".join(a["pattern"] for a in d.get("delegation", {}).get("attempts", [])) or "-",
          d.get("error", "")[:120])
')
expect_match "$lines" '^1 run plain ok - $' "a run line runs as before"
expect_match "$lines" '^2 delegate glob_ok ok exact_fails\+glob_ok $' \
    "a delegate line: fixed falls back to the pattern that succeeds"
expect_match "$lines" '^3 delegate glob_ok ok glob_ok $' \
    "the next delegation learned from the one before it (greedy avoids the failed one)"
expect_match "$lines" "^4 delegate None not found - no pattern suits the context" \
    "no candidate is the line's failure"
expect_match "$lines" '^5 .*takes no "pattern"' "a delegate line with a pattern is refused"
expect_match "$lines" '^6 .*"policy" must be thompson' "a bad policy is refused"
expect_match "$lines" '^7 .*"kind" must be "run" or "delegate"' "an unknown kind is refused"

finish
