#!/usr/bin/env bash
# Installs the Debian packages tandem needs to build and test (and, with --bench, to run the
# benchmarks with their reference tools and load generators). Does nothing when they are
# already there.
set -euo pipefail

packages=(build-essential cmake pkg-config libjansson-dev libxxhash-dev libutf8proc-dev
          libcmocka-dev libsqlite3-dev libyaml-dev libmicrohttpd-dev libsodium-dev
          libcurl4-openssl-dev curl sqlite3 jq clang libclang-rt-14-dev)
if [[ "${1:-}" == "--bench" ]]; then
    packages+=(fasttext liblinear-tools time wrk nginx-light)
fi

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=""
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
