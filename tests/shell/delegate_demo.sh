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
# the weaker patterns' share of the first 30, report_fast's of the last 20
early=$(printf '%s\n' "$out" | awk '$1 ~ /^(1-10|11-20|21-30)$/ { n += $3 + $4 } END { print n + 0 }')
late=$(printf '%s\n' "$out" | awk '$1 ~ /^(41-50|51-60)$/ { n += $2 } END { print n + 0 }')
if [ "$early" -ge 5 ]; then
    ok "the first 30 delegations explore the weaker patterns ($early of 30)"
else
    not_ok "the first 30 delegations explored too little ($early of 30)"
fi
if [ "$late" -ge 17 ]; then
    ok "the last 20 delegations choose report_fast ($late of 20)"
else
    not_ok "the last 20 delegations chose report_fast only $late of 20 times"
fi
expect_match "$out" '^report_fast +[0-9.]+ +0\.[89][0-9]* ' \
    "the explain table ends with report_fast's posterior mean near 0.9"
expect_exit 2 "a bad RUNS is refused" -- sh "$top_srcdir/conf/delegation/demo.sh" "$NDF" ten
finish
