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

finish() {
    printf '1..%d\n# %d passed, %d failed\n' $((pass + fail)) "$pass" "$fail"
    [ "$fail" -eq 0 ]
}
