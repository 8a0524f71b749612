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

# Long options are taken by their exact names only: getopt_long's
# abbreviations let "--c FILE" through as --context.
expect_exit 2 "an abbreviated long option is refused" -- "$NDF" -c /dev/null list --js
expect_match "$err" "unrecognized option '--js' \\(abbreviations are not accepted; did you mean '--json'\\?\\)" \
    "and the message names the option meant"
expect_exit 2 "an abbreviated global option is refused" -- "$NDF" --conf /dev/null list
expect_match "$err" "did you mean '--config'" "naming it"
expect_exit 2 "similar --c FILE reads no file" -- "$NDF" -c /dev/null similar --c /dev/null
expect_match "$err" "did you mean '--context'" "and names --context"
expect_exit 0 "the exact names still work, --name=value included" -- \
    "$NDF" --config=/dev/null list --json --domain=x
expect_match "$out" '^\{"patterns":\[' "and the command ran"

# Commands that take one PATTERN say what is missing or extra.
for cmd in show export reset-stats analytics; do
    expect_exit 2 "$cmd without a pattern exits 2" -- "$NDF" -c /dev/null "$cmd"
    expect_match "$err" "^ndf: $cmd: which pattern\\?" "$cmd asks which pattern"
    expect_exit 2 "$cmd with two patterns exits 2" -- "$NDF" -c /dev/null "$cmd" a b
    expect_match "$err" "^ndf: $cmd: too many arguments" "$cmd says too many"
done
finish
