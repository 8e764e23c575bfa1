#!/usr/bin/env bash
# System packages Roost uses when present. Installed when missing and possible (root with
# apt-get); never fails the build.
#   (no argument)  the sandbox's: bubblewrap (filesystem view), libseccomp (the seccomp
#                  deny-list) and nftables (the firewall around instance ports). Without them
#                  Roost falls back, and says so when `roost serve` starts.
#   bench          bench/proxy.py's reference and load generator: nginx and wrk.
#   test           the end-to-end tests' real services and browser: redis-server
#                  (tests/e2e/test_processes.py's Celery queue), pebble, Let's Encrypt's ACME test
#                  server (tests/e2e/test_acme.py), Debian's chromium and its chromedriver
#                  (tests/e2e/test_dashboard.py; Selenium is given the driver's path, so nothing
#                  downloads a browser); without them those tests fail and say so.
set -u
missing=()
if [ "${1:-}" = test ]; then
    purpose="the tests"
    consequence="the tests that need it will fail, naming it"
    command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
    command -v pebble >/dev/null 2>&1 || missing+=(pebble)
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
elif [ "${1:-}" = bench ]; then
    purpose="the benchmarks"
    consequence="bench/proxy.py will stop and name them"
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
else
    purpose="the sandbox"
    consequence="instances will run with less isolation (see docs/limits.md)"
    command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
    ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2' || missing+=(libseccomp2)
    command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || missing+=(nftables)
fi
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} for $purpose"
    (apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null) \
        || echo "warning: could not install ${missing[*]}; $consequence" >&2
else
    echo "note: ${missing[*]} not installed; $consequence" >&2
fi
exit 0
