#!/bin/sh
# What the racker image runs (issue 9):  docker run --rm --privileged --pid host IMAGE
# With --pid host, PID 1 is the host's init and /proc/1/root is the host's root directory:
# the bundle copies itself there with `racker install --root`, then systemd is asked (in the
# host's mount namespace, through nsenter) to load and enable the unit.
#
# Tests run it without a container: RACKER_HOST_ROOT points at a scratch tree and a fake
# nsenter on PATH records what it was asked to do.
HOST_ROOT=${RACKER_HOST_ROOT:-/proc/1/root}
BUNDLE=${RACKER_BUNDLE_DIR:-/racker}
PREFIX=${RACKER_PREFIX:-/opt/racker}

fail() {
    echo "racker installer: $*" >&2
    exit 1
}

[ -x "$BUNDLE/racker" ] || fail "no bundle at $BUNDLE (the image is broken)"
[ -d "$HOST_ROOT/etc" ] || fail "cannot see the host's root at $HOST_ROOT; run the image with --privileged --pid host"

"$BUNDLE/racker" install --root "$HOST_ROOT" --prefix "$PREFIX" \
    || fail "racker install failed (see above); the host is unchanged"

if [ -d "$HOST_ROOT/run/systemd/system" ]; then
    host() { nsenter --target 1 --mount --uts --ipc --net -- "$@"; }
    host systemctl daemon-reload || fail "systemctl daemon-reload failed on the host"
    host systemctl enable racker.service || fail "systemctl enable racker.service failed on the host"
    if host systemctl is-active --quiet racker.service; then
        host systemctl restart racker.service || fail "racker.service did not restart"
    fi
    echo "racker installed; start it after 'racker factory check': systemctl start racker"
else
    echo "racker installed; the host runs no systemd, so the unit was only written"
fi
