#!/usr/bin/env bash
# Both S3 test servers (Ceph RADOS Gateway and Swift + s3api) at once.
#
#   scripts/s3/all.sh up       install (if missing) and start both, then print the env vars
#   scripts/s3/all.sh down     stop both
#   scripts/s3/all.sh status   exit 0 when both answer signed S3 requests
#   scripts/s3/all.sh env [--export]
#                              print the env vars the tests read, as KEY=value lines
#                              (with --export: as "export KEY=value", for eval)
#   scripts/s3/all.sh cors BUCKET ORIGIN...
#                              create BUCKET on both (when missing) and set its CORS rule for
#                              browser direct uploads from ORIGIN (see cors.mjs)
#
# Progress goes to stderr, the env vars to stdout, so
#   scripts/s3/all.sh up > .env.s3        or   eval "$(scripts/s3/all.sh env --export)"
#   scripts/s3/all.sh env >> "$GITHUB_ENV"   (GitHub Actions)
# all work. Ports and credentials: see README.md and the settings in ceph.sh / swift.sh.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

print_env() {
  local prefix=''
  [ "${1:-}" = --export ] && prefix='export '
  { "$HERE/ceph.sh" env; "$HERE/swift.sh" env; } | sed "s/^/$prefix/"
}

case "${1:-}" in
  up)
    "$HERE/ceph.sh" install
    "$HERE/swift.sh" install
    "$HERE/ceph.sh" start
    "$HERE/swift.sh" start
    print_env "${2:-}"
    ;;
  down)
    rc=0
    "$HERE/ceph.sh" stop || rc=1
    "$HERE/swift.sh" stop || rc=1
    exit $rc
    ;;
  status)
    rc=0
    "$HERE/ceph.sh" status || rc=1
    "$HERE/swift.sh" status || rc=1
    exit $rc
    ;;
  env) print_env "${2:-}" ;;
  cors)
    shift
    node "$HERE/cors.mjs" "$@"
    ;;
  *) echo "usage: $0 up|down|status|env [--export]|cors BUCKET ORIGIN..." >&2; exit 2 ;;
esac
