# shellcheck shell=bash
# Helpers shared by ceph.sh and swift.sh. Sourced, not executed.

log() { printf '[%s] %s\n' "${LOG_TAG:-s3}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Seconds since the epoch with milliseconds, for timing messages.
now_ms() { date +%s%3N; }

# Run a command as root (directly when we are root, else through sudo).
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root (or sudo) to run: $*"
  fi
}

# apt_install_missing "<binary> ..." -- "<package> ..."
# Installs the packages only when one of the binaries is not on PATH.
apt_install_missing() {
  local bins=() pkgs=() missing=() b
  while [ $# -gt 0 ] && [ "$1" != -- ]; do bins+=("$1"); shift; done
  shift || true
  pkgs=("$@")
  for b in "${bins[@]}"; do
    command -v "$b" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$b" >/dev/null 2>&1 || missing+=("$b")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "already installed (${bins[*]})"
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get; install ${pkgs[*]} by hand"
  log "installing ${pkgs[*]} (missing: ${missing[*]})"
  local t0; t0=$(now_ms)
  export DEBIAN_FRONTEND=noninteractive
  if ! as_root apt-get install -y --no-install-recommends "${pkgs[@]}"; then
    log "apt-get install failed; running apt-get update and retrying"
    as_root apt-get update
    as_root apt-get install -y --no-install-recommends "${pkgs[@]}"
  fi
  log "installed in $(( ($(now_ms) - t0) ))ms"
}

# take_lock FILE: serialise start/stop of one instance between concurrent
# callers (two test runs starting the servers at once). The lock lives beside
# the state dir because start wipes the state dir.
take_lock() {
  command -v flock >/dev/null 2>&1 || return 0
  exec 9>"$1"
  flock -w 120 9 || die "timed out waiting for $1"
}

# true when something listens on 127.0.0.1:$1
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A short description of who listens on port $1 (best effort).
port_owner() {
  if command -v ss >/dev/null 2>&1; then
    ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -n1
  fi
}

# Full command line of pid $1 with NULs turned into spaces (empty if gone).
pid_cmdline() { tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" || true; }

# find_own_pids NEEDLE REGEX: pids whose command line contains NEEDLE (a path
# inside our state dir) and matches REGEX (the daemon names we start). Only
# processes started by these scripts carry our state dir in their arguments.
find_own_pids() {
  local needle=$1 re=$2 d pid cmd
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [ "$pid" = "$$" ] && continue
    [ "$pid" = "${BASHPID:-$$}" ] && continue
    cmd=$(pid_cmdline "$pid")
    [ -n "$cmd" ] || continue
    [[ $cmd == *"$needle"* ]] || continue
    [[ $cmd =~ $re ]] || continue
    echo "$pid"
  done
}

# true when pid $1 exists and is not a zombie
is_alive() {
  local st
  kill -0 "$1" 2>/dev/null || return 1
  st=$(sed -n 's/^[0-9]* ([^)]*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null || true)
  [ "$st" != Z ]
}

# kill_and_wait SECONDS PID...: SIGTERM, wait up to SECONDS, then SIGKILL and
# wait (up to 5 s) until they are gone. SECONDS=0 means SIGKILL at once.
kill_and_wait() {
  local grace=$1; shift
  [ $# -gt 0 ] || return 0
  local i p alive
  if [ "$grace" -gt 0 ]; then
    kill "$@" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
      alive=0
      for p in "$@"; do is_alive "$p" && alive=1; done
      [ $alive = 0 ] && return 0
      sleep 0.1
    done
  fi
  kill -9 "$@" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    alive=0
    for p in "$@"; do is_alive "$p" && alive=1; done
    [ $alive = 0 ] && return 0
    sleep 0.1
  done
  log "warning: still alive after SIGKILL: $*"
}

# All pids listed in the pid files given, that are still alive.
alive_pids_from() {
  local f p
  for f in "$@"; do
    [ -f "$f" ] || continue
    p=$(cat "$f" 2>/dev/null || true)
    [ -n "$p" ] && is_alive "$p" && echo "$p"
  done
  return 0
}

# prepare_state_dir DIR MARKER: make DIR an empty directory we own. Refuses to
# wipe a non-empty directory that does not carry our marker file, so a wrong
# *_STATE_DIR can never delete somebody else's files.
prepare_state_dir() {
  local dir=$1 marker=$2
  case "$dir" in
    ''|/|/tmp|/tmp/|/root|/home|/home/*/|"$HOME"|"$HOME"/) die "refusing to use '$dir' as state dir" ;;
  esac
  if [ -d "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ] && [ ! -f "$dir/$marker" ]; then
    die "$dir exists, is not empty and was not made by this script; choose another state dir"
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  : > "$dir/$marker"
}

# Percent-encode $1 (everything except unreserved characters).
urlencode() {
  local s=$1 out='' c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case "$c" in
      [a-zA-Z0-9._~-]) out+=$c ;;
      *) out+=$(printf '%%%02X' "'$c") ;;
    esac
  done
  printf '%s' "$out"
}

# s3_signed_get URL KEY SECRET: HTTP status of a SigV4-signed GET (000 when
# nothing answers). The credentials go into the URL, percent-encoded, because
# Swift access keys contain ':' which curl's --user would split on.
s3_signed_get() {
  local url=$1 key secret
  key=$(urlencode "$2"); secret=$(urlencode "$3")
  # curl does not add x-amz-content-sha256 itself, and S3 wants it signed
  curl -s -o /dev/null -w '%{http_code}' --max-time "${S3_CHECK_TIMEOUT:-5}" \
    -H 'x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' \
    --aws-sigv4 "aws:amz:us-east-1:s3" "http://${key}:${secret}@${url#http://}" 2>/dev/null || true
}
