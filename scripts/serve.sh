#!/usr/bin/env bash
# `make serve`: run `roost serve` in the foreground and, once it answers, push every example
# app in examples/ at once (in the background, output prefixed), then say how long it all took.
# The home is $ROOST_HOME when given, else Roost's default (~/.local/share/roost), the one
# the CLI finds on its own in any other terminal.
set -uo pipefail
bin="$1"
home="${2:-}"
shift 2
started="${ROOST_SERVE_STARTED:-$(date +%s.%N)}"
unset ROOST_URL
if [ -n "$home" ]; then
    export ROOST_HOME="$home"
fi
home="$("$bin/python" -c 'from roost.serve_settings import default_home; print(default_home())')"
export ROOST_HOME="$home"

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

since_start() {
    awk -v now="$(date +%s.%N)" -v then="$started" 'BEGIN { print now - then }'
}

push_examples() {
    local pids=() failed=0 name
    for app in examples/*/; do
        name="$(basename "$app")"
        "$bin/roost" push "$app" -m "make serve" 2>&1 | sed -u "s/^/[push $name] /" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || failed=$((failed + 1))
    done
    local total
    total="$(since_start)"
    if [ "$failed" = 0 ]; then
        printf '[examples] all %d examples live, %.1f s after `make serve` started\n' "${#pids[@]}" "$total"
    else
        printf '[examples] %d of %d pushes failed (see above), %.1f s after `make serve` started\n' \
            "$failed" "${#pids[@]}" "$total"
    fi
    if [ "$home" = "$(env -u ROOST_HOME "$bin/python" -c 'from roost.serve_settings import default_home; print(default_home())')" ]; then
        echo "[examples] in another terminal: . .venv/bin/activate && roost list"
    else
        echo "[examples] in another terminal: . .venv/bin/activate && export ROOST_HOME=$home && roost list"
    fi
}

if [ -n "$ready" ]; then
    printf '[examples] roost serve answered %.1f s after `make serve` started; pushing the examples\n' \
        "$(since_start)"
    push_examples &
fi
wait "$daemon"
status=$?
wait
exit "$status"
