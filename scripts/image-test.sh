#!/usr/bin/env bash
# Build the Docker image and prove it works, as CI does on every run.
#
#   scripts/image-test.sh build   # the image, gmm-service:latest (make image)
#   scripts/image-test.sh test    # build, then run it alone and as the compose stack (make image-test)
#   EXTRAS=dask GMM_IMAGE=gmm-service:dask scripts/image-test.sh build   # with the Dask extra
#
# Uses the machine's Docker daemon when one answers. Otherwise it installs Debian's
# docker.io and docker-compose, starts its own dockerd, and on the way out stops it
# and undoes what it changed (iptables rules and FORWARD policy, ip_forward, docker0).
# Base images that cannot be pulled (no registry reachable) are replaced by stand-ins
# made from Debian packages with debootstrap, cached in $GMM_IMAGE_CACHE.
# It fails, never skips, when it cannot do any of this.
set -euo pipefail
cd "$(dirname "$0")/.."

ACTION=${1:-test}
IMAGE=${GMM_IMAGE:-gmm-service:latest}
CACHE=${GMM_IMAGE_CACHE:-/var/cache/gmm-service-images}
PYTHON=${PYTHON:-.venv/bin/python}
PROJECT=gmmimagetest
SINGLE=gmm-image-test-single
STATE=$(mktemp -d /tmp/gmm-image-test.XXXXXX)
DOCKER=docker
COMPOSE=()
OWN_DOCKERD=
COMPOSE_UP=
SINGLE_UP=
STARTED=$SECONDS

log() { printf '[image-test +%3ds] %s\n' "$((SECONDS - STARTED))" "$*" >&2; }
fail() {
  log "FAIL: $*"
  exit 1
}

# --- cleaning up, whatever happened ----------------------------------------------

cleanup() {
  local status=$?
  set +e
  if [ -n "$SINGLE_UP" ]; then
    [ "$status" -ne 0 ] && $DOCKER logs --tail 30 "$SINGLE" >&2
    $DOCKER rm -f "$SINGLE" >/dev/null 2>&1
  fi
  if [ -n "$COMPOSE_UP" ]; then
    [ "$status" -ne 0 ] && "${COMPOSE[@]}" -p "$PROJECT" logs --tail 30 >&2
    "${COMPOSE[@]}" -p "$PROJECT" down -v --remove-orphans >/dev/null 2>&1
  fi
  if [ -n "$OWN_DOCKERD" ]; then
    stop_own_dockerd
  fi
  # a debootstrap that failed may leave /proc or /sys mounted in its root: unmount first
  awk -v state="$STATE" 'index($2, state) == 1 {print $2}' /proc/mounts | sort -r |
    while read -r mount; do umount -l "$mount"; done
  rm -rf --one-file-system "$STATE"
  if [ "$status" -eq 0 ]; then
    log "passed in $((SECONDS - STARTED)) s"
  else
    log "failed (exit $status) after $((SECONDS - STARTED)) s"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- a Docker daemon -------------------------------------------------------------

apt_install() {
  log "installing Debian packages: $*"
  apt-get update -qq || fail "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
    fail "apt-get install $* failed"
}

start_own_dockerd() {
  [ "$(id -u)" -eq 0 ] || fail "no Docker daemon answers, and starting one needs root"
  local missing=()
  [ -x /usr/sbin/dockerd ] || missing+=(docker.io)
  command -v iptables-save >/dev/null || missing+=(iptables)
  [ "${#missing[@]}" -eq 0 ] || apt_install "${missing[@]}"
  # What dockerd changes, to put back on the way out
  iptables-save >"$STATE/iptables.rules" || fail "iptables-save failed"
  cat /proc/sys/net/ipv4/ip_forward >"$STATE/ip_forward"
  if ip link show docker0 >/dev/null 2>&1; then touch "$STATE/docker0-existed"; fi
  log "starting Debian's dockerd ($(/usr/sbin/dockerd --version))"
  OWN_DOCKERD=starting
  /usr/sbin/dockerd --host unix:///var/run/docker.sock --pidfile "$STATE/dockerd.pid" \
    >"$STATE/dockerd.log" 2>&1 &
  OWN_DOCKERD=$!
  DOCKER=/usr/bin/docker # the client of the same release, for compose's builds too
  export PATH="/usr/bin:$PATH"
  for _ in $(seq 1 60); do
    $DOCKER info >/dev/null 2>&1 && return 0
    kill -0 "$OWN_DOCKERD" 2>/dev/null || break
    sleep 0.5
  done
  tail -20 "$STATE/dockerd.log" >&2
  fail "dockerd did not start"
}

stop_own_dockerd() {
  log "stopping the dockerd this script started (pid $OWN_DOCKERD); restoring iptables, ip_forward, docker0"
  if [ "$OWN_DOCKERD" != starting ] && kill -0 "$OWN_DOCKERD" 2>/dev/null; then
    kill -TERM "$OWN_DOCKERD"
    for _ in $(seq 1 60); do
      kill -0 "$OWN_DOCKERD" 2>/dev/null || break
      sleep 0.5
    done
    kill -KILL "$OWN_DOCKERD" 2>/dev/null
    wait "$OWN_DOCKERD" 2>/dev/null
  fi
  if [ -f "$STATE/iptables.rules" ]; then
    # tables the snapshot has come back as they were; those it lacks are emptied
    for table in filter nat; do
      if ! grep -q "^\*$table" "$STATE/iptables.rules"; then
        iptables -t "$table" -F && iptables -t "$table" -X
      fi
    done
    iptables-restore <"$STATE/iptables.rules" || log "WARNING: iptables-restore failed"
    # dockerd sets FORWARD to DROP: say it again, plainly, in case the restore missed it
    local policy
    policy=$(sed -n 's/^:FORWARD \([A-Z]*\) .*/\1/p' "$STATE/iptables.rules" | head -n 1)
    iptables -P FORWARD "${policy:-ACCEPT}"
  fi
  [ -f "$STATE/ip_forward" ] && cat "$STATE/ip_forward" >/proc/sys/net/ipv4/ip_forward
  if [ ! -f "$STATE/docker0-existed" ] && ip link show docker0 >/dev/null 2>&1; then
    ip link delete docker0
  fi
  OWN_DOCKERD=
}

ensure_docker() {
  if docker info >/dev/null 2>&1; then
    log "using the machine's Docker daemon ($(docker version --format '{{.Server.Version}}'))"
  else
    start_own_dockerd
  fi
}

ensure_compose() {
  if $DOCKER compose version >/dev/null 2>&1; then
    COMPOSE=("$DOCKER" compose)
  else
    # Debian has no `docker compose` v2 plugin; its docker-compose (1.29) reads our file
    command -v docker-compose >/dev/null || apt_install docker-compose
    COMPOSE=(docker-compose)
    # its builds through the docker client: the same build context as `docker build`,
    # so they hit the cache of the build just made (its own context misses it)
    export COMPOSE_DOCKER_CLI_BUILD=1 DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0}
  fi
  log "compose: ${COMPOSE[*]} ($("${COMPOSE[@]}" version --short 2>/dev/null || echo '?'))"
}

# --- base images, pulled or stood in for ---------------------------------------

debian_mirror() {
  local uri
  uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n 1)
  [ -n "$uri" ] || uri=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v security | head -n 1)
  echo "${uri:-http://deb.debian.org/debian}"
}

debootstrap_into() { # folder, packages
  command -v debootstrap >/dev/null || apt_install debootstrap
  local mirror
  mirror=$(debian_mirror)
  log "debootstrap bookworm ($2) from $mirror"
  debootstrap --variant=minbase --include="$2" bookworm "$1" "$mirror" >"$STATE/debootstrap.log" 2>&1 ||
    {
      tail -20 "$STATE/debootstrap.log" >&2
      fail "debootstrap failed"
    }
  rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/* "$1"/var/log/*.log
  # as Debian's slim images: no manuals, translations or documentation but the copyrights
  rm -rf "$1"/usr/share/man/* "$1"/usr/share/info/* "$1"/usr/share/locale/* "$1"/usr/share/lintian
  find "$1"/usr/share/doc -type f ! -name copyright -delete
}

python_standin() { # python:3.11-slim: Debian's python3.11, the host's CA bundle and pip's cert line
  local root=$1 cert
  debootstrap_into "$root" python3.11,python3-venv,python-is-python3,ca-certificates
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  cert=$(python3 -m pip config get global.cert 2>/dev/null || echo "${PIP_CERT:-}")
  if [ -n "$cert" ] && [ -f "$cert" ]; then
    mkdir -p "$root$(dirname "$cert")"
    cp "$cert" "$root$cert"
    printf '[global]\ncert = %s\n' "$cert" >"$root/etc/pip.conf"
  fi
}
PYTHON_RECIPE=2 # bump when the recipe changes: the cached stand-in is made again
PYTHON_CHANGES=(--change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]')

postgres_standin() { # postgres:15: Debian's postgresql-15 and an entrypoint for POSTGRES_*
  local root=$1
  debootstrap_into "$root" postgresql-15
  rm -rf "$root/etc/postgresql/15/main" "$root/var/lib/postgresql/15"
  cat >"$root/usr/local/bin/docker-entrypoint.sh" <<'ENTRYPOINT'
#!/bin/sh
# A stand-in for the postgres image's entrypoint: honours POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB.
set -eu
[ "${1:-}" = postgres ] || exec "$@"
: "${PGDATA:=/var/lib/postgresql/data}"
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
mkdir -p "$PGDATA" /run/postgresql
chown postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  auth=trust
  if [ -n "${POSTGRES_PASSWORD:-}" ]; then
    auth=scram-sha-256
    printf '%s\n' "$POSTGRES_PASSWORD" >/tmp/pwfile
    chown postgres /tmp/pwfile
    pwopt=--pwfile=/tmp/pwfile
  fi
  as_postgres initdb -D "$PGDATA" -U "$user" ${pwopt:-} --auth-local=trust --auth-host="$auth" \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f /tmp/pwfile
  echo "host all all all $auth" >>"$PGDATA/pg_hba.conf"
  if [ "$db" != postgres ]; then # on a socket pg_isready does not watch: not ready till the end
    as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=/tmp" -w start >/dev/null
    as_postgres createdb -h /tmp -U "$user" "$db"
    as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  fi
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" -c listen_addresses='*'
ENTRYPOINT
  chmod 755 "$root/usr/local/bin/docker-entrypoint.sh"
}
POSTGRES_RECIPE=3 # bump when the recipe changes
POSTGRES_CHANGES=(
  --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  --change 'ENV PGDATA=/var/lib/postgresql/data'
  --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]'
  --change 'CMD ["postgres"]'
  --change 'EXPOSE 5432'
)

ensure_base() { # tag, recipe, its version, changes-array-name
  local tag=$1 recipe=$2 version=$3 tarball root
  local -n changes=$4
  local made
  # a pulled image has no stand-in label; a stand-in of an older recipe is made again
  if made=$($DOCKER image inspect -f '{{index .Config.Labels "gmm-service.standin"}}' "$tag" 2>/dev/null); then
    { [ -z "$made" ] || [ "$made" = "$version" ]; } && return 0
  fi
  if timeout 120 $DOCKER pull -q "$tag" >/dev/null 2>&1; then
    log "pulled $tag"
    return 0
  fi
  tarball="$CACHE/$(echo "$tag" | tr ':/' '--').standin-$version.tar"
  if [ ! -s "$tarball" ]; then
    log "$tag cannot be pulled: making a stand-in from Debian packages (cached in $tarball)"
    root="$STATE/root-$recipe"
    "$recipe" "$root"
    mkdir -p "$CACHE"
    rm -f "$CACHE/$(basename "${tarball%-*}")"-*.tar # older recipes
    tar -C "$root" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
    rm -rf --one-file-system "$root"
  fi
  log "importing the stand-in $tag from $tarball"
  $DOCKER import "${changes[@]}" --change "LABEL gmm-service.standin=$version" \
    "$tarball" "$tag" >/dev/null || fail "docker import $tag failed"
}

# --- the checks ----------------------------------------------------------------

build_image() {
  ensure_base python:3.11-slim python_standin "$PYTHON_RECIPE" PYTHON_CHANGES
  local began=$SECONDS
  local args=()
  [ -z "${EXTRAS:-}" ] || args=(--build-arg "EXTRAS=$EXTRAS")
  if ! $DOCKER build "${args[@]}" -t "$IMAGE" . 2>&1 | while IFS= read -r line; do
    printf '%4d %s\n' "$((SECONDS - began))" "$line"
  done >"$STATE/build.log"; then
    tail -40 "$STATE/build.log" >&2
    fail "docker build failed"
  fi
  [ -z "${GMM_IMAGE_VERBOSE:-}" ] || cat "$STATE/build.log" >&2
  # what the image runs imports (nothing the slimming removed is needed)
  local modules="service.api, service.worker.runner, service.gmm.chunked"
  [[ ${EXTRAS:-} != *dask* ]] || modules="$modules, distributed, service.gmm.on_dask"
  [[ ${EXTRAS:-} != *imports* ]] || modules="$modules, pyarrow.parquet, pyarrow.csv"
  $DOCKER run --rm "$IMAGE" python -c "import $modules" || fail "the image cannot import $modules"
  log "built $IMAGE in $((SECONDS - began)) s; $($DOCKER images --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$IMAGE")"
  if [ -z "${EXTRAS:-}" ]; then # the slim image's bar (issue 18): under 400 MB
    local size
    size=$($DOCKER image inspect -f '{{.Size}}' "$IMAGE")
    [ "$size" -lt 400000000 ] || fail "the image is $((size / 1000000)) MB, over 400 MB"
  fi
}

health_of() { $DOCKER inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$1"; }

wait_healthy() { # container, what, seconds
  local status
  for _ in $(seq 1 "$(($3 * 2))"); do
    status=$(health_of "$1")
    case $status in
      healthy) return 0 ;;
      unhealthy) break ;;
      none) fail "$2 has no healthcheck" ;;
    esac
    sleep 0.5
  done
  $DOCKER inspect -f '{{range .State.Health.Log}}{{.Output}}{{end}}' "$1" | tail -5 >&2
  fail "$2 is $status, not healthy, after $3 s"
}

free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

test_single_container() {
  log "single container: non-root, /healthz, one fit, HEALTHCHECK healthy"
  SINGLE_UP=1
  $DOCKER rm -f "$SINGLE" >/dev/null 2>&1 || true
  $DOCKER run -d --name "$SINGLE" -p 127.0.0.1::8000 "$IMAGE" >/dev/null
  local uid url
  uid=$($DOCKER exec "$SINGLE" id -u)
  [ "$uid" != 0 ] || fail "the container runs as root"
  url="http://$($DOCKER port "$SINGLE" 8000/tcp | head -n 1)"
  "$PYTHON" scripts/image_api.py --url "$url" fit || fail "a fit in the single container failed"
  wait_healthy "$SINGLE" "the single container" 60
  log "single container: uid $uid, fit done, $(health_of "$SINGLE")"
  $DOCKER rm -f "$SINGLE" >/dev/null
  SINGLE_UP=
}

service_containers() { "${COMPOSE[@]}" -p "$PROJECT" ps -q "$@"; }

test_compose_stack() {
  ensure_compose
  ensure_base postgres:15 postgres_standin "$POSTGRES_RECIPE" POSTGRES_CHANGES
  API_PORT=$(free_port)
  export API_PORT
  log "compose: up --build --scale worker=2 (API on 127.0.0.1:$API_PORT)"
  COMPOSE_UP=1
  "${COMPOSE[@]}" -p "$PROJECT" up -d --build --scale worker=2 >"$STATE/up.log" 2>&1 || {
    tail -30 "$STATE/up.log" >&2
    fail "compose up failed"
  }
  [ -z "${GMM_IMAGE_VERBOSE:-}" ] || grep -v '^ *---> \|^Removing interm' "$STATE/up.log" >&2
  log "compose: the stack is up"
  local url="http://127.0.0.1:$API_PORT"
  "$PYTHON" scripts/image_api.py --url "$url" fit || fail "a fit through the stack's API failed"

  # every service with a healthcheck is healthy (the workers included); migrate ran once, fine
  local container name state
  for container in $(service_containers); do
    name=$($DOCKER inspect -f '{{.Name}}' "$container")
    state=$($DOCKER inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$container")
    if [ "$(health_of "$container")" = none ]; then
      case $name in
        *migrate*) [ "$state" = "exited 0" ] || fail "$name is '$state', not 'exited 0'" ;;
        *) [ "${state%% *}" = running ] || fail "$name is $state" ;;
      esac
      log "$name: $state, no healthcheck"
    else
      wait_healthy "$container" "$name" 90
      log "$name: $(health_of "$container")"
    fi
  done

  # a worker stopped mid-fit hands the job back, exits 0; the other worker finishes it
  local job holder="" other="" workers
  job=$("$PYTHON" scripts/image_api.py --url "$url" start-long-fit) || fail "the long fit did not start"
  workers=$(service_containers worker)
  [ "$(echo "$workers" | wc -w)" -eq 2 ] || fail "expected 2 workers, found: $workers"
  for _ in $(seq 1 20); do
    for container in $workers; do
      if $DOCKER logs "$container" 2>&1 | grep "job claimed" | grep -q "$job"; then
        holder=$container
      else
        other=$container
      fi
    done
    [ -n "$holder" ] && break
    sleep 0.5
  done
  [ -n "$holder" ] && [ -n "$other" ] || fail "no worker's log shows it claimed $job"
  log "job $job runs on worker ${holder:0:12}; stopping it with SIGTERM"
  $DOCKER stop -t 60 "$holder" >/dev/null
  state=$($DOCKER inspect -f '{{.State.ExitCode}}' "$holder")
  [ "$state" = 0 ] || fail "the stopped worker exited $state, not 0"
  $DOCKER logs "$holder" 2>&1 | grep "released to the queue" | grep -q "$job" ||
    fail "the stopped worker did not log handing $job back"
  "$PYTHON" scripts/image_api.py --url "$url" wait "$job" || fail "job $job did not finish after the hand-back"
  $DOCKER logs "$other" 2>&1 | grep "job claimed" | grep -q "$job" ||
    fail "the other worker did not claim $job"
  log "the stopped worker exited 0 and handed $job back; worker ${other:0:12} finished it"
  wait_healthy "$other" "the remaining worker" 30

  "${COMPOSE[@]}" -p "$PROJECT" down -v --remove-orphans >/dev/null 2>&1 || fail "compose down -v failed"
  COMPOSE_UP=
  log "compose: down -v"
}

[ -x "$PYTHON" ] || fail "$PYTHON is missing (make .venv/.installed)"
case $ACTION in
  build)
    ensure_docker
    build_image
    ;;
  test)
    ensure_docker
    build_image
    test_single_container
    test_compose_stack
    ;;
  *) fail "usage: $0 build|test" ;;
esac
