#!/usr/bin/env bash
# Runs the Redis side-by-side benchmark of the read path (README.md):
# installs Debian's redis-server when it is missing, starts a Redis of
# its own on a free loopback port in a temporary dir (AOF, fsync every
# second, no RDB snapshots, no daemon), runs the Go program with this
# script's arguments, and stops Redis and removes the dir on exit.
#
#   bench/redis/run.sh                  # every row, 5 s each
#   bench/redis/run.sh -duration 2s -json
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if ! command -v redis-server >/dev/null 2>&1; then
	echo "run.sh: installing redis-server" >&2
	# Keep the package's own service from starting: this script runs a
	# Redis of its own, and nothing may stay running after it.
	policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod +x "$policy"
	fi
	apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
	if [ -n "$policy" ]; then rm -f "$policy"; fi
fi

dir="$(mktemp -d -t redis-bench-XXXXXX)"
pid=""
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free port: bind port 0, read what the kernel chose, let it go.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null ||
	shuf -i 20000-60000 -n 1)"

redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" \
	--appendonly yes --appendfsync everysec --save '' \
	--daemonize no --protected-mode yes --logfile "$dir/redis.log" &
pid=$!

for _ in $(seq 1 100); do
	if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
		break
	fi
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "run.sh: redis-server exited:" >&2
		cat "$dir/redis.log" >&2
		exit 1
	fi
	sleep 0.1
done
redis-cli -h 127.0.0.1 -p "$port" ping | grep -q PONG

cd "$here"
REDIS_ADDR="127.0.0.1:$port" go run . "$@"
