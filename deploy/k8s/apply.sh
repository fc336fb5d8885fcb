#!/usr/bin/env bash
# Applies a refnet overlay in three phases, so that nothing starts before what it needs:
#
#   1. platform  namespace, config, service accounts, network policies, OpenTelemetry Collector,
#                Kafka (with its KafkaTopics and KafkaUsers), PostgreSQL and, in dev, Keycloak with
#                its realm import; then waits until the Kafka cluster, every topic and user, and the
#                database report Ready, checks that every Secret the processes mount exists, and
#                waits for Keycloak to be Ready and its realm imported.
#   2. migrate   the migration Job of each service (and the topics Job on an external Kafka);
#                waits until every one has completed, and stops the release if one fails.
#   3. app       Deployments, Services, autoscalers, disruption budgets; waits for the rollouts.
#
# Every object carries its phase in the label refnet.vn/phase (tests/k8s checks it), so a phase is
# one `kubectl apply -l refnet.vn/phase=...` over the rendered overlay. Jobs are immutable, so the
# previous release's migration Jobs are deleted before the new ones are applied. An overlay whose
# OIDC_ISSUER is still the placeholder (a host under .invalid) is refused before anything is sent:
# nobody could sign in (README.md, "People sign in"). So is one whose SMS gateway or SMTP host is still
# its placeholder: every text or e-mail would fail (README.md, "Notifications' channels"; an empty
# value turns the channel off, as the dev overlay does).
#
# Usage: deploy/k8s/apply.sh OVERLAY [--dry-run]
#   OVERLAY   dev | prod | external, or the path of any kustomization
#   --dry-run render and send every phase to the API server with --dry-run=server; no waits
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
overlay="${1:?usage: $0 OVERLAY [--dry-run]}"
dry_run="${2:-}"
dir="$overlay"
[[ -d "$dir" ]] || dir="$here/overlays/$overlay"
[[ -f "$dir/kustomization.yaml" ]] || { echo "no kustomization at $dir" >&2; exit 2; }

TIMEOUT_PLATFORM="${TIMEOUT_PLATFORM:-1200}"  # seconds: a fresh Kafka and PostgreSQL take minutes
TIMEOUT_MIGRATE="${TIMEOUT_MIGRATE:-900}"
TIMEOUT_ROLLOUT="${TIMEOUT_ROLLOUT:-600s}"

manifest="$(mktemp)"
trap 'rm -f "$manifest"' EXIT
kubectl kustomize "$dir" >"$manifest"
ns="$(awk '/^kind: Namespace$/{f=1} f && /^  name: /{print $2; exit}' "$manifest")"
ns="${ns:-refnet}"
has_kind() { grep -q "^kind: $1\$" "$manifest"; }

if grep -Eq '^  OIDC_ISSUER: "?https?://[^/"]*\.invalid([/:"]|$)' "$manifest"; then
  echo "OIDC_ISSUER in $dir is still the placeholder: set your identity provider's issuer" \
    "(deploy/k8s/README.md, 'People sign in')" >&2
  exit 2
fi

if grep -Eq '^  NOTIFICATIONS_(SMS_GATEWAY_URL|SMTP_HOST): "?([a-z]+://)?[^/":]*\.invalid([/:"]|$)' "$manifest"; then
  echo "NOTIFICATIONS_SMS_GATEWAY_URL or NOTIFICATIONS_SMTP_HOST in $dir is still the placeholder: set your" \
    "gateway and mail server, or empty to turn the channel off (deploy/k8s/README.md, 'Notifications' channels')" >&2
  exit 2
fi

apply_phase() {
  echo "== phase $1"
  if [[ "$dry_run" == "--dry-run" ]]; then
    kubectl apply --server-side --field-manager=refnet-deploy --dry-run=server -l "refnet.vn/phase=$1" -f "$manifest"
  else
    kubectl apply --server-side --field-manager=refnet-deploy -l "refnet.vn/phase=$1" -f "$manifest"
  fi
}

# Secrets named in the manifest (volumes and secretKeyRef env), one per line.
referenced_secrets() {
  awk '
    /secretName: / { print $2 }
    /secretKeyRef:/ { in_ref = 1; next }
    in_ref && /name: / { print $2; in_ref = 0 }
  ' "$manifest" | sort -u
}

wait_jobs() {  # until every migrate-phase Job completed; fail fast when one failed
  local deadline=$((SECONDS + TIMEOUT_MIGRATE)) jobs failed pending
  jobs="$(kubectl -n "$ns" get job -l refnet.vn/phase=migrate -o name)"
  while :; do
    failed="" pending=""
    for job in $jobs; do
      conditions="$(kubectl -n "$ns" get "$job" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type} {end}')"
      case " $conditions " in
        *" Complete "*) ;;
        *" Failed "*) failed+=" $job" ;;
        *) pending+=" $job" ;;
      esac
    done
    if [[ -n "$failed" ]]; then
      echo "migration failed:$failed (kubectl -n $ns logs $failed); the app phase was not applied" >&2
      exit 1
    fi
    [[ -z "$pending" ]] && return 0
    if ((SECONDS > deadline)); then
      echo "migration still running after ${TIMEOUT_MIGRATE}s:$pending" >&2
      exit 1
    fi
    sleep 5
  done
}

apply_phase platform
if [[ "$dry_run" != "--dry-run" ]]; then
  t="${TIMEOUT_PLATFORM}s"
  if has_kind Kafka; then
    kubectl -n "$ns" wait kafka --all --for=condition=Ready --timeout="$t"
    kubectl -n "$ns" wait kafkatopic --all --for=condition=Ready --timeout="$t"
    kubectl -n "$ns" wait kafkauser --all --for=condition=Ready --timeout="$t"
  fi
  if has_kind Cluster; then
    kubectl -n "$ns" wait cluster.postgresql.cnpg.io --all --for=condition=Ready --timeout="$t"
  fi
  missing=""
  for secret in $(referenced_secrets); do
    kubectl -n "$ns" get secret "$secret" >/dev/null 2>&1 || missing+=" $secret"
  done
  if [[ -n "$missing" ]]; then
    echo "missing Secrets in namespace $ns:$missing (see deploy/k8s/README.md, 'Secrets')" >&2
    exit 1
  fi
  if has_kind Keycloak; then  # needs the database and Secrets ops-console-oidc and web-oidc (realm import)
    kubectl -n "$ns" wait keycloak --all --for=condition=Ready --timeout="$t"
    kubectl -n "$ns" wait keycloakrealmimport --all --for=condition=Done --timeout="$t"
  fi
  kubectl -n "$ns" delete job -l refnet.vn/phase=migrate --ignore-not-found --wait=true
fi

apply_phase migrate
[[ "$dry_run" == "--dry-run" ]] || wait_jobs

apply_phase app
if [[ "$dry_run" != "--dry-run" ]]; then
  for deployment in $(kubectl -n "$ns" get deployment -l refnet.vn/phase=app -o name); do
    kubectl -n "$ns" rollout status "$deployment" --timeout="$TIMEOUT_ROLLOUT"
  done
fi
echo "refnet applied from $dir to namespace $ns"
