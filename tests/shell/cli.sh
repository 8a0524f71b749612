#!/bin/sh
# The command line: help, version, unknown commands and options, exit codes.
. "$top_srcdir/tests/shell/lib.sh"

expect_exit 0 "--help exits 0" -- "$NDF" --help
expect_match "$out" '^Usage: ndf ' "--help prints usage"
expect_exit 0 "--version exits 0" -- "$NDF" --version
expect_match "$out" '^ndf [0-9]+\.[0-9]+\.[0-9]+ \(plugin ABI 1\.[0-9]+\)$' "--version names the ABI"
expect_exit 2 "no command exits 2" -- "$NDF"
expect_exit 2 "unknown command exits 2" -- "$NDF" frobnicate
expect_match "$err" "unknown command 'frobnicate'" "unknown command is named"
expect_exit 2 "unknown global option exits 2" -- "$NDF" --frobnicate list
expect_exit 2 "a missing -c file exits 2" -- "$NDF" -c "$SCRATCH/nope.conf" check-config
expect_match "$err" "nope.conf" "the missing file is named"

# Every command answers --help with its usage and exit 0.
for cmd in $("$NDF" --help | awk '/^Commands:/ {on=1; next} on && /^  [a-z]/ {print $1}'); do
    expect_exit 0 "$cmd --help exits 0" -- "$NDF" "$cmd" --help
    expect_match "$out" "Usage: ndf $cmd" "$cmd --help prints its usage"
    expect_exit 2 "$cmd rejects an unknown option" -- "$NDF" "$cmd" --no-such-option
done

# Commands that take one PATTERN say what is missing or extra.
for cmd in show export reset-stats analytics; do
    expect_exit 2 "$cmd without a pattern exits 2" -- "$NDF" -c /dev/null "$cmd"
    expect_match "$err" "^ndf $cmd: which pattern\\?" "$cmd asks which pattern"
    expect_exit 2 "$cmd with two patterns exits 2" -- "$NDF" -c /dev/null "$cmd" a b
    expect_match "$err" "^ndf $cmd: too many arguments" "$cmd says too many"
done
finish
