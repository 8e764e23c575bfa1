#!/usr/bin/env bash
# System packages the sandbox uses when present: bubblewrap (filesystem view) and libseccomp
# (the seccomp deny-list). Installed when missing and possible (root with apt-get); never fails
# the build: without them Roost falls back, and says so when `roost serve` starts.
set -u
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2' || missing+=(libseccomp2)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} for the sandbox"
    (apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null) \
        || echo "warning: could not install ${missing[*]}; instances will run with less isolation" >&2
else
    echo "note: ${missing[*]} not installed; instances will run with less isolation (see docs/limits.md)" >&2
fi
exit 0
