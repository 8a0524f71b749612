#!/bin/sh
# Delegation learning, shown: runs `ndf delegate` RUNS times (default 60)
# over the pattern set in patterns.conf (three patterns for the domain
# "reports" that succeed 9, 6 and 3 runs in 10), one attempt each
# (--max-fallbacks 0, so each delegation is one choice and one outcome),
# delegation i with --seed i, and prints which pattern was chosen in each
# block of 10 delegations, then the candidate table ndf ends with.  The
# learning goes to a scratch store: the demo starts from no history.
# Usage: demo.sh NDF [RUNS]   (NDF_PLUGIN_PATH as for ndf itself)
set -u
NDF=${1:?usage: demo.sh NDF [RUNS]}
RUNS=${2:-60}
case $RUNS in '' | *[!0-9]*) echo "demo.sh: RUNS must be a number" >&2; exit 2 ;; esac
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ndf-delegation.XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/patterns" "$WORK/work"
cp "$HERE/patterns.conf" "$WORK/patterns/" || exit 1
cat >"$WORK/ndf.conf" <<CONF
storage: { path = "$WORK/state"; };
executor: { threads = 2; };
patterns_dir = "$WORK/patterns";
CONF
ndf() { "$NDF" -c "$WORK/ndf.conf" "$@"; }

echo "Delegating 'reports' $RUNS times (thompson, seeds 1..$RUNS, no fallbacks)."
echo "Hidden success rates: report_fast 0.9, report_cached 0.6, report_legacy 0.3."
echo
printf '%-9s  %11s  %13s  %13s\n' DELEGATIONS report_fast report_cached report_legacy
fast=0 cached=0 legacy=0 i=1 from=1
while [ "$i" -le "$RUNS" ]; do
    chosen=$(ndf -q delegate --domain reports --attr workdir="$WORK/work" --seed "$i" \
        --max-fallbacks 0 --json |
        sed -n 's/.*"attempts":\[{"pattern":"\([^"]*\)".*/\1/p')
    case $chosen in
    report_fast) fast=$((fast + 1)) ;;
    report_cached) cached=$((cached + 1)) ;;
    report_legacy) legacy=$((legacy + 1)) ;;
    *) echo "demo.sh: delegation $i chose nothing" >&2; exit 1 ;;
    esac
    if [ $((i % 10)) -eq 0 ] || [ "$i" -eq "$RUNS" ]; then
        printf '%-11s  %11d  %13d  %13d\n' "$from-$i" "$fast" "$cached" "$legacy"
        fast=0 cached=0 legacy=0 from=$((i + 1))
    fi
    i=$((i + 1))
done
echo
echo "What ndf knows now (ndf delegate --explain, one more delegation):"
ndf -q delegate --domain reports --attr workdir="$WORK/work" --seed 0 --max-fallbacks 0 \
    --explain >"$WORK/explain" 2>&1
cat "$WORK/explain"
