#!/bin/sh
# Install every Debian 12 package pushrelay needs to build, test and benchmark.
# Run as root (or with sudo) on a fresh machine. Safe to run again.
set -eu

BUILD="build-essential autoconf automake libtool pkg-config
  libev-dev libcurl4-openssl-dev libnghttp2-dev libssl-dev libsqlite3-dev
  libjansson-dev libhttp-parser-dev libwslay-dev libjwt-dev libinih-dev check"
# Tools the test suite and benchmarks drive: curl (HTTP/1.1, h2c, h2),
# openssl (test certificates), wrk and h2load (benchmarks), python3 (test helpers).
TOOLS="curl openssl wrk nghttp2-client python3 procps"

if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $BUILD $TOOLS
