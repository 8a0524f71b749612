# Shared helpers for the shell tests: counters, assertions, scratch space.
# Each test sources this, calls its checks, then `finish`.
set -u
: "${top_srcdir:?run through make check}" "${top_builddir:?}"
NDF=${NDF_BIN:-$top_builddir/ndf}
pass=0
fail=0
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/ndf-test.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT

ok() { pass=$((pass + 1)); printf 'ok %d - %s\n' $((pass + fail)) "$1"; }
not_ok() { fail=$((fail + 1)); printf 'not ok %d - %s\n' $((pass + fail)) "$1"; }

# expect_exit CODE DESCRIPTION -- command...: runs the command, captures its
# output in $out and $err, and checks its exit code.
expect_exit() {
    want=$1 desc=$2
    shift 3
    "$@" >"$SCRATCH/out" 2>"$SCRATCH/err"
    got=$?
    out=$(cat "$SCRATCH/out")
    err=$(cat "$SCRATCH/err")
    if [ "$got" -eq "$want" ]; then
        ok "$desc"
    else
        not_ok "$desc (exit $got, wanted $want)"
        sed 's/^/#   stdout: /' "$SCRATCH/out" | head -20
        sed 's/^/#   stderr: /' "$SCRATCH/err" | head -20
    fi
}

# expect_match TEXT REGEX DESCRIPTION
expect_match() {
    if printf '%s\n' "$1" | grep -Eq -- "$2"; then
        ok "$3"
    else
        not_ok "$3 (no match for /$2/)"
        printf '%s\n' "$1" | head -20 | sed 's/^/#   /'
    fi
}

# wait_for CMD...: waits up to 20 s for CMD to succeed; 1 if it never does
wait_for() {
    i=0
    while ! "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -ge 400 ] && return 1
        sleep 0.05
    done
}

finish() {
    printf '1..%d\n# %d passed, %d failed\n' $((pass + fail)) "$pass" "$fail"
    [ "$fail" -eq 0 ]
}

# A python3 that is a version manager's shim (pyenv) runs a shell script
# on every call, which costs more than the interpreter itself: calls go to
# the interpreter the shim resolves to, looked up once per test (in a file,
# so that calls in subshells and pipelines share it).
case $(command -v python3 2>/dev/null) in
*/shims/python3)
    python3() {
        if [ ! -s "$SCRATCH/.python3" ]; then
            command python3 -c 'import sys; print(sys.executable)' >"$SCRATCH/.python3.$$" 2>/dev/null &&
                mv -f "$SCRATCH/.python3.$$" "$SCRATCH/.python3"
        fi
        _py=
        [ -s "$SCRATCH/.python3" ] && read -r _py <"$SCRATCH/.python3"
        if [ -n "$_py" ] && [ -x "$_py" ]; then
            "$_py" "$@"
        else
            command python3 "$@"
        fi
    }
    ;;
esac

# json_checks TEXT EXPR DESCRIPTION [EXPR DESCRIPTION]...: one python3 for
# several checks of the same JSON (bound to `j`); each EXPR is one check,
# passed when true.  Without python3 every check is skipped.
json_checks() {
    _json=$1
    shift
    if ! command -v python3 >/dev/null 2>&1; then
        while [ $# -ge 2 ]; do ok "$2 # SKIP no python3"; shift 2; done
        return
    fi
    printf '%s\n' "$_json" >"$SCRATCH/json_checks.in"
    python3 -c '
import json, sys
try:
    j = json.load(open(sys.argv[1]))
    err = None
except Exception as e:
    j, err = None, "no JSON: %s" % e
args = sys.argv[2:]
for i in range(0, len(args) - 1, 2):
    res = "0"
    why = err or ""
    if err is None:
        try:
            res = "1" if eval(args[i]) else "0"
        except Exception as e:
            why = "%s: %s" % (type(e).__name__, e)
    print(res + "\t" + why.replace("\n", " "))
' "$SCRATCH/json_checks.in" "$@" >"$SCRATCH/json_checks.out" 2>&1
    exec 3<"$SCRATCH/json_checks.out"
    while [ $# -ge 2 ]; do
        _r= _why=
        IFS='	' read -r _r _why <&3
        if [ "$_r" = 1 ]; then
            ok "$2"
        else
            not_ok "$2${_why:+ ($_why)}"
            printf '%s\n' "$_json" | head -5 | sed 's/^/#   /'
        fi
        shift 2
    done
    exec 3<&-
}
