#!/usr/bin/env bash
# `make serve`: run `roost serve` in the foreground and, once it answers,
# push every example app in examples/ (in the background, prefixed output).
set -uo pipefail
bin="$1"
home="$2"
shift 2
export ROOST_HOME="$home"
unset ROOST_URL

"$bin/roost" serve --home "$home" "$@" &
daemon=$!
trap 'kill -TERM "$daemon" 2>/dev/null' INT TERM

ready=""
for _ in $(seq 1 600); do
    if ! kill -0 "$daemon" 2>/dev/null; then
        wait "$daemon"
        exit $?
    fi
    if [ -S "$home/roost.sock" ] && "$bin/roost" list >/dev/null 2>&1; then
        ready=1
        break
    fi
    sleep 0.1
done

if [ -n "$ready" ]; then
    (
        for app in examples/*/; do
            name="$(basename "$app")"
            "$bin/roost" push "$app" -m "make serve" 2>&1 | sed -u "s/^/[push $name] /"
        done
        echo "[examples] pushed; in another terminal: export ROOST_HOME=$home PATH=$(cd "$bin" && pwd):\$PATH; roost list"
    ) &
fi
wait "$daemon"
status=$?
wait
exit "$status"
