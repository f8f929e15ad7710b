# shellcheck shell=bash
# The start of a certbrokerd test (or benchmark), sourced with the script's arguments right
# after CB_SOURCE_ROOT is known:
#   . "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"
# loads lab.sh, enters the lab (lab_enter re-executes the script in fresh namespaces) and loads
# ndes-common.sh and daemon-common.sh. Sourced, not a test itself.
. "$CB_SOURCE_ROOT/tests/lab/lab.sh"
lab_enter "$@"
. "$CB_SOURCE_ROOT/tests/integration/ndes-common.sh"
. "$CB_SOURCE_ROOT/tests/integration/daemon-common.sh"
