#!/bin/sh
# Install what pushrelay needs, build it, and start the relay in the
# foreground on its embedded default (SQLite in ./demo), with the bundled
# mock APNs/FCM server standing in for Apple and Google, so a push can be
# seen going through. Stop it with Ctrl-C.
#
#   contrib/demo.sh                  install, build, run
#   SKIP_INSTALL=1 contrib/demo.sh   when the packages are already there
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
	sh contrib/install-deps.sh
fi
if [ ! -x ./pushrelayd ] || [ ! -x ./tests/mock/pr-mock ]; then
	[ -x ./configure ] || autoreconf -fi >/dev/null
	[ -f Makefile ] || ./configure
	make -j"$(nproc 2>/dev/null || echo 2)"
fi

mkdir -p demo
chmod 700 demo
if [ ! -f demo/mock/tls.crt ]; then
	mkdir -p demo/mock
	./tests/mock/pr-mock --make-credentials demo/mock >/dev/null
fi
sed "s|@DEMO@|$top/demo|g" contrib/demo.conf >demo/pushrelay.conf
./pushrelayd -t -c demo/pushrelay.conf

./tests/mock/pr-mock --listen 127.0.0.1:8443 --cert demo/mock/tls.crt \
	--key demo/mock/tls.key --apns-key demo/mock/AuthKey_TESTKEY001.p8 \
	--apns-key-id TESTKEY001 --apns-team-id TEAM123456 \
	--fcm-credentials demo/mock/service-account.json \
	>demo/mock.log 2>&1 &
mock=$!
trap 'kill "$mock" 2>/dev/null || true' EXIT INT TERM

cat <<'MSG'

pushrelay is starting on http://127.0.0.1:8080 (HTTP/1.1 and h2c), with its
database and admin socket in ./demo, and a mock APNs/FCM on 127.0.0.1:8443.
From another terminal:

  ./pushrelayctl -c demo/pushrelay.conf health
  KEY=$(./pushrelayctl -c demo/pushrelay.conf --json keys create demo | sed 's/.*"key":"\([^"]*\)".*/\1/')
  curl -s -X PUT http://127.0.0.1:8080/v1/devices/phone-1 -H "Authorization: Bearer $KEY" \
       -H 'Content-Type: application/json' \
       -d '{"user":"alice","platform":"apns","token":"a1b2c3d4e5f60718293a4b5c6d7e8f90"}'
  curl -s http://127.0.0.1:8080/v1/events -H "Authorization: Bearer $KEY" \
       -H 'Content-Type: application/json' \
       -d '{"id":"m-1","user":"alice","payload":{"text":"hi"},"push":{"mode":"alert","title":"Bob","body":"hi"}}'
  # the push as the mock APNs received it:
  curl -s --cacert demo/mock/tls.crt https://127.0.0.1:8443/mock/requests
  # the app reconnects: drains its inbox and acknowledges (reference client)
  contrib/pushrelay-client.sh -u alice -d phone-1 -p apns \
       -t a1b2c3d4e5f60718293a4b5c6d7e8f90 -s demo-client-token-secret-change-me-0123456789 -n 1

Stop with Ctrl-C.

MSG
./pushrelayd -c demo/pushrelay.conf
