#!/bin/sh
# Runs a unit test in a private network namespace with nothing but a down loopback, so no
# name it looks up can reach a resolver: as root with unshare --net, else in a user namespace
# of its own (unshare --map-root-user --net).
if [ "$(id -u)" -eq 0 ]; then
        exec unshare --net -- "$@"
fi
exec unshare --map-root-user --net -- "$@"
