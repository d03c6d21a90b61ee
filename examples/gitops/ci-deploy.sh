#!/bin/sh
# Deploys the manifests of a GitOps repository to nanocld, as a CI job runs it on each commit:
#
#   nanocl diff  -R -f DIR --prune --applyset NAME     (0: nothing to do, 1: changes, 2+: error)
#   nanocl apply -R -f DIR --prune --applyset NAME --wait    (only when diff said 1)
#
# Usage: ci-deploy.sh [DIR]   (default: deploy, next to this script)
# Environment:
#   NANOCL_HOST      where nanocld is (default: its local socket)
#   NANOCL           the nanocl binary (default: nanocl on PATH)
#   NANOCL_APPLYSET  the applyset owning what DIR defines (default: gitops)
#   NANOCL_TIMEOUT   how long --wait waits for every object to be Ready (default: 5m)
#
# Exit status: 0 deployed or nothing to deploy; otherwise the failing command's status (diff's
# 2 or more, apply's 1), so the job fails and nothing half-validated is applied: apply checks
# every document of every file before writing anything.
set -u
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-$here/deploy}
nanocl=${NANOCL:-nanocl}
applyset=${NANOCL_APPLYSET:-gitops}
timeout=${NANOCL_TIMEOUT:-5m}

echo "ci-deploy: nanocl diff -R -f $dir --prune --applyset $applyset"
"$nanocl" diff -R -f "$dir" --prune --applyset "$applyset"
status=$?
case $status in
  0)
    echo "ci-deploy: no differences: nothing to deploy"
    exit 0
    ;;
  1)
    echo "ci-deploy: differences found: applying"
    ;;
  *)
    echo "ci-deploy: error: nanocl diff failed (exit $status): nothing was applied" >&2
    exit "$status"
    ;;
esac

"$nanocl" apply -R -f "$dir" --prune --applyset "$applyset" --wait --timeout "$timeout"
status=$?
if [ "$status" -ne 0 ]; then
  echo "ci-deploy: error: nanocl apply failed (exit $status)" >&2
  exit "$status"
fi
echo "ci-deploy: deployed"
