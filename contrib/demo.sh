#!/bin/sh
# Install what pushrelay needs, build it, and start the relay in the
# foreground on its embedded default, with the demo config: everything
# lives in ./demo (the admin socket, later the SQLite database).
# Stop it with Ctrl-C.
#
#   contrib/demo.sh                  install, build, run
#   SKIP_INSTALL=1 contrib/demo.sh   when the packages are already there
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
	sh contrib/install-deps.sh
fi
if [ ! -x ./pushrelayd ]; then
	autoreconf -fi >/dev/null
	./configure
	make -j"$(nproc 2>/dev/null || echo 2)"
fi

mkdir -p demo
chmod 700 demo
sed "s|@DEMO@|$top/demo|g" contrib/demo.conf >demo/pushrelay.conf
./pushrelayd -t -c demo/pushrelay.conf
cat <<'MSG'

pushrelay is starting on http://127.0.0.1:8080 (HTTP/1.1 and h2c), with its
database and admin socket in ./demo. From another terminal:

  ./pushrelayctl -c demo/pushrelay.conf health
  KEY=$(./pushrelayctl -c demo/pushrelay.conf --json keys create demo | sed 's/.*"key":"\([^"]*\)".*/\1/')
  curl -s -X PUT http://127.0.0.1:8080/v1/devices/phone-1 -H "Authorization: Bearer $KEY" \
       -H 'Content-Type: application/json' -d '{"user":"alice","platform":"fcm","token":"demo-token"}'
  curl -s http://127.0.0.1:8080/v1/events -H "Authorization: Bearer $KEY" \
       -H 'Content-Type: application/json' \
       -d '{"id":"m-1","user":"alice","payload":{"text":"hi"},"push":{"mode":"alert","title":"Bob","body":"hi"}}'

Stop with Ctrl-C.

MSG
exec ./pushrelayd -c demo/pushrelay.conf
