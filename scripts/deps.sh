#!/usr/bin/env bash
# Installs the Debian packages tandem needs to build and run (with --test, also to run the
# browser tests; with --bench, the benchmarks' reference tools and load generators). Does
# nothing when they are already there.
set -euo pipefail

packages=(build-essential cmake pkg-config libjansson-dev libxxhash-dev libutf8proc-dev
          libcmocka-dev libsqlite3-dev libyaml-dev libmicrohttpd-dev libsodium-dev
          libcurl4-openssl-dev curl sqlite3 jq python3 clang libclang-rt-14-dev)
for arg in "$@"; do
    case $arg in
    --bench) packages+=(fasttext liblinear-tools time wrk nginx-light) ;;
    --test)
        # The browser tests: Debian's chromium, driven from Node.js (playwright-core from
        # npm), the machine's Node.js or else Debian's.
        packages+=(chromium)
        # The metrics tests: promtool (Debian's prometheus) checks GET /metrics, libfaketime
        # sets the server's clock.
        packages+=(prometheus faketime)
        command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
        ;;
    *) echo "usage: scripts/deps.sh [--test] [--bench]" >&2; exit 2 ;;
    esac
done

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
