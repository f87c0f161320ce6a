#!/usr/bin/env bash
# Installs the GridTokenX Edge gateway as a systemd service. Idempotent: run it again at any time;
# it creates what is missing and never replaces a device key or an edited configuration.
#
#   sudo systemd/install.sh                  # on the gateway box (gridtokenx already pip-installed)
#   sudo systemd/install.sh --now            # ... and start it (once the configuration is edited)
#   systemd/install.sh --root /tmp/scratch   # into a scratch root, as tests/systemd/test_install.py does
#
# Steps: the gridtokenx system user (in dialout, for RS-485 adapters) via systemd-sysusers;
# /etc/gridtokenx (0750 root:gridtokenx) and /var/lib/gridtokenx (0700 gridtokenx); the device key
# (gridtokenx gateway keygen, 0600, owned by gridtokenx); the example configuration if none exists;
# /usr/local/bin/gridtokenx if the command lives elsewhere (a venv); the unit, enabled.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root=""
start=no
bin="${GRIDTOKENX_BIN:-$(command -v gridtokenx || true)}"
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root="${2%/}"; shift 2 ;;
    --now) start=yes; shift ;;
    --bin) bin="$2"; shift 2 ;;
    *) echo "install.sh: unknown argument $1 (use --root DIR, --bin PATH, --now)" >&2; exit 2 ;;
  esac
done
[ -n "$bin" ] && [ -x "$bin" ] || { echo "install.sh: no gridtokenx command: pip install 'gridtokenx-edge[gateway]' first, or pass --bin PATH" >&2; exit 2; }
if [ "$(id -u)" != 0 ]; then echo "install.sh: run as root (it creates a user and owns files to it)" >&2; exit 2; fi

say() { echo "install.sh: $*"; }
root_args=()
[ -n "$root" ] && root_args=(--root="$root")

# 1. User and group (systemd-sysusers is idempotent and understands --root).
mkdir -p "$root/etc"
touch "$root/etc/passwd" "$root/etc/group" "$root/etc/shadow" "$root/etc/gshadow"
install -D -m 0644 "$here/gridtokenx.sysusers" "$root/usr/lib/sysusers.d/gridtokenx.conf"
systemd-sysusers "${root_args[@]}" "$root/usr/lib/sysusers.d/gridtokenx.conf"
uid="$(awk -F: '$1 == "gridtokenx" {print $3}' "$root/etc/passwd")"
gid="$(awk -F: '$1 == "gridtokenx" {print $3}' "$root/etc/group")"
[ -n "$uid" ] && [ -n "$gid" ] || { echo "install.sh: user gridtokenx was not created" >&2; exit 1; }
say "user gridtokenx ($uid:$gid), groups: $(awk -F: '$4 ~ /(^|,)gridtokenx(,|$)/ {printf "%s ", $1}' "$root/etc/group")"

# 2. Directories, modes enforced on every run.
install -d -m 0750 -o 0 -g "$gid" "$root/etc/gridtokenx"
install -d -m 0700 -o "$uid" -g "$gid" "$root/var/lib/gridtokenx"

# 3. The device key: made once, on this box, never replaced.
key="$root/var/lib/gridtokenx/device.key"
if [ -e "$key" ]; then
  say "device key exists, kept: $key"
else
  "$bin" gateway keygen --out "$key"
fi
chown "$uid:$gid" "$key"
chmod 0600 "$key"

# 4. Configuration: the commented example, only if there is none (never overwrite an edited one).
config="$root/etc/gridtokenx/gateway.toml"
if [ -e "$config" ]; then
  say "configuration exists, kept: $config"
else
  install -m 0640 -o 0 -g "$gid" "$here/gateway.example.toml" "$config"
  say "configuration copied from the example: edit $config, then: gridtokenx gateway check-config $config"
fi

# 5. The command where the unit expects it.
if [ ! -e "$root/usr/local/bin/gridtokenx" ]; then
  mkdir -p "$root/usr/local/bin"
  ln -s "$bin" "$root/usr/local/bin/gridtokenx"
  say "linked /usr/local/bin/gridtokenx -> $bin"
fi

# 6. The unit, enabled (replaced on every run: it is ours, not the operator's; overrides go in a drop-in).
install -D -m 0644 "$here/gridtokenx-gateway.service" "$root/etc/systemd/system/gridtokenx-gateway.service"
if [ -n "$root" ]; then
  systemctl --root="$root" enable gridtokenx-gateway.service
else
  systemctl daemon-reload
  systemctl enable gridtokenx-gateway.service
  if [ "$start" = yes ]; then systemctl restart gridtokenx-gateway.service; fi
fi
say "done: gridtokenx-gateway.service enabled${root:+ in $root}"
