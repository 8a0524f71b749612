#!/bin/sh
# The seed's complete example, run for real from the build tree by
# `make demo`: three patterns do small real work in a scratch directory,
# then a failure shows rollback, a fallback and the learning that follows.
# Usage: demo.sh NDF CONFIG
set -u
NDF=$1
CONF=$2
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ndf-demo.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# The demo learns from a clean slate each time, in a store of its own: what
# it shows at the end is what this run taught ndf, and a failure it causes
# on purpose never lowers a pattern's confidence below the gate for the next
# demo (or for whoever else uses the build tree's store).
sed 's|^\([[:space:]]*path = \)"[^"]*";|\1"'"$WORK"'/state";|' "$CONF" >"$WORK/ndf.conf"
grep -q "path = \"$WORK/state\";" "$WORK/ndf.conf" || {
    echo "demo: cannot point storage.path of $CONF at a scratch directory" >&2
    exit 1
}
CONF=$WORK/ndf.conf
ndf() { "$NDF" -c "$CONF" "$@"; }
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ] && [ "${TERM:-dumb}" != dumb ]; then
    say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
    say() { printf '\n== %s\n' "$*"; }
fi
bad=0
expect() { # expect CODE command...
    want=$1
    shift
    "$@"
    got=$?
    if [ "$got" -ne "$want" ]; then
        echo "demo: '$*' exited $got, expected $want" >&2
        bad=1
    fi
}

say "Plugins and patterns"
expect 0 ndf plugins
expect 0 ndf list

say "Data processing pipeline (sequential)"
expect 0 ndf run data_processing_pipeline --domain data_engineering --agent-type data_processor \
    --priority 1 --attr data_size=large --attr processing_type=batch \
    --attr quality_requirements=high --attr workdir="$WORK"
ls "$WORK/pipeline"

say "Microservice deployment (parallel), with basic_deployment as fallback"
expect 0 ndf run microservice_deployment --fallback basic_deployment --domain devops \
    --agent-type deployment_engineer --priority 2 --attr environment=production \
    --attr deployment_strategy=blue_green --attr scaling=auto --attr workdir="$WORK"

say "System migration orchestration (meta)"
expect 0 ndf run system_migration_orchestration --domain enterprise_architecture \
    --agent-type solution_architect --priority 5 --attr migration_type=cloud_native \
    --attr complexity=enterprise --attr 'compliance=[SOX, GDPR]' --attr workdir="$WORK"

say "A step that fails: the pipeline rolls back what it did"
expect 1 ndf run data_processing_pipeline --domain data_engineering --agent-type data_processor \
    --attr fail_step=apply_business_rules --attr workdir="$WORK"

say "One failed health check of four: tolerated"
expect 0 ndf run service_health_checks --domain monitoring --agent-type sre \
    --attr fail_step=check_payment_service

say "A deployment that fails past its tolerance: rollback, then the fallback takes over"
expect 0 ndf run microservice_deployment --fallback basic_deployment --domain devops \
    --agent-type deployment_engineer --attr fail_step=deploy_order_service \
    --attr workdir="$WORK"

say "What the last execution did"
expect 0 ndf status

say "Patterns similar to a streaming data-processing context"
expect 0 ndf similar --domain data_processing --agent-type data_analyst \
    --attr processing_type=stream --threshold 0.3

say "What ndf learned"
expect 0 ndf list
expect 0 ndf analytics data_processing_pipeline
ndf export data_processing_pipeline --format csv | head -5

[ "$bad" -eq 0 ] && say "Demo complete" || say "Demo finished with unexpected results"
exit "$bad"
