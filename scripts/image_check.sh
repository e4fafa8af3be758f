#!/usr/bin/env bash
# `make image-check` (run by .ci/run): the deploy image built the way Railway builds it (the root
# Dockerfile, which railway.json names) and called, on a Debian machine without a Docker daemon.
#
#  1. base   a Debian bookworm root (python3.11) made by mmdebstrap from Debian's archive, cached
#            as a tarball in $HOTLINE_IMAGE_CACHE; nothing is pulled from a container registry
#  2. build  `buildah bud --isolation chroot` of the Dockerfile on that base (BASE_IMAGE build arg);
#            pip inside gets this machine's CA bundle and pip settings (PIP_CONFIG_FILE); prints
#            the build time and the image size
#  3. image  the final stage: runs as its unprivileged USER, holds no compiler and no C headers
#  4. run    hotline started from the image (chroot isolation, host network, the image's own CMD
#            with --host 127.0.0.1 so it listens on loopback only) with the local voice and ear:
#            /health answers; a whole signed call placed with `hotline call` from outside the
#            image (greeting heard, marks echoed, the spoken question answered, result OK)
#  5. drain  a second call; SIGTERM to the server 3 s in: /health says draining, the call plays to
#            its end, the server exits 0 once it is over
#  6. wheel  the manylinux wheel (`make wheel`) installed into a stage with no compiler and no
#            libmpg123 package, and the same call placed against it
#
# Everything it makes (containers, images, mounts, its buildah storage) lives under one temporary
# directory that is removed on exit, also on failure or interruption. Needs root, buildah and
# mmdebstrap (the Makefile target installs them) and the .venv (the caller runs from it).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
CACHE=${HOTLINE_IMAGE_CACHE:-/var/cache/hotline-image-check}
MIRROR=${HOTLINE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
QUESTION="Tell me about the new album"
T0=$(date +%s)

say() { echo "image-check: $*"; }
fail() { echo "image-check: FAILED: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (buildah's chroot isolation and mmdebstrap)"
for tool in buildah mmdebstrap ss findmnt; do command -v "$tool" >/dev/null || fail "$tool is not installed"; done
[ -x "$BIN/python" ] || fail "$BIN/python not found; run 'make build' first"
PY=("$BIN/python")

work=$(mktemp -d /tmp/hotline-image-check.XXXXXX)
B=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver overlay)
PIDS=()
cleanup() {
  local rc=$?
  set +e
  for pid in "${PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null && { kill -TERM "$pid"; sleep 1; kill -KILL "$pid" 2>/dev/null; }
    wait "$pid" 2>/dev/null
  done
  if [ -d "$work/storage" ]; then
    "${B[@]}" rm -a >/dev/null 2>&1
    "${B[@]}" rmi -a -f >/dev/null 2>&1
  fi
  # Whatever is still mounted under the work directory (overlay layers, the storage root itself).
  findmnt -rn -o TARGET | grep "^$work" | sort -r | while read -r m; do umount -l "$m"; done
  if [ "$rc" -ne 0 ]; then
    for log in "$work"/*.log; do
      [ -f "$log" ] && { echo "---- $log (last 25 lines)" >&2; tail -n 25 "$log" >&2; }
    done
  fi
  rm -rf "$work"
  echo "image-check: $( [ "$rc" -eq 0 ] && echo OK || echo "FAILED (exit $rc)" ) in $(( $(date +%s) - T0 )) s; cleaned up $work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' INT TERM

# ---- 1. base ------------------------------------------------------------------------------------
# What python:3.11-slim-bookworm is, from Debian's own packages: minbase (Essential + required +
# apt), python3.11 with venv, CA certificates; no man pages, docs or translations.
BASE_PKGS="python3,python3-venv,python-is-python3,ca-certificates,netbase"
# merged /usr set up by mmdebstrap's own hook, as debian:bookworm is (not by usrmerge, which
# would pull in perl with its C headers).
BASE_OPTS=(--variant=minbase --include="$BASE_PKGS" --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias'
  # apt as in Debian's container images: no package caches or downloaded .debs left behind
  # (written last: mmdebstrap itself needs them while it installs)
  --customize-hook='printf "%s\n" "Dir::Cache::pkgcache \"\";" "Dir::Cache::srcpkgcache \"\";" "APT::Keep-Downloaded-Packages \"false\";" >"$1/etc/apt/apt.conf.d/docker-clean"'
  --customize-hook='rm -f "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb')
key=$(printf '%s\n' bookworm "$MIRROR" "${BASE_OPTS[@]}" | sha256sum | cut -c1-12)
base_tar="$CACHE/bookworm-python3-$key.tar"
mkdir -p "$CACHE"
if [ -s "$base_tar" ]; then
  say "base: reusing $base_tar"
else
  say "base: mmdebstrap bookworm from $MIRROR (once; cached as $base_tar)"
  s=$(date +%s)
  timeout 600 mmdebstrap -q "${BASE_OPTS[@]}" bookworm "$work/base.tar" "$MIRROR" >"$work/mmdebstrap.log" 2>&1
  mv "$work/base.tar" "$base_tar"
  # Older bases made with other options are dead weight.
  find "$CACHE" -maxdepth 1 -name 'bookworm-python3-*.tar' ! -name "$(basename "$base_tar")" -delete
  say "base: made in $(( $(date +%s) - s )) s"
fi
c=$("${B[@]}" from scratch)
"${B[@]}" add "$c" "$base_tar" / >/dev/null
"${B[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env LANG=C.UTF-8 --cmd python3 "$c"
"${B[@]}" commit -q "$c" localhost/hotline-check-base:bookworm >/dev/null
"${B[@]}" rm "$c" >/dev/null
BASE=localhost/hotline-check-base:bookworm

# ---- pip inside the build: this machine's CA bundle and index settings ---------------------------
# pip here may reach PyPI through an intercepting proxy whose CA only this machine trusts; the
# build gets a pip.conf with that bundle (and an http(s) index, if one is configured) through the
# Dockerfile's PIP_CONFIG_FILE build arg. file:// indexes and find-links are host paths: left out.
ca=${PIP_CERT:-$("${PY[@]}" -m pip config get global.cert 2>/dev/null || true)}
ca=${ca:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}
[ -f "$ca" ] || fail "no CA bundle at $ca (set PIP_CERT)"
index=${PIP_INDEX_URL:-$("${PY[@]}" -m pip config get global.index-url 2>/dev/null || true)}
{
  echo "[global]"
  echo "cert = /run/hotline-check/ca.crt"
  echo "timeout = ${PIP_DEFAULT_TIMEOUT:-120}"
  echo "disable-pip-version-check = true"
  case $index in http://* | https://*) echo "index-url = $index" ;; esac
} >"$work/pip.conf"
mkdir -p "$work/pipin"
cp "$ca" "$work/pipin/ca.crt"
cp "$work/pip.conf" "$work/pipin/pip.conf"
# No pip cache is carried between runs: through this machine's proxy PyPI's responses come
# without Cache-Control, so pip's HTTP cache stores nothing; only the base tarball is reused.
BUD_IO=(--build-arg PIP_CONFIG_FILE=/run/hotline-check/pip.conf -v "$work/pipin:/run/hotline-check:ro")

image_size() { "${B[@]}" images --format '{{.Size}}' "$1"; }

# ---- 2. build -----------------------------------------------------------------------------------
say "build: buildah bud --isolation chroot Dockerfile (BASE_IMAGE=$BASE)"
s=$(date +%s)
timeout 1200 "${B[@]}" bud --isolation chroot --format docker --build-arg BASE_IMAGE="$BASE" \
  "${BUD_IO[@]}" -t localhost/hotline-check:dockerfile -f Dockerfile . >"$work/build.log" 2>&1 \
  || fail "the Dockerfile did not build"
BUILD_S=$(( $(date +%s) - s ))
say "build: pip fetched $(grep -c '^ *Downloading ' "$work/build.log" || true) files"
grep -E '^libmpg123 ' "$work/build.log" | tail -n1 | sed 's/^/image-check: build: codec built against /'
say "build: ${BUILD_S} s; image size $(image_size localhost/hotline-check:dockerfile) (base $(image_size "$BASE"))"

# ---- 3. the final stage -------------------------------------------------------------------------
# The image's own settings: who it runs as, what it runs.
"${B[@]}" inspect --type image localhost/hotline-check:dockerfile >"$work/inspect.json"
user=$("${PY[@]}" -c 'import json, sys; print(json.load(open(sys.argv[1]))["Docker"]["config"].get("User", ""))' "$work/inspect.json")
cmd_json=$("${PY[@]}" -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))["Docker"]["config"]["Cmd"]))' "$work/inspect.json")
[ -n "$user" ] && [ "$user" != root ] && [ "$user" != 0 ] || fail "the image runs as '${user:-root}'"
say "image: USER $user, CMD $cmd_json"

# No compiler and no C headers in what ships: no compiler driver on disk, none of the build
# packages installed, no .h file outside Python's own include directory (python:*-slim has one;
# the Debian base has none), site-packages and include/site (where pip puts the headers a
# distribution ships for others to build against: greenlet's, which SQLAlchemy's asyncio needs).
no_toolchain() {  # <mount point> <label>
  local m=$1 label=$2 found pkgs headers pyinc
  found=$(cd "$m" && ls -d usr/bin/gcc* usr/bin/cc usr/bin/c++ usr/bin/g++* usr/bin/cpp* \
    usr/bin/clang* usr/bin/tcc usr/bin/*-linux-gnu-gcc* usr/local/bin/gcc* 2>/dev/null || true)
  [ -z "$found" ] || fail "$label holds a compiler: $found"
  pkgs=$(chroot "$m" dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' gcc cpp libc6-dev \
    libmpg123-dev python3-dev python3.11-dev pkg-config pkgconf 2>/dev/null | awk '$1 == "ii" {print $2}' || true)
  [ -z "$pkgs" ] || fail "$label has build packages installed: $pkgs"
  pyinc=$(chroot "$m" python -c 'import sysconfig; print(sysconfig.get_path("include"))')
  headers=$(find "$m" -xdev -name '*.h' ! -path "$m$pyinc/*" ! -path '*/site-packages/*' ! -path '*/include/site/*' | wc -l)
  [ "$headers" -eq 0 ] || fail "$label holds $headers C headers, e.g. $(find "$m" -xdev -name '*.h' ! -path "$m$pyinc/*" ! -path '*/site-packages/*' ! -path '*/include/site/*' | head -3 | tr '\n' ' ')"
  say "$label: no compiler, no build packages, no C headers (interpreter headers: $(find "$m$pyinc" -name '*.h' 2>/dev/null | wc -l))"
}

# ---- 4./5. run it, call it, drain it ------------------------------------------------------------
http_status() { "${PY[@]}" -c '
import sys, urllib.error, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=2).status)
except urllib.error.HTTPError as e:
    print(e.code)
except OSError:
    print(0)' "$1"; }
free_port() { "${PY[@]}" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
TOKEN=$("${PY[@]}" -c 'import secrets; print(secrets.token_hex(16))')
ADMIN=$("${PY[@]}" -c 'import secrets; print(secrets.token_urlsafe(24))')  # the caller reads what was heard

# Start the image's CMD (host bound to loopback) in container $1 on port $2; log in $3.
# Sets SERVER (the buildah run process) and HOTLINE_PID (the server process itself).
start_server() {
  local ctr=$1 port=$2 log=$3 cmd
  cmd=$("${PY[@]}" -c '
import json, sys
cmd = json.loads(sys.argv[1])
line = " ".join(cmd)
if "--host 0.0.0.0" not in line:
    sys.exit("the CMD does not bind --host 0.0.0.0: " + line)
print(json.dumps([a.replace("--host 0.0.0.0", "--host 127.0.0.1") for a in cmd]))' "$cmd_json")
  "${B[@]}" config --env PORT="$port" --env TWILIO_AUTH_TOKEN="$TOKEN" \
    --env HOTLINE_PUBLIC_URL="http://127.0.0.1:$port" --env HOTLINE_STT=local \
    --env HOTLINE_BRAIN=script --env HOTLINE_DRAIN_TIMEOUT=60 --env HOTLINE_ADMIN_TOKEN="$ADMIN" "$ctr"
  local -a argv
  mapfile -t argv < <("${PY[@]}" -c 'import json, sys; print("\n".join(json.loads(sys.argv[1])))' "$cmd")
  "${B[@]}" run --isolation chroot --network host "$ctr" -- "${argv[@]}" >"$log" 2>&1 &
  SERVER=$!
  PIDS+=("$SERVER")
  HOTLINE_PID=""
  local deadline=$(( $(date +%s) + 90 ))
  until [ "$(http_status "http://127.0.0.1:$port/health")" = 200 ]; do
    kill -0 "$SERVER" 2>/dev/null || fail "the server exited during start-up"
    [ "$(date +%s)" -lt "$deadline" ] || fail "/health did not answer within 90 s"
    sleep 0.3
  done
  HOTLINE_PID=$(ss -Hltnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2)
  [ -n "$HOTLINE_PID" ] || fail "no process listens on port $port"
  PIDS=("$HOTLINE_PID" "${PIDS[@]}")  # on a failure, the server first, then buildah run
  local uid root listen name
  uid=$(awk '/^Uid:/ {print $2}' "/proc/$HOTLINE_PID/status")
  name=$(awk -F: -v u="$uid" '$3 == u {print $1}' "/proc/$HOTLINE_PID/root/etc/passwd")
  root=$(readlink "/proc/$HOTLINE_PID/root")
  listen=$(ss -Hltn "sport = :$port" | awk '{print $4}' | sort -u | tr '\n' ' ')
  [ "$uid" != 0 ] || fail "the server runs as root"
  case $listen in 127.0.0.1:*) ;; *) fail "the server listens on $listen, not loopback only" ;; esac
  [ "$root" != / ] || fail "the server is not inside the image's root"
  say "run: /health answers; pid $HOTLINE_PID uid $uid ($name), listening on $listen, root $root"
}

# One signed call with the caller that ships with the tree (outside the image). $1 base URL,
# $2 report path, $3 log. Prints the caller's summary; checks the report.
call() {
  local base=$1 report=$2 log=$3
  TWILIO_AUTH_TOKEN="$TOKEN" HOTLINE_ADMIN_TOKEN="$ADMIN" timeout 150 "${PY[@]}" -m hotline call --url "$base" \
    --speak "$QUESTION" --max-seconds 90 --report-json "$report" >"$log" 2>&1 || true
  sed 's/^/    /' "$log"
  "${PY[@]}" - "$report" <<'PY'
import json, sys
rep = json.load(open(sys.argv[1]))
problems = list(rep.get("errors") or [])
if not rep.get("ok"):
    problems.append("the call did not end well (ended by %s)" % rep.get("ended_by"))
utts = rep.get("utterances") or []
if not utts or utts[0].get("cleared") or not utts[0].get("mark") or utts[0]["audio_ms"] < 1000:
    problems.append("the greeting was not heard to its mark")
if rep["marks_received"] < 2 or rep["marks_echoed"] != rep["marks_received"]:
    problems.append("marks: %d received, %d echoed" % (rep["marks_received"], rep["marks_echoed"]))
turns = rep.get("turns") or []
if not turns or not turns[0].get("reply_audio_ms"):
    problems.append("the spoken question got no reply")
else:  # the ear heard it and the script brain answered with an intent's line, as in `make demo`
    from hotline.core.script import default_script

    lines = {i.say for i in default_script().intents if i.say}
    if turns[0].get("reply_text") not in lines:
        problems.append("the reply was not an intent's line: %r" % turns[0].get("reply_text"))
if rep.get("underrun_ms"):
    problems.append("%.0f ms of underrun" % rep["underrun_ms"])
heard = turns[0].get("heard_as") if turns else None
print("    greeting %.1f s, %d marks sent and echoed, question heard as %r, reply %.1f s"
      % (utts[0]["audio_ms"] / 1000 if utts else 0, rep["marks_echoed"], heard,
         (turns[0].get("reply_audio_ms") or 0) / 1000 if turns else 0))
print("    result " + ("OK" if not problems else "PROBLEM: " + "; ".join(problems)))
sys.exit(1 if problems else 0)
PY
}

c=$("${B[@]}" from localhost/hotline-check:dockerfile)
m=$("${B[@]}" mount "$c")
no_toolchain "$m" "image"
PYTAG=$(chroot "$m" python -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
port=$(free_port)
BASE_URL="http://127.0.0.1:$port"
start_server "$c" "$port" "$work/server.log"
say "call 1: hear the greeting, ask \"$QUESTION\" aloud, hear the reply, hang up"
call "$BASE_URL" "$work/call1.json" "$work/call1.log" || fail "call 1"
# The image installs hotline[vad]: barge-in and endpointing hear with Silero, not the energy gate
grep -q "caller speech detector: Silero VAD" "$work/server.log" \
  || fail "the image's server does not run Silero VAD (hotline[vad] missing?)"

say "call 2 + SIGTERM 3 s in: the call plays on, then the server exits 0"
TWILIO_AUTH_TOKEN="$TOKEN" HOTLINE_ADMIN_TOKEN="$ADMIN" timeout 150 "${PY[@]}" -m hotline call --url "$BASE_URL" \
  --speak "$QUESTION" --max-seconds 90 --report-json "$work/call2.json" >"$work/call2.log" 2>&1 &
CALLER=$!
PIDS+=("$CALLER")
sleep 3.5  # the caller is connected within ~0.5 s; the greeting takes several seconds
kill -TERM "$HOTLINE_PID"
term_at=$(date +%s.%N)
sleep 0.5
health=$(http_status "$BASE_URL/health")
[ "$health" = 503 ] || fail "/health answered $health while draining (expected 503)"
say "drain: /health answers 503 (draining) after SIGTERM"
wait "$CALLER" || true
call_end=$(date +%s.%N)
server_rc=0
timeout 60 tail --pid="$SERVER" -f /dev/null || fail "the server did not exit within 60 s of the call's end"
wait "$SERVER" || server_rc=$?
exit_at=$(date +%s.%N)
sed 's/^/    /' "$work/call2.log"
call_ok=0
"${PY[@]}" - "$work/call2.json" <<'PY' || call_ok=1
import json, sys
rep = json.load(open(sys.argv[1]))
turns = rep.get("turns") or []
ok = rep.get("ok") and turns and turns[0].get("reply_audio_ms") and rep["marks_echoed"] == rep["marks_received"] >= 2
print("    result " + ("OK" if ok else "PROBLEM: %s" % (rep.get("errors") or rep.get("ended_by"))))
sys.exit(0 if ok else 1)
PY
grep -q "draining: 1 live call(s) play on" "$work/server.log" || fail "the server did not report the live call while draining"
grep -q "draining: every call has ended; stopping" "$work/server.log" || fail "the server did not stop after the drain"
[ "$call_ok" = 0 ] || fail "call 2 (during the drain)"
[ "$server_rc" = 0 ] || fail "the server exited $server_rc after SIGTERM"
say "drain: call 2 heard to its end $(awk -v a="$term_at" -v b="$call_end" 'BEGIN {printf "%.1f", b - a}') s after SIGTERM; server exited 0, $(awk -v a="$call_end" -v b="$exit_at" 'BEGIN {printf "%.1f", b - a}') s after the call ended"
"${B[@]}" rm "$c" >/dev/null

# ---- 6. the wheel path --------------------------------------------------------------------------
# What a deployer who builds wheels gets: the repaired manylinux wheel (libmpg123 inside it) in a
# stage with no compiler and no libmpg123 package. Made by `make wheel` unless wheelhouse/ already
# holds one newer than every source (or WHEEL names one).
whl=${WHEEL:-$(ls wheelhouse/hotline-*-"$PYTAG"-*manylinux*.whl 2>/dev/null | head -n1 || true)}
if [ -n "${WHEEL:-}" ]; then
  [ -f "$WHEEL" ] || fail "WHEEL=$WHEEL does not exist"
elif [ -z "$whl" ] || [ -n "$(find setup.py pyproject.toml csrc hotline -newer "$whl" -type f \
     ! -name '*.so' ! -name '_codec.c' ! -path '*__pycache__*' 2>/dev/null | head -n1)" ]; then
  say "wheel: make wheel"
  make --no-print-directory wheel >"$work/wheel.log" 2>&1 || fail "make wheel"
  whl=$(ls wheelhouse/hotline-*-"$PYTAG"-*manylinux*.whl 2>/dev/null | head -n1 || true)
  [ -n "$whl" ] || fail "make wheel made no $PYTAG wheel (the base's Python); wheelhouse: $(ls wheelhouse)"
fi
say "wheel: $whl"
mkdir -p "$work/wheelctx"
cp "$whl" "$work/wheelctx/"
cat >"$work/wheelctx/Containerfile" <<EOF
ARG BASE_IMAGE
FROM \${BASE_IMAGE}
ARG PIP_CONFIG_FILE
COPY $(basename "$whl") /tmp/
RUN python -m venv /opt/venv \\
 && /opt/venv/bin/pip install --no-cache-dir /tmp/$(basename "$whl") \\
 && rm /tmp/*.whl \\
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin hotline
ENV PATH="/opt/venv/bin:\$PATH" PYTHONUNBUFFERED=1 PORT=8000
USER hotline
CMD $cmd_json
EOF
s=$(date +%s)
timeout 900 "${B[@]}" bud --isolation chroot --format docker --build-arg BASE_IMAGE="$BASE" \
  "${BUD_IO[@]}" -t localhost/hotline-check:wheel -f "$work/wheelctx/Containerfile" \
  "$work/wheelctx" >"$work/wheel-build.log" 2>&1 || fail "the wheel stage did not build"
say "wheel: stage built in $(( $(date +%s) - s )) s; image size $(image_size localhost/hotline-check:wheel)"
c=$("${B[@]}" from localhost/hotline-check:wheel)
m=$("${B[@]}" mount "$c")
no_toolchain "$m" "wheel stage"
if chroot "$m" dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' 'libmpg123*' 2>/dev/null | grep -q '^ii'; then
  fail "the wheel stage has a libmpg123 package installed"
fi
lib=$(chroot "$m" /opt/venv/bin/python -c 'import hotline.codec as c, os; print(c.mpg123_version(), os.listdir(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(c.__file__))), "hotline.libs")))')
say "wheel stage: no libmpg123 package; the wheel's own: $lib"
port=$(free_port)
start_server "$c" "$port" "$work/server-wheel.log"
say "wheel call: the same call"
call "http://127.0.0.1:$port" "$work/call-wheel.json" "$work/call-wheel.log" || fail "the call against the wheel stage"
kill -TERM "$HOTLINE_PID"
timeout 30 tail --pid="$SERVER" -f /dev/null || fail "the wheel stage's server did not stop"
wait "$SERVER" || fail "the wheel stage's server exited $? after SIGTERM"
say "summary: Dockerfile build ${BUILD_S} s, image $(image_size localhost/hotline-check:dockerfile); call OK; drain OK (exit 0); wheel stage $(image_size localhost/hotline-check:wheel), call OK"
