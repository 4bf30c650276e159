#!/usr/bin/env bash
# Validates the deployment files without a container engine or a cluster:
#
#   hadolint             Dockerfile, Dockerfile.cuda (.hadolint.yaml; any finding fails)
#   Dockerfile build args  the wasm-bindgen default is Cargo.lock's, cargo-leptos
#                        setup.sh's; the CUDA file's tool steps equal the CPU one's
#   yamllint             deploy/ (deploy/.yamllint.yaml, strict)
#   compose schema       deploy/docker-compose.yml against the compose-spec
#                        schema that check-jsonschema vendors
#   compose references   depends_on, profiles, volumes, documented variables
#   k8s                  deploy/k8s: strict OpenAPI validation for Kubernetes
#                        1.30 and 1.37 (schemas bundled with kubernetes-validate),
#                        kustomization completeness, cross-references, pod security
#   kustomize            `kubectl kustomize deploy/k8s`, validated again (skipped
#                        when kubectl is not installed)
#   settings             every MEDVISION_* variable set anywhere is a known setting
#   nginx -t             deploy/nginx.conf with a throwaway certificate
#   nginx smoke          that config serving: redirect, TLS versions, headers,
#                        websocket upgrade (against a stub upstream on loopback)
#
# Idempotent. Installs what it needs on first use: a virtual environment at
# ${MEDVISION_CACHE:-~/.cache/medvision}/deploy-venv from PyPI with the pinned
# versions of deploy/check-requirements.txt (rebuilt when that file changes),
# and Debian's nginx when no nginx is installed. Nothing else is downloaded;
# the validators themselves run without network (in a network namespace of
# their own where the machine allows one).
#
# Prints one line per check and exits non-zero when any check fails.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${MEDVISION_CACHE:-$HOME/.cache/medvision}"
VENV="$CACHE/deploy-venv"
REQUIREMENTS="$ROOT/deploy/check-requirements.txt"
# The oldest Kubernetes minor still supported by the big managed offerings,
# and the newest whose schemas kubernetes-validate 1.37.0 bundles.
K8S_VERSIONS=(1.30.0 1.37.0)

say() { printf '==> %s\n' "$*" >&2; }

# --- tools -----------------------------------------------------------------

setup_venv() {
  local want have=""
  want="$(sha256sum "$REQUIREMENTS" | awk '{print $1}')"
  [ -f "$VENV/.requirements.sha256" ] && have="$(cat "$VENV/.requirements.sha256")"
  if [ -x "$VENV/bin/python" ] && [ "$have" = "$want" ]; then
    return 0
  fi
  say "creating the validation environment in $VENV (PyPI, pinned)"
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    # Debian's python3 without ensurepip.
    rm -rf "$VENV"
    say "installing python3-venv"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    python3 -m venv "$VENV" || return 1
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: \
    -r "$REQUIREMENTS" || { rm -rf "$VENV"; return 1; }
  echo "$want" >"$VENV/.requirements.sha256"
}

setup_nginx() {
  command -v nginx >/dev/null && return 0
  # bookworm's nginx-light is only a transitional package that pulls in
  # nginx (plus an echo module); nginx itself is the smaller install.
  say "installing Debian's nginx (used only for nginx -t and the smoke test)"
  # Never start the packaged service: where no policy forbids it already,
  # forbid it for the duration of the install.
  local policy=/usr/sbin/policy-rc.d made=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null
  local rc=$?
  [ -n "$made" ] && rm -f "$policy"
  return $rc
}

setup_venv || { echo "FAIL setup: could not create $VENV" >&2; exit 1; }
setup_nginx || { echo "FAIL setup: could not install nginx" >&2; exit 1; }
BIN="$VENV/bin"

# Validators run without network where the kernel lets us make a namespace.
OFFLINE=()
if unshare -n true 2>/dev/null; then
  OFFLINE=(unshare -n)
fi

# --- checks ----------------------------------------------------------------

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
failed=()
passed=0

# check NAME COMMAND...: runs it, prints "ok" or "FAIL" with its output.
check() {
  local name="$1" log="$WORK/log" start ms rc
  shift
  start=${EPOCHREALTIME/./}
  "$@" >"$log" 2>&1
  rc=$?
  ms=$(((${EPOCHREALTIME/./} - start) / 1000))
  if [ $rc -eq 0 ]; then
    printf 'ok    %-24s (%d.%02ds)\n' "$name" $((ms / 1000)) $((ms % 1000 / 10))
    passed=$((passed + 1))
  else
    printf 'FAIL  %-24s (exit %d)\n' "$name" "$rc"
    sed 's/^/      /' "$log"
    failed+=("$name")
  fi
}

skip() { printf 'skip  %-24s %s\n' "$1" "$2"; }

cd "$ROOT" || exit 1
HELPER=("${OFFLINE[@]}" "$BIN/python" "$ROOT/scripts/check-deploy.py")

for f in Dockerfile Dockerfile.cuda; do
  check "hadolint $f" "${OFFLINE[@]}" "$BIN/hadolint" --config "$ROOT/.hadolint.yaml" \
    --failure-threshold style --no-color "$f"
done

check "Dockerfile build args" "${HELPER[@]}" dockerfiles "$ROOT"

check "yamllint deploy/" "${OFFLINE[@]}" "$BIN/yamllint" --strict -c deploy/.yamllint.yaml deploy/

check "compose schema" "${OFFLINE[@]}" "$BIN/check-jsonschema" \
  --builtin-schema vendor.compose-spec deploy/docker-compose.yml
check "compose references" "${HELPER[@]}" compose deploy/docker-compose.yml deploy/.env.example

check "k8s manifests" "${HELPER[@]}" k8s deploy/k8s "${K8S_VERSIONS[@]}"

if command -v kubectl >/dev/null; then
  kustomize_check() {
    "${OFFLINE[@]}" kubectl kustomize deploy/k8s >"$WORK/rendered.yaml" &&
      "${HELPER[@]}" rendered "$WORK/rendered.yaml" "${K8S_VERSIONS[@]}"
  }
  check "kustomize build" kustomize_check
else
  skip "kustomize build" "(no kubectl here; the file list is still checked above)"
fi

check "settings names" "${HELPER[@]}" settings "$ROOT"

# nginx -t on a copy of deploy/nginx.conf. The copy differs in exactly these
# substitutions, each required to happen so a renamed path cannot slip by:
#  - the upstream `web:3000` becomes 127.0.0.1:3000: nginx resolves names of
#    an upstream block when it loads the configuration, and `web` exists
#    only on the compose network;
#  - the certificate paths point at a throwaway self-signed pair;
#  - the log directory moves into the temporary prefix.
# It is included from a minimal main configuration whose pid file, error log
# and temporary paths are all in that prefix, so no system directory is used.
nginx_test() {
  local d="$WORK/nginx" src="$ROOT/deploy/nginx.conf"
  mkdir -p "$d/tls" "$d/log"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=medvision.test \
    -keyout "$d/tls/privkey.pem" -out "$d/tls/fullchain.pem" 2>/dev/null || return 1
  local token
  for token in "server web:3000;" "/etc/nginx/tls/fullchain.pem" "/etc/nginx/tls/privkey.pem" \
    "/var/log/nginx/"; do
    grep -qF "$token" "$src" || { echo "deploy/nginx.conf no longer contains '$token'"; return 1; }
  done
  sed -e "s#server web:3000;#server 127.0.0.1:3000;#" \
    -e "s#/etc/nginx/tls/#$d/tls/#g" \
    -e "s#/var/log/nginx/#$d/log/#g" "$src" >"$d/medvision.conf"
  cat >"$d/nginx.conf" <<EOF
pid $d/nginx.pid;
error_log $d/log/error.log warn;
events {}
http {
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    include $d/medvision.conf;
}
EOF
  "${OFFLINE[@]}" nginx -t -q -p "$d/" -c "$d/nginx.conf" -e "$d/log/error.log" || return 1
  # Warnings (a deprecated directive, a missing resolver...) fail too.
  if grep -F '[warn]' "$d/log/error.log"; then return 1; fi
  NGINX_OK=1
}
NGINX_OK=""
check "nginx -t" nginx_test

if [ -n "$NGINX_OK" ]; then
  check "nginx smoke" "$BIN/python" "$ROOT/scripts/check-deploy.py" nginx-smoke \
    "$(command -v nginx)" "$WORK/nginx/medvision.conf"
else
  skip "nginx smoke" "(nginx -t did not get far enough)"
fi

echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "check-deploy: ${#failed[@]} failed (${failed[*]}), $passed passed"
  exit 1
fi
echo "check-deploy: all $passed checks passed"
