#!/bin/sh
# pushrelay reference client: what a mobile app does on reconnect, with
# curl and openssl. It registers its device, then drains its inbox with
# long polls and acknowledges what it got, until Ctrl-C (or -n rounds).
#
#   contrib/pushrelay-client.sh -u alice -d phone-1 -s SECRET [-a chat]
#       [-r http://127.0.0.1:8080] [-t PUSH_TOKEN] [-p apns|fcm] [-n ROUNDS]
#
# A real app gets its client token from the chat server; for the demo the
# client mints one itself with the app's client_token_secret (-s), which
# only the chat server should know. The token is HS256 with sub = user,
# device = device id and a one-hour exp, as API.md describes.
set -eu

relay=http://127.0.0.1:8080
app=
user=
device=
secret=
push_token=
platform=fcm
rounds=0

while getopts "r:a:u:d:s:t:p:n:" opt; do
	case $opt in
	r) relay=$OPTARG ;;
	a) app=$OPTARG ;;
	u) user=$OPTARG ;;
	d) device=$OPTARG ;;
	s) secret=$OPTARG ;;
	t) push_token=$OPTARG ;;
	p) platform=$OPTARG ;;
	n) rounds=$OPTARG ;;
	*) sed -n '2,12p' "$0" >&2; exit 2 ;;
	esac
done
[ -n "$user" ] && [ -n "$device" ] && [ -n "$secret" ] || {
	sed -n '2,12p' "$0" >&2
	exit 2
}

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

now=$(date +%s)
header=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
if [ -n "$app" ]; then
	claims=$(printf '{"sub":"%s","device":"%s","app":"%s","exp":%d}' \
		"$user" "$device" "$app" $((now + 3600)) | b64url)
else
	claims=$(printf '{"sub":"%s","device":"%s","exp":%d}' \
		"$user" "$device" $((now + 3600)) | b64url)
fi
sig=$(printf '%s.%s' "$header" "$claims" |
	openssl dgst -sha256 -hmac "$secret" -binary | b64url)
tok="$header.$claims.$sig"
auth="Authorization: Bearer $tok"

# 1. Register (or refresh) this device and its push token.
[ -n "$push_token" ] || push_token="demo-$device"
curl -sf -X PUT "$relay/v1/devices/$device" -H "$auth" \
	-H 'Content-Type: application/json' \
	-d "{\"user\":\"$user\",\"platform\":\"$platform\",\"token\":\"$push_token\"}" \
	>/dev/null
echo "registered $device for $user"

# 2. Drain: long-poll the inbox, print each message, acknowledge them.
after=0
round=0
while [ "$rounds" -eq 0 ] || [ "$round" -lt "$rounds" ]; do
	round=$((round + 1))
	page=$(curl -sf "$relay/v1/inbox?after=$after&limit=100&wait=25" -H "$auth")
	next=$(printf '%s' "$page" | sed -n 's/.*"next":\([0-9]*\).*/\1/p')
	case $page in
	*'"push":"invalid"'*)
		echo "the push token was reported dead: register a new one" ;;
	esac
	printf '%s\n' "$page" | tr '{' '\n' | sed -n 's/^"seq":\([0-9]*\),"id":"\([^"]*\)".*/  message \1: \2/p'
	if [ -n "$next" ] && [ "$next" -gt "$after" ]; then
		curl -sf -X POST "$relay/v1/inbox/ack" -H "$auth" \
			-H 'Content-Type: application/json' \
			-d "{\"up_to\":$next}" >/dev/null
		echo "acknowledged up to $next"
		after=$next
	fi
done
