#!/bin/sh
# Context values are data in every way they reach a shell command: through
# `run --attr`, `run --context FILE`, `batch`, `delegate`, and a socket
# client's `run` (its context inline).  Each hostile value (a command
# separator, $(...), backquotes, a newline, quotes of both kinds, a leading
# -, a trailing backslash) is printed as it is by a `shell = true` command
# that names it bare, in double quotes and in single quotes, and runs
# nothing; the same value is in NDF_ATTR_WHO unquoted.
. "$top_srcdir/tests/shell/lib.sh"
RUN=$SCRATCH/run
mkdir -m 700 "$RUN"
export NDF_RUNTIME_DIR=$RUN
D=$SCRATCH/d
mkdir "$D"
CONF=$SCRATCH/inj.conf
cat >"$CONF" <<EOF
confidence: { threshold = 0.0; };
storage: { path = "$SCRATCH/state"; };
plugins: { cache_dir = "$RUN/cache"; };
patterns = (
    { name = "echo"; type = "sequential"; domains = [ "inj" ];
      params = { steps = ( { name = "s"; step = "exec";
        params = { shell = true; command =
          "printf '[%s]' \${attr.who} >$D/plain; printf '[%s]' \"dq \${attr.who}\" >$D/dq; "
          "printf '[%s]' 'sq \${attr.who}' >$D/sq; printf '[%s]' \"\$NDF_ATTR_WHO\" >$D/env"; }; } ); }; }
);
EOF
# the values as printf %b reads them (\n a newline, \\ a backslash)
set -- 'x; touch PWNED' '$(touch PWNED)' '`touch PWNED`' 'a\ntouch PWNED' \
    "'; touch PWNED; echo '" '"; touch PWNED; echo "' '-n' 'back\\' '$HOME ${HOME} $$'
R="$NDF -q -c $CONF"
# json STRING: a JSON string literal of it
json() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' |
    awk 'BEGIN { ORS = "" } { if (NR > 1) print "\\n"; print }' | sed 's/^/"/; s/$/"/'; }
# check HOW VALUE: the four files hold exactly the value, and nothing ran
check() {
    how=$1 v=$2 bad=
    for f in plain dq sq env; do
        case $f in dq) want="[dq $v]" ;; sq) want="[sq $v]" ;; *) want="[$v]" ;; esac
        [ "$(cat "$D/$f" 2>/dev/null)" = "$want" ] || bad="$bad $f=$(cat "$D/$f" 2>/dev/null)"
    done
    [ -z "$bad" ] && [ ! -e "$D/PWNED" ] && [ ! -e "$SCRATCH/PWNED" ] && [ ! -e PWNED ] &&
        ok "$how: $(printf '%s' "$v" | head -1) stays data" ||
        not_ok "$how: $(printf '%s' "$v" | head -1):$bad$( [ -e "$D/PWNED" ] || [ -e PWNED ] && echo ' (code ran)')"
    rm -f "$D"/*
}
# check-config warns at the command's line about a reference in quotes,
# where ndf's quoting differs from what the quotes were written for
expect_exit 0 "check-config accepts the command" -- "$NDF" -c "$CONF" check-config
expect_match "$err" "inj\.conf:7: step exec: \\\$\\{\.\.\.\\} inside double quotes of a shell command is inserted as one literal value" \
    "and warns about the reference inside double quotes"
sed 's/ \\"dq \${attr.who}\\"/ dq/' "$CONF" >"$SCRATCH/sq.conf"
expect_exit 0 "check-config of a reference in single quotes only" -- "$NDF" -c "$SCRATCH/sq.conf" check-config
expect_match "$err" "sq\.conf:7: step exec: \\\$\\{\.\.\.\\} inside single quotes" "warns about it too"
sed 's/ \\"dq \${attr.who}\\"/ dq/; s/ .sq \${attr.who}./ sq/' "$CONF" >"$SCRATCH/bare.conf"
expect_exit 0 "check-config of bare references" -- "$NDF" -c "$SCRATCH/bare.conf" check-config
if printf '%s\n' "$err" | grep -q 'inside .* quotes'; then
    not_ok "bare references draw the quotes warning"
else
    ok "bare references draw no warning"
fi

cd "$D" || exit 1
for raw in "$@"; do
    v=$(printf '%b' "$raw")
    $R run echo --attr "who=$v" >/dev/null 2>&1
    check "run --attr" "$v"
    printf '{"domain":"inj","attributes":{"who":%s}}\n' "$(json "$v")" >"$SCRATCH/ctx.json"
    $R run echo --context "$SCRATCH/ctx.json" >/dev/null 2>&1
    check "run --context" "$v"
    printf '{"pattern":"echo","context":{"attributes":{"who":%s}}}\n' "$(json "$v")" | $R batch - >/dev/null 2>&1
    check "batch" "$v"
    $R delegate --context "$SCRATCH/ctx.json" >/dev/null 2>&1
    check "delegate" "$v"
done

"$NDF" -c "$CONF" serve --no-watch 2>"$SCRATCH/serve.log" &
SERVER=$!
for i in $(seq 1 100); do
    "$NDF" -c "$CONF" ctl ping >/dev/null 2>&1 && break
    sleep 0.05
done
for raw in "$@"; do
    v=$(printf '%b' "$raw")
    printf '{"cmd":"run","pattern":"echo","context":{"attributes":{"who":%s}}}\n' "$(json "$v")" |
        "$NDF" -c "$CONF" ctl send >/dev/null 2>&1
    check "the socket" "$v"
    $R ctl run echo --attr "who=$v" >/dev/null 2>&1
    check "ctl run --attr" "$v"
done
kill "$SERVER"
wait "$SERVER"
finish
