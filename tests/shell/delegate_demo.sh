#!/bin/sh
# The delegation demo (conf/delegation/demo.sh): over 60 seeded delegations
# among patterns that succeed 9, 6 and 3 runs in 10, Thompson sampling tries
# the weaker ones early and settles on the best one.  The seeds and the
# patterns' success cycles are fixed, so the counts below are the same on
# every run: the assertions cannot be flaky.
. "$top_srcdir/tests/shell/lib.sh"
expect_exit 0 "the delegation demo runs" -- \
    sh "$top_srcdir/conf/delegation/demo.sh" "$NDF" 60
expect_match "$out" '^DELEGATIONS +report_fast +report_cached +report_legacy$' "a table of choices"
first=$(printf '%s\n' "$out" | awk '$1 == "1-10" { print $3 + $4 }')
last=$(printf '%s\n' "$out" | awk '$1 == "51-60" { print $2 }')
if [ -n "$first" ] && [ "$first" -ge 3 ]; then
    ok "the first 10 delegations explore the weaker patterns ($first of 10)"
else
    not_ok "the first 10 delegations explored too little ('$first' of 10)"
fi
if [ -n "$last" ] && [ "$last" -ge 8 ]; then
    ok "the last 10 delegations choose report_fast ($last of 10)"
else
    not_ok "the last 10 delegations chose report_fast only '$last' of 10 times"
fi
expect_match "$out" '^report_fast +[0-9.]+ +0\.[89][0-9]* ' \
    "the explain table ends with report_fast's posterior mean near 0.9"
expect_exit 2 "a bad RUNS is refused" -- sh "$top_srcdir/conf/delegation/demo.sh" "$NDF" ten
finish
