#!/bin/sh
# netns-run.sh TEST [ARGS...]: runs a unit test in a private network namespace, so no name it
# looks up can reach a resolver: as root with unshare --net, else in a user namespace of its
# own (unshare --map-root-user --net). Before the test runs, the namespace is checked: only
# the loopback interface and no IPv4 or IPv6 route; otherwise it fails (exit 1) naming what
# it found. Then the test's own exit status is the result.
set -eu
[ $# -ge 1 ] && [ -x "$1" ] || { echo "netns-run.sh: not an executable test: '${1:-}'" >&2; exit 1; }

if [ "${NETNS_RUN_INSIDE:-}" = 1 ]; then
        # /proc/self/net/ shows this process's network namespace (/sys/class/net would show
        # the namespace sysfs was mounted in).
        links=$(awk -F: 'NR > 2 { gsub(/ /, "", $1); print $1 }' /proc/self/net/dev | sort | tr '\n' ' ')
        [ "$links" = "lo " ] || { echo "netns-run.sh: interfaces in the test's namespace: $links" >&2; exit 1; }
        # A new namespace has IPv6 reject routes on lo (flag RTF_REJECT 0x200): not a way out.
        routes=$(( $(awk 'NR > 1' /proc/self/net/route | wc -l) +
                   $(awk 'index("2367abef", substr($9, 6, 1)) == 0' /proc/self/net/ipv6_route 2>/dev/null | wc -l) ))
        [ "$routes" -eq 0 ] || { echo "netns-run.sh: $routes route(s) in the test's namespace" >&2; exit 1; }
        unset NETNS_RUN_INSIDE
        exec "$@"
fi

export NETNS_RUN_INSIDE=1
if [ "$(id -u)" -eq 0 ]; then
        exec unshare --net -- "$0" "$@"
fi
exec unshare --map-root-user --net -- "$0" "$@"
