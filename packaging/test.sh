#!/usr/bin/env bash
# Tests ajar's Debian package on this machine, as root: builds it twice (two versions) from the
# build the test suite made, installs the first, checks its files, user, modes and units, runs
# the server exactly as ajar-serve.service does (its ExecStart, user, working directory, umask,
# readiness socket), writes through the API, upgrades to the second version and reads the data
# back, removes (data kept), purges (data gone), and runs lintian (errors and warnings fail;
# overrides are in packaging/debian/lintian-overrides). systemd need not be running. The package
# is purged at the end, also on failure. AJAR_DEB_PROFILE: the Cargo profile (default dev).
set -euo pipefail
cd "$(dirname "$0")/.."
export AJAR_DEB_PROFILE=${AJAR_DEB_PROFILE:-dev}

say() { echo "packaging/test.sh: $*"; }
fail() {
  echo "packaging/test.sh: FAIL: $*" >&2
  exit 1
}
[ "$(id -u)" = 0 ] || fail "run as root (it installs the package)"

# A package left by an interrupted run of this script is purged; any other is not ours to touch.
if installed=$(dpkg-query -W -f='${Version}' ajar 2>/dev/null) && [ -n "$installed" ]; then
  case "$installed" in
    *~ci*) dpkg -P ajar >/dev/null ;;
    *) fail "ajar $installed is installed on this machine; remove it first" ;;
  esac
fi
had_user=0
getent passwd ajar >/dev/null && had_user=1

work=$(mktemp -d)
chmod 755 "$work"
server=
notify=
cleanup() {
  set +e
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  [ -n "$notify" ] && kill "$notify" 2>/dev/null
  dpkg -P ajar >/dev/null 2>&1
  # The package keeps its system user, as Debian does; this test leaves the machine as it was.
  [ "$had_user" = 0 ] && getent passwd ajar >/dev/null && deluser --system ajar >/dev/null 2>&1
  [ "$had_user" = 0 ] && getent group ajar >/dev/null && delgroup --system ajar >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

for v in 1 2; do
  packaging/deb.sh --no-build --fast --deb-version "0.1.0~ci$v-1" -o "$work/" >"$work/deb.log" 2>&1 || {
    cat "$work/deb.log" >&2
    fail "packaging/deb.sh"
  }
done
deb1=$(ls "$work"/ajar_0.1.0~ci1-1_*.deb)
deb2=$(ls "$work"/ajar_0.1.0~ci2-1_*.deb)
say "built $(basename "$deb1") and $(basename "$deb2")"

# --- lintian
lintian --fail-on error,warning "$deb1" >"$work/lintian" 2>&1 || {
  cat "$work/lintian" >&2
  fail "lintian"
}
say "lintian: no errors or warnings"

# --- install
dpkg -i "$deb1" >"$work/dpkg.log" 2>&1 || {
  cat "$work/dpkg.log" >&2
  fail "dpkg -i $deb1"
}
getent passwd ajar >/dev/null || fail "no user ajar"
getent group ajar >/dev/null || fail "no group ajar"
[ "$(getent passwd ajar | cut -d: -f6)" = /var/lib/ajar ] || fail "ajar's home is not /var/lib/ajar"
mode() { stat -c '%a %U %G' "$1"; }
[ "$(mode /var/lib/ajar)" = "700 ajar ajar" ] || fail "/var/lib/ajar is $(mode /var/lib/ajar)"
for f in /usr/bin/ajar /etc/ajar/serve.toml /etc/ajar/agent.env \
  /usr/lib/systemd/system/ajar-serve.service /usr/lib/systemd/system/ajar-agent.service \
  /usr/share/man/man1/ajar.1.gz /usr/share/man/man1/ajar-serve.1.gz /usr/share/man/man1/ajar-agent.1.gz \
  /usr/share/bash-completion/completions/ajar /usr/share/zsh/vendor-completions/_ajar \
  /usr/share/fish/vendor_completions.d/ajar.fish /usr/share/lintian/overrides/ajar \
  /usr/share/doc/ajar/copyright /usr/share/doc/ajar/changelog.Debian.gz; do
  [ -f "$f" ] || fail "$f is missing"
done
grep -qx /etc/ajar/serve.toml /var/lib/dpkg/info/ajar.conffiles || fail "serve.toml is not a conffile"
[ "$(mode /usr/bin/ajar)" = "755 root root" ] || fail "/usr/bin/ajar is $(mode /usr/bin/ajar)"
[ -L /etc/systemd/system/multi-user.target.wants/ajar-serve.service ] || fail "ajar-serve is not enabled"
[ ! -e /etc/systemd/system/multi-user.target.wants/ajar-agent.service ] || fail "ajar-agent is enabled"
say "installed: user ajar, /var/lib/ajar 700 ajar, conffiles, units (ajar-serve enabled, ajar-agent not), man pages, completions"

# --- the units
for unit in ajar-serve ajar-agent; do
  out=$(systemd-analyze verify "/usr/lib/systemd/system/$unit.service" 2>&1) || {
    echo "$out" >&2
    fail "systemd-analyze verify $unit.service"
  }
  # Without systemd running, verify still reads the unit; it must say nothing about it.
  if echo "$out" | grep -q "$unit"; then
    echo "$out" >&2
    fail "systemd-analyze verify $unit.service"
  fi
done
say "systemd-analyze verify: both units clean"

# --- the server, as ajar-serve.service runs it
unit=/usr/lib/systemd/system/ajar-serve.service
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
user=$(sed -n 's/^User=//p' "$unit")
umask_=$(sed -n 's/^UMask=//p' "$unit")
cwd=$(sed -n 's/^WorkingDirectory=//p' "$unit")
listen=$(sed -n 's/^listen = "\(.*\)"/\1/p' /etc/ajar/serve.toml)
url="http://$listen"
if curl -s -o /dev/null "$url/healthz"; then
  fail "something already listens on $listen"
fi

start() { # $1: a name for its output files
  rm -f "$work/notify"
  python3 - "$work/notify" >"$work/$1.notify" <<'PY' &
import socket, os, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o777)
s.settimeout(120)
print(s.recv(4096).decode(), flush=True)
PY
  notify=$!
  for _ in $(seq 50); do [ -S "$work/notify" ] && break; sleep 0.1; done
  # shellcheck disable=SC2086
  (cd "$cwd" && umask "$umask_" && exec setpriv --reuid "$user" --regid "$user" --init-groups \
    --no-new-privs env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin NOTIFY_SOCKET="$work/notify" \
    $exec_start) >"$work/$1.out" 2>"$work/$1.err" &
  server=$!
  for _ in $(seq 120); do
    curl -fs -o /dev/null "$url/readyz" && break
    kill -0 "$server" 2>/dev/null || { cat "$work/$1.err" >&2; fail "the server stopped"; }
    sleep 0.5
  done
  curl -fs -o /dev/null "$url/readyz" || { cat "$work/$1.err" >&2; fail "/readyz never answered"; }
  wait "$notify" || true
  notify=
  grep -qx 'READY=1' "$work/$1.notify" || fail "no READY=1 on NOTIFY_SOCKET: $(cat "$work/$1.notify")"
}
stop() {
  kill "$server"
  wait "$server" || true
  server=
}

start first
grep -q 'bootstrap token' "$work/first.out" && fail "the bootstrap token went to the output (and so the journal)"
[ "$(mode /var/lib/ajar/bootstrap.token)" = "600 ajar ajar" ] \
  || fail "bootstrap.token is $(mode /var/lib/ajar/bootstrap.token)"
token=$(cat /var/lib/ajar/bootstrap.token)
[ -n "$token" ] || fail "no bootstrap token on the first start"
machine=/subscriptions/s1/resourceGroups/pkg/machines/vm1
api() { curl -fsS -H "Authorization: Bearer $token" -H "Content-Type: application/json" "$@"; }
api -X PUT "$url/api/v1$machine" -d '{"properties":{"os":"linux","addresses":["10.1.0.4"]}}' >/dev/null \
  || fail "cannot create a machine"
[ "$(mode /var/lib/ajar/ajar.db)" = "600 ajar ajar" ] || fail "ajar.db is $(mode /var/lib/ajar/ajar.db)"
stop
say "served as $user with the unit's ExecStart ($exec_start): READY=1, /readyz, machine $machine written"

# --- upgrade
dpkg -i "$deb2" >"$work/dpkg.log" 2>&1 || {
  cat "$work/dpkg.log" >&2
  fail "dpkg -i $deb2"
}
[ "$(dpkg-query -W -f='${Version}' ajar)" = "0.1.0~ci2-1" ] || fail "not upgraded"
[ "$(mode /var/lib/ajar)" = "700 ajar ajar" ] || fail "/var/lib/ajar is $(mode /var/lib/ajar) after the upgrade"
start second
grep -q 'bootstrap token' "$work/second.out" && fail "the upgrade started a new store"
api "$url/api/v1$machine" | grep -q '10.1.0.4' || fail "the machine is gone after the upgrade"
stop
say "upgraded to 0.1.0~ci2-1: the store and its machine are still there"

# --- remove, then purge
dpkg -r ajar >"$work/dpkg.log" 2>&1 || fail "dpkg -r"
[ ! -e /usr/bin/ajar ] || fail "/usr/bin/ajar still there after dpkg -r"
[ -f /var/lib/ajar/ajar.db ] || fail "dpkg -r removed the data"
[ -f /etc/ajar/serve.toml ] || fail "dpkg -r removed the configuration"
getent passwd ajar >/dev/null || fail "dpkg -r removed the user"
say "dpkg -r: binary gone; data, configuration and user kept"
dpkg -P ajar >"$work/dpkg.log" 2>&1 || fail "dpkg -P"
[ ! -e /var/lib/ajar ] || fail "/var/lib/ajar still there after dpkg -P"
[ ! -e /etc/ajar ] || fail "/etc/ajar still there after dpkg -P"
[ ! -e /etc/systemd/system/multi-user.target.wants/ajar-serve.service ] || fail "ajar-serve still enabled after purge"
say "dpkg -P: data, configuration and unit links gone (the ajar user stays, as Debian does)"
say "ok"
