#!/bin/sh
# Configuration text that would drive a terminal: escape sequences (ESC,
# BEL), a C1 control (CSI as UTF-8), a lone 0x9b byte and invalid UTF-8 in
# names, types, descriptions, domains, tags, commands, include and file
# names.  Whatever prints them (check-config's file:line errors and
# warnings, plan, show, list, similar, graph, run) writes them escaped
# (\x1b, \u009b, \xff), never raw.
. "$top_srcdir/tests/shell/lib.sh"
D=$SCRATCH/cfg
mkdir -p "$D"
PLUG=$top_builddir/plugins/.libs
head_conf() {
    printf 'plugins = { dirs = [ "%s" ]; cache_dir = "%s"; };\nstorage = { path = "%s"; };\n' \
        "$PLUG" "$SCRATCH/cache" "$SCRATCH/state"
}
# raw_ctl TEXT: 0 when TEXT holds a byte a terminal acts on
raw_ctl() { printf '%s' "$1" | LC_ALL=C grep -qaP '[\x00-\x08\x0b-\x1f\x7f\x9b\xff]|\xc2[\x80-\x9f]'; }
check_safe() { # DESCRIPTION: $out and $err carry no raw control byte
    if raw_ctl "$out$err"; then
        not_ok "$1: a raw control byte reached the terminal"
        printf '%s\n' "$out$err" | cat -v | head -5 | sed 's/^/#   /'
    else
        ok "$1"
    fi
}
E=$(printf '\033')
# libconfig writes the bytes with \x escapes; the files also hold raw ones
{ head_conf
  printf 'patterns = (\n'
  printf ' { name = "ok"; type = "sequential"; description = "d\\x1b]0;owned\\x07 \\xc2\\x9b2J \\xff";\n'
  printf '   domains = [ "dom\\x1b[5m" ]; tags = [ "t%s[6m" ];\n' "$E"
  printf '   params = { steps = ( { name = "s\\x1b[1m"; step = "exec"; params = { argv = [ "echo", "\\x1b[31m" ]; }; } ); }; },\n'
  printf ' { name = "t2"; type = "nope\\x1b]2;x\\x07"; },\n'
  printf ' { name = "t3"; type = "sequential"; params = { steps = ( { name = "a"; step = "no\\x1b[9mpe"; } ); }; }\n'
  printf ');\n'
} >"$D/esc.conf"

{ head_conf
  printf 'patterns = ( { name = "bad\\x1b[2J"; type = "sequential"; params = { steps = ( { name = "a"; step = "noop"; } ); }; } );\n'
} >"$D/name.conf"
expect_exit 2 "check-config refuses a pattern name with ESC" -- "$NDF" -c "$D/name.conf" check-config
check_safe "check-config: its error is escaped"
expect_match "$err" "name\.conf:3: .*invalid name 'bad\\\\x1b\[2J'" "the name quoted escaped, at its line"
expect_exit 2 "check-config refuses the hostile types" -- "$NDF" -c "$D/esc.conf" check-config
check_safe "check-config: their errors are escaped"
expect_match "$err" "esc\.conf:[0-9]+: .*'nope\\\\x1b\]2;x\\\\x07'" "a pattern type quoted escaped"
expect_match "$err" "esc\.conf:[0-9]+: .*'no\\\\x1b\[9mpe'" "a step type quoted escaped"

# the valid pattern alone: its text through show, list, similar, plan, graph, run
{ head_conf; sed -n '/^patterns/,/^ { name = "t2"/p' "$D/esc.conf" | sed '$d' | sed '$s/},$/}/'; printf ');\n'; } >"$D/ok.conf"
expect_exit 0 "the pattern with escapes in its text is valid" -- "$NDF" -c "$D/ok.conf" check-config
for cmd in "show ok" "list" "similar --domain dom" "plan ok" "graph ok" "graph ok --dot"; do
    # shellcheck disable=SC2086
    "$NDF" -c "$D/ok.conf" $cmd >"$SCRATCH/o" 2>"$SCRATCH/e"
    out=$(cat "$SCRATCH/o") err=$(cat "$SCRATCH/e")
    check_safe "ndf $cmd: escaped"
done
"$NDF" -c "$D/ok.conf" show ok >"$SCRATCH/o" 2>&1
expect_match "$(cat "$SCRATCH/o")" 'd\\x1b\]0;owned\\x07 \\u009b2J \\xff' "show prints the description's controls as escapes"
expect_match "$(cat "$SCRATCH/o")" 't\\x1b\[6m' "and a raw ESC in a tag"
expect_exit 0 "run it" -- "$NDF" -c "$D/ok.conf" run ok
check_safe "run: the step's name is escaped"
# the step's name as the execution keeps it: status, logs, analytics, export
id=$("$NDF" -c "$D/ok.conf" runs ok --json | sed -n 's/.*"id":"\([^"]*\)".*/\1/p' | head -1)
for cmd in "status" "status $id -v" "logs $id" "analytics ok" "export ok -f csv" "export ok"; do
    # shellcheck disable=SC2086
    "$NDF" -c "$D/ok.conf" $cmd >"$SCRATCH/o" 2>"$SCRATCH/e"
    # logs prints the step's output as it was (its headers are ndf's);
    # CSV rows end in CR LF
    case $cmd in
    logs*) out=$(grep '^==>' "$SCRATCH/o") ;;
    *csv) out=$(tr -d '\r' <"$SCRATCH/o") ;;
    *) out=$(cat "$SCRATCH/o") ;;
    esac
    err=$(cat "$SCRATCH/e")
    check_safe "ndf $cmd: the step's name is escaped"
done
"$NDF" -c "$D/ok.conf" status "$id" -v >"$SCRATCH/o" 2>&1
expect_match "$(cat "$SCRATCH/o")" 's\\x1b\[1m' "status shows the step's name with its escape"

# a file name that is itself an escape sequence, with a syntax error in it,
# and an @include of a file that does not exist, named with one
bad="$D/x${E}]0;t$(printf '\007').conf"
printf 'executor = { threads = ; };\n' >"$bad"
expect_exit 2 "a syntax error in a file named with an escape sequence" -- "$NDF" -c "$bad" check-config
check_safe "its file name is escaped in the error"
expect_match "$err" 'x\\x1b\]0;t\\x07\.conf:1: ' "with file:line"
{ head_conf; printf '@include "in\\x1b[2Jc.conf"\n'; } >"$D/inc.conf"
printf '@include "in%s[2Jc.conf"\n' "$E" >>"$D/inc2.conf"
for f in inc.conf inc2.conf; do
    expect_exit 2 "an @include of a missing file named with ESC ($f)" -- "$NDF" -c "$D/$f" check-config
    check_safe "the include error is escaped ($f)"
done
finish
