#!/usr/bin/env bash
# The Debian package, as an operator meets it: cpack builds
# icos_<version>_amd64.deb from this build, apt installs it on this machine
# (the icos user, /var/lib/icos, units, /etc/default files), systemd-analyze
# verifies the units, and the installed binary runs as the units would run
# it (their ExecStart, User and EnvironmentFile; PID 1 here is not systemd),
# each on its own host (tests/e2e/netns.sh): a controller on "ctl", an
# agent on "n1" with the token in /etc/icos/agent.token, a job from "user".
# The agent, stopped as KillMode=process stops it, leaves its task running
# and adopts it when started again. Then apt purges the package; what the
# package leaves (the controller's database, the icos user) goes too, unless
# it was here before. Needs root; skips where an icos package is installed.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
[ "$(id -u)" -eq 0 ] || netns_skip "installs a package: needs root"
for tool in cpack dpkg-deb apt-get; do command -v "$tool" >/dev/null || netns_skip "needs $tool"; done
BUILD_DIR=${ICOS_BUILD_DIR:?set ICOS_BUILD_DIR to the CMake build directory (ctest does)}
# One package test at a time on a machine.
exec 9> /run/lock/icos-e2e-deb-package.lock
flock -w 300 9 || fail "another package test holds /run/lock/icos-e2e-deb-package.lock"
if dpkg-query -W -f='${Status}' icos 2>/dev/null | grep -q "ok installed"; then
  netns_skip "an icos package is installed on this machine; this test would replace and then remove it"
fi
had_user=$(getent passwd icos >/dev/null && echo 1 || true)
had_group=$(getent group icos >/dev/null && echo 1 || true)
had_state=$([ -e /var/lib/icos ] && echo 1 || true)
had_etc=$([ -e /etc/icos ] && echo 1 || true)
INSTALLED=""
# The person who submits: an account on the node, mapped to by a user token
# (the package's server runs as `icos`; its admin token's jobs would run as
# the account "admin", which does not exist).
JOB_USER="icosdeb$$"
netns_after_cleanup() {
  ! getent passwd "$JOB_USER" >/dev/null || userdel -r "$JOB_USER" >/dev/null 2>&1 || true
  if [ -n "$INSTALLED" ]; then
    apt-get purge -y -q -o DPkg::Lock::Timeout=120 icos > "$E2E_DIR/purge.log" 2>&1 || dpkg --purge icos >/dev/null 2>&1 || true
  fi
  [ -n "$had_state" ] || rm -rf /var/lib/icos
  [ -n "$had_etc" ] || rm -rf /etc/icos
  [ -n "$had_user" ] || ! getent passwd icos >/dev/null || deluser --system --quiet icos >/dev/null 2>&1 || userdel icos
  [ -n "$had_group" ] || ! getent group icos >/dev/null || delgroup --system --quiet icos >/dev/null 2>&1 || groupdel icos 2>/dev/null
  true
}
netns_init

# Build it.
cpack --config "$BUILD_DIR/CPackConfig.cmake" -B "$E2E_DIR/pkg" > "$E2E_DIR/cpack.log" 2>&1 || fail "cpack failed: $(tail -20 "$E2E_DIR/cpack.log")"
version=$(grep -o 'CPACK_PACKAGE_VERSION "[^"]*"' "$BUILD_DIR/CPackConfig.cmake" | cut -d'"' -f2)
deb="$E2E_DIR/pkg/icos_${version}_amd64.deb"
[ -f "$deb" ] || fail "no $deb: $(ls "$E2E_DIR/pkg")"
contents=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's,^\.,,' | grep -v '/$')
for f in /usr/bin/icos /usr/bin/icos-shim /usr/lib/systemd/system/icos-server.service /usr/lib/systemd/system/icos-agent.service \
         /etc/default/icos-server /etc/default/icos-agent /usr/share/doc/icos/deploy.md; do
  grep -qx "$f" <<< "$contents" || fail "the package lacks $f: $contents"
done
depends=$(dpkg-deb -f "$deb" Depends)
for d in adduser libpq5 libsqlite3 libc6; do
  grep -q "$d" <<< "$depends" || fail "the package does not depend on $d: $depends"
done
dpkg-deb -I "$deb" conffiles | grep -qx /etc/default/icos-agent || fail "/etc/default/icos-agent is not a conffile"
echo "package $(basename "$deb"): $(wc -l <<< "$contents") files; Depends: $depends"

# Install it.
INSTALLED=1
apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=120 "$deb" > "$E2E_DIR/install.log" 2>&1 ||
  fail "apt install failed: $(tail -20 "$E2E_DIR/install.log")"
[ "$(/usr/bin/icos --version)" = "icos $version" ] || fail "installed icos says '$(/usr/bin/icos --version)'"
getent passwd icos | grep -q ':/usr/sbin/nologin$' || fail "no icos system user: $(getent passwd icos)"
[ "$(stat -c '%U %a' /var/lib/icos)" = "icos 750" ] || fail "/var/lib/icos is $(stat -c '%U %a' /var/lib/icos)"
[ -d /var/lib/icos-agent ] && [ -d /etc/icos ] || fail "the agent's directories are missing"
if command -v systemd-analyze >/dev/null; then
  out=$(systemd-analyze verify /usr/lib/systemd/system/icos-server.service /usr/lib/systemd/system/icos-agent.service 2>&1) ||
    fail "systemd-analyze verify: $out"
  [ -z "$out" ] || fail "systemd-analyze verify warned: $out"
  echo "systemd-analyze verify: both units clean"
else
  echo "systemd-analyze not installed: units not verified"
fi
grep -qx 'KillMode=process' /usr/lib/systemd/system/icos-agent.service || fail "the agent unit would kill its tasks"

# unit_start HOST UNIT: what systemd would run for UNIT (ExecStart, User,
# Environment, EnvironmentFile), on host HOST, in the background. setpriv
# execs (no process in between, unlike runuser), so signals reach the
# service's main process as systemd's would.
unit_start() {
  local host=$1 unit=/usr/lib/systemd/system/$2.service
  local cmd user envfile envs
  cmd=$(sed -n 's/^ExecStart=//p' "$unit")
  user=$(sed -n 's/^User=//p' "$unit")
  envfile=$(sed -n 's/^EnvironmentFile=-\{0,1\}//p' "$unit")
  envs=$(sed -n 's/^Environment=//p' "$unit")
  netns_start "$host" "$E2E_DIR/$2.log" setpriv --reuid="${user:-root}" --regid="${user:-root}" --init-groups -- \
    /usr/bin/env $envs /bin/bash -c \
    "set -a; [ ! -f '$envfile' ] || . '$envfile'; set +a; exec $cmd"
}

netns_add ctl
netns_add n1
netns_add user
unit_start ctl icos-server
SERVER=$LAST_PID
wait_until 20 grep -q "listening" "$E2E_DIR/icos-server.log" || fail "the installed server did not start: $(cat "$E2E_DIR/icos-server.log")"
[ "$(stat -c %U /var/lib/icos/icos.db)" = icos ] || fail "the server did not run as icos"
# The operator's two steps on a node: the token, and the controller's address.
install -m 0600 /var/lib/icos/agent.token /etc/icos/agent.token
sed -i "s|^ICOS_CONTROLLER=.*|ICOS_CONTROLLER=\"http://$(netns_ip ctl):7070\"|" /etc/default/icos-agent
unit_start n1 icos-agent
AGENT=$LAST_PID
wait_until 20 grep -q "joined" "$E2E_DIR/icos-agent.log" || fail "the installed agent did not join: $(cat "$E2E_DIR/icos-agent.log")"
grep -q "as $(netns_ip n1) " "$E2E_DIR/icos-agent.log" || fail "the agent does not advertise its address: $(cat "$E2E_DIR/icos-agent.log")"
if ps -o args= -p "$AGENT" | grep -q "$(cat /etc/icos/agent.token)"; then fail "the agent token shows in ps"; fi

ICOS_BIN=/usr/bin/icos
export ICOS_SERVER="http://$(netns_ip ctl):7070" ICOS_TOKEN
useradd -m "$JOB_USER"
ICOS_TOKEN=$(cat /var/lib/icos/admin.token)
netns_cli user
ICOS_TOKEN=$(icos token create --role user --user "$JOB_USER")
share_with_test_users  # the job runs where it was submitted from
cat > "$E2E_DIR/hello.yaml" <<YAML
name: hello-from-the-package
tasks:
  - command: ["bash", "-c", "echo hello from \$(hostname)"]
    resources: {cpu: 100m, memory: 16Mi}
YAML
id=$(submit "$E2E_DIR/hello.yaml")
icos wait "$id" --timeout 30 || fail "job $id did not succeed: $(icos job "$id")"
icos logs "$id" | grep -q "hello from n1" || fail "job $id's log: $(icos logs "$id" 2>&1)"

# systemctl restart icos-agent, KillMode=process: SIGTERM to the agent only.
cat > "$E2E_DIR/long.yaml" <<YAML
name: outlives-its-agent
tasks:
  - command: ["bash", "-c", "sleep 8; echo still here"]
    resources: {cpu: 100m, memory: 16Mi}
YAML
id2=$(submit "$E2E_DIR/long.yaml")
running() { [ "$(icos job "$1" -o json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')" = Running ]; }
wait_until 20 running "$id2" || fail "job $id2 did not start"
kill -TERM "$AGENT"
wait_until 10 bash -c "! kill -0 $AGENT 2>/dev/null" || fail "the agent did not stop on SIGTERM"
pgrep -f "sleep 8; echo still here" >/dev/null || fail "stopping the agent ended its task"
unit_start n1 icos-agent
icos wait "$id2" --timeout 30 || fail "job $id2 did not finish under the restarted agent: $(icos job "$id2")"
icos logs "$id2" | grep -q "still here" || fail "job $id2's log after the agent's restart: $(icos logs "$id2" 2>&1)"
kill -TERM "$SERVER"
wait_until 30 bash -c "! kill -0 $SERVER 2>/dev/null" || fail "the server did not stop on SIGTERM within TimeoutStopSec"

# Remove it: every file of the package goes, and on purge its conffiles.
kill -TERM "$LAST_PID" 2>/dev/null || true
wait_until 10 bash -c "! kill -0 $LAST_PID 2>/dev/null" || fail "the restarted agent did not stop on SIGTERM"
apt-get purge -y -q -o DPkg::Lock::Timeout=120 icos > "$E2E_DIR/purge.log" 2>&1 || fail "apt purge failed: $(tail "$E2E_DIR/purge.log")"
INSTALLED=""
for f in $contents; do [ ! -e "$f" ] || fail "$f is still there after purge"; done
[ ! -e /var/lib/icos-agent ] || fail "purge left /var/lib/icos-agent"
grep -q "kept /var/lib/icos" "$E2E_DIR/purge.log" || fail "purge did not say it kept the controller's state"
echo "PASS deb_package ($(basename "$deb") installed, ran a server, an agent and two jobs, purged)"
