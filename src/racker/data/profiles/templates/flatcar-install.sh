#!/bin/bash
# racker: install Flatcar to this node's disk, report the result to racker, reboot.
# On failure the node stays up (console autologin) so the operator can look; racker got
# the "failed" event and decides whether to retry.
set -uo pipefail

EVENTS_URL={{ events_url | shquote }}
WANTED_DISK={{ install_disk | shquote }}
BASE_URL={{ (assets_url ~ "/flatcar") | shquote }}
VERSION={{ flatcar.version | shquote }}
FINAL_IGNITION=/opt/racker/installed.ign
LOG=/var/log/racker-install.log

# post EVENT MESSAGE: tell racker (best effort, a few tries). The message is made safe for a
# JSON string: control characters dropped, backslashes and quotes escaped, length capped.
post() {
  local msg
  msg=$(printf '%s' "${2:-}" | tr '\n\t' '  ' | tr -d '\000-\037' \
    | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | cut -c1-400)
  for _ in 1 2 3 4 5; do
    curl -fsS -m 10 -H 'Content-Type: application/json' \
      -d "{\"event\": \"$1\", \"message\": \"${msg}\"}" "$EVENTS_URL" && return 0
    sleep 2
  done
  return 1
}

# pick_disk smallest|largest: a whole, writable, non-removable disk (lsblk(8) columns).
pick_disk() {
  lsblk -dbnpo NAME,SIZE,RM,RO,TYPE \
    | awk '$3 == 0 && $4 == 0 && $5 == "disk" && $2 > 0 && $1 !~ /zram|loop/ { print $2, $1 }' \
    | sort -n \
    | if [ "$1" = largest ]; then tail -n 1; else head -n 1; fi \
    | cut -d' ' -f2
}

case "$WANTED_DISK" in
  smallest|largest) DISK=$(pick_disk "$WANTED_DISK") ;;
  *) DISK=$WANTED_DISK ;;
esac
if [ -z "$DISK" ] || [ ! -b "$DISK" ]; then
  post failed "no install disk: wanted ${WANTED_DISK}, found '${DISK}'; lsblk: $(lsblk -dno NAME,SIZE,TYPE | tr '\n' ';')"
  exit 1
fi

post install-started "installing Flatcar ${VERSION} to ${DISK}"
if flatcar-install -d "$DISK" -V "$VERSION" -b "$BASE_URL" -i "$FINAL_IGNITION" >"$LOG" 2>&1; then
  post installed "Flatcar ${VERSION} installed to ${DISK}"
  systemctl reboot
else
  post failed "flatcar-install to ${DISK} failed: $(tail -n 5 "$LOG")"
  exit 1
fi
