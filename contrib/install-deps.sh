#!/bin/sh
# Install every Debian 12 package pushrelay needs to build, test and benchmark.
# Run as root (or with sudo) on a fresh machine. Safe to run again.
set -eu

BUILD="build-essential autoconf automake libtool pkg-config
  libev-dev libcurl4-openssl-dev libnghttp2-dev libssl-dev libsqlite3-dev
  libjansson-dev libhttp-parser-dev libwslay-dev libjwt-dev libinih-dev check"
# Tools the test suite and benchmarks drive: curl (HTTP/1.1, h2c, h2),
# openssl (test certificates), wrk and h2load (benchmarks), python3 (test
# helpers), unshare and mount (the storage-fault tests' namespaces),
# valgrind (contrib/valgrind-check.sh).
TOOLS="curl openssl wrk nghttp2-client python3 procps util-linux mount
  valgrind"
# make fuzz: libFuzzer comes with clang's runtime.
FUZZ="clang libclang-rt-14-dev"
# The dashboard test: Debian's Chromium, driven from node by playwright-core
# (contrib/test.sh installs that from npm; it never downloads a browser).
BROWSER="chromium nodejs"

if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $BUILD $TOOLS $FUZZ $BROWSER
# npm: Debian's package, unless node came with its own (NodeSource's nodejs
# bundles npm and conflicts with Debian's npm package).
if ! command -v npm >/dev/null 2>&1; then
	$SUDO apt-get install -y -q --no-install-recommends npm
fi
