# syntax=docker/dockerfile:1.7
# One image per refnet service, from this one file: the service is a build argument, so every
# image is built the same way. Each image runs its service's processes, chosen by the command:
# api, worker, relay (intake, referral, shelter, notifications; and sms, notifications' SMS door), console,
# collector, worker (ops), or web (web: its one process, named after the service).
#
# Build from the repository root, so proto/ and libs/ are shared by every service, not copied:
#   docker build --build-arg SERVICE=intake -t refnet/intake:TAG .      (or: make images)
# Run:
#   docker run refnet/intake api | worker | relay | api --migrate-only | refnet-topics ...
#   docker run refnet/notifications api | worker | relay | sms
#   docker run refnet/ops console | collector | worker | console --migrate-only | refnet ...
#   docker run refnet/web web | web --migrate-only
ARG PYTHON_IMAGE=python:3.11-slim
ARG SERVICE

# ---- build: generate the protobuf code, install the service and its libraries into /opt/venv
FROM ${PYTHON_IMAGE} AS build
ARG SERVICE
RUN test -n "${SERVICE}" || { echo "build with --build-arg SERVICE=intake|referral|shelter|notifications|ops|web" >&2; exit 1; }
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY constraints.txt ./
# grpcio-tools only generates code at build time: it lives in its own venv, not in the image.
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv /opt/tools \
 && /opt/tools/bin/pip install -c constraints.txt grpcio-tools \
 && python -m venv --without-pip /opt/venv
COPY scripts/gen_proto.sh scripts/
COPY proto/ proto/
RUN PYTHON=/opt/tools/bin/python bash scripts/gen_proto.sh
COPY libs/ libs/
COPY services/${SERVICE}/ services/${SERVICE}/
# Local paths, not names: pip never looks for refnet-* on an index. Every third-party
# dependency is pinned by constraints.txt. The tools venv's pip installs into /opt/venv, which
# has no pip or setuptools of its own to ship.
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/tools/bin/pip --python /opt/venv/bin/python install -c constraints.txt \
        ./proto ./libs/platform ./libs/geo ./libs/frontdoor "./services/${SERVICE}" \
 && /opt/venv/bin/python -c "import ${SERVICE}, refnet_platform, refnet" \
 && case "${SERVICE}" in \
      ops) programs="ops-console ops-collector ops-worker" ;; \
      web) programs="web" ;; \
      notifications) programs="notifications-api notifications-worker notifications-relay notifications-sms" ;; \
      *) programs="${SERVICE}-api ${SERVICE}-worker ${SERVICE}-relay" ;; \
    esac \
 && for program in $programs; do test -x "/opt/venv/bin/${program}" || exit 1; done \
 && "/opt/venv/bin/${programs%% *}" --help >/dev/null

# ---- runtime: the interpreter, the venv and nothing else; runs as an unprivileged user
FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE
LABEL org.opencontainers.image.title="refnet-${SERVICE}" \
      org.opencontainers.image.description="refnet ${SERVICE} service"
ENV REFNET_SERVICE=${SERVICE} \
    PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    REFNET_DATA_DIR=/tmp/refnet
RUN groupadd --system --gid 10001 refnet \
 && useradd --system --uid 10001 --gid refnet --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin refnet
COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 <<'SH' /usr/local/bin/refnet-entrypoint
#!/bin/sh
# A role (api, worker, relay; notifications: sms; ops: console, collector, worker) runs "$REFNET_SERVICE-<role>" with
# the remaining arguments; any other command runs as given (web, refnet-topics, refnet, python, ...).
# No command: the service's first process (its api; ops' console; web).
set -eu
if [ "$#" -eq 0 ]; then
  case "$REFNET_SERVICE" in ops) set -- console ;; web) set -- web ;; *) set -- api ;; esac
fi
role="$1"
case "$role" in
  api|worker|relay|console|collector|sms) [ "$#" -gt 0 ] && shift; exec "${REFNET_SERVICE}-${role}" "$@" ;;
  *) exec "$@" ;;
esac
SH
# The numeric uid lets Kubernetes verify runAsNonRoot.
USER 10001:10001
WORKDIR /tmp
EXPOSE 50051 50052 50053 50054 9100 8080 4317 8680
# No CMD: the entrypoint picks the service's own default process.
ENTRYPOINT ["/usr/local/bin/refnet-entrypoint"]
