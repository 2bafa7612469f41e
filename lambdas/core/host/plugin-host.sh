#!/bin/sh
# plugin-host.sh: every step the installer performs on a workspace host.
#
# The same bytes run for every transport (local sh, EC2 Instance Connect over SSH, SSM Run
# Command). Usage:  plugin-host.sh <op> <plugins-root> [args...]
#
# Layout under <plugins-root> (docs/host-layout.md has the whole model):
#   <name>/                      live copy, owned by the agent; .complete inside once marked
#   .staging/<name>.<stamp>      extracted, verified and flushed, ready to exchange with live;
#                                after the exchange it holds the displaced version until
#                                SnapshotLive files it under .previous
#   .staging/<name>.<stamp>.partial, .staging/<name>.<stamp>.work   in-progress extraction (the
#                                work directory also holds a running health check's output, in
#                                check.<pid>/)
#   .previous/<name>.<stamp>     what <stamp> displaced (install/uninstall/rollback)
#   .failed/<name>.<stamp>       a rolled-back install, kept as evidence
#   .locks/<name>                lease: stamp, owner, pid, host, expiry
#   .meta/<name>.<stamp>         what operation <stamp> did (the identity of the directory it
#                                staged, the snapshot it restored from)
#   .meta/<name>@<dev>-<ino>     the marker of one plugin directory, keyed by its inode
#
# Who controls what: the agent (uid 1000) owns every plugin directory (live, snapshots, failed)
# and may plant a symlink, a fifo or a wrong-typed entry in any of them at any moment. This
# script never opens, reads, writes, chowns or chmods a path inside one; it only renames the
# directories themselves (entries of root-owned directories) and removes whole trees with
# rm -rf, which does not follow links. Product metadata lives in .meta/; the root and the
# management directories are owned by the user running this script and writable by nobody else.
# The one file written into live, .complete, is renamed in from a root-only temp file.
#
# Every operation is idempotent keyed by the stamp (Step Functions retries a step whose Lambda
# died after the host did the work), checks every exit status, and prints exactly one JSON
# result line last on stdout. Distinct exit codes map to typed errors in host-result.ts.
# Every argument is validated by the TypeScript caller and validated again here.
# Processes are few on purpose: each fork costs milliseconds, and small operations should cost
# about what `sh -c true` costs. File reads use the shell's own `read`.

# Validators are also called indirectly, through need():
# shellcheck disable=SC2317
set -u
umask 022
export LC_ALL=C

EX_USAGE=10
EX_BUSY=11
EX_LOCK_LOST=12
EX_CHECKSUM=13
EX_EXTRACT=14
EX_STAGING_MISSING=15
EX_LIVE_PRESENT=16
EX_NOT_INSTALLED=17
EX_NOTHING_TO_RESTORE=18
EX_LIVE_NOT_OURS=19
EX_FETCH=20
EX_IO=21
EX_NO_DOWNLOADER=22
EX_DISK_FULL=23
EX_PERMISSION=24
EX_TOOL_MISSING=25
EX_UNSAFE_LAYOUT=26
EX_ROLLBACK=27
EX_HEALTH=28

OP=${1:-}

# --- output -----------------------------------------------------------------------------------

json_str() {
  # Escape for a JSON string (only called on failure paths: it forks).
  printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | tr -d '\000-\037'
}

fail() {
  # fail <exit-code> <CodeName> <message>
  printf '{"ok":false,"op":"%s","code":"%s","message":"%s"}\n' "$(json_str "$OP")" "$2" "$(json_str "$3")"
  exit "$1"
}

ok() {
  # ok <extra-json-members>   e.g. ok '"result":"moved"'
  if [ -n "${1:-}" ]; then
    printf '{"ok":true,"op":"%s",%s}\n' "$OP" "$1"
  else
    printf '{"ok":true,"op":"%s"}\n' "$OP"
  fi
  exit 0
}

# --- validation -------------------------------------------------------------------------------

valid_name() {
  case $1 in
    '' | . | .. | [!a-z0-9]* | *[!a-z0-9._-]*) return 1 ;;
  esac
  [ "${#1}" -le 128 ]
}

valid_stamp() {
  case $1 in
    [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z-[a-z0-9][a-z0-9][a-z0-9][a-z0-9]) return 0 ;;
  esac
  return 1
}

valid_root() {
  case $1 in
    /*) ;;
    *) return 1 ;;
  esac
  case $1 in
    */../* | */.. | */./* | */. | *[!A-Za-z0-9._/@+\ -]*) return 1 ;;
  esac
  [ "$1" != / ]
}

valid_sha() {
  case $1 in
    *[!0-9a-f]*) return 1 ;;
  esac
  [ "${#1}" -eq 64 ]
}

valid_uint() {
  case $1 in
    '' | *[!0-9]*) return 1 ;;
  esac
  [ "${#1}" -le 12 ]
}

valid_token() {
  # owners, versions, execution names: no quoting trouble in JSON or paths
  case $1 in
    '' | *[!A-Za-z0-9._:@+-]*) return 1 ;;
  esac
  [ "${#1}" -le 128 ]
}

valid_time() {
  case $1 in
    [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]Z) return 0 ;;
    [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z) return 0 ;;
  esac
  return 1
}

valid_cutoff() {
  case $1 in
    [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z) return 0 ;;
  esac
  return 1
}

valid_owner_spec() {
  [ "$1" = - ] && return 0
  case $1 in
    *:*) ;;
    *) return 1 ;;
  esac
  valid_uint "${1%%:*}" && valid_uint "${1#*:}"
}

valid_url() {
  case $1 in
    https://* | http://*) ;;
    *) return 1 ;;
  esac
  case $1 in
    *[!A-Za-z0-9._~:/?#@!\$\&\'\(\)*+,\;=%-]*) return 1 ;;
  esac
  [ "${#1}" -le 8192 ]
}

valid_ino() {
  # <dev>-<ino>, as stat -c %d-%i and find -printf %D-%i print it
  case $1 in
    '' | -* | *- | *[!0-9-]* | *-*-*) return 1 ;;
  esac
  return 0
}

# valid_check_timeout <seconds>: a health check's timeout, 1-300 (plugin.yaml healthcheck.timeoutSeconds).
valid_check_timeout() {
  valid_uint "$1" && [ "$1" -ge 1 ] && [ "$1" -le 300 ]
}

# valid_check_command <text>: a health check's sh command: 1-2048 bytes, no control characters
# but tab and newline. It is only ever an argument of the unprivileged `sh -c` that runs the
# check, never evaluated by this script.
valid_check_command() {
  [ -n "$1" ] && [ "${#1}" -le 2048 ] || return 1
  vc_bad=$(printf '%s' "$1" | tr -d '\011\012' | tr -d -c '\000-\037\177' | wc -c)
  [ "${vc_bad##* }" = 0 ]
}

# valid_entry <name> <stamp>: a `<name>.<stamp>` entry under .staging/.previous/.failed.
valid_entry() {
  valid_name "$1" && valid_stamp "$2"
}

need() {
  # need <validator> <value> <what>
  "$1" "$2" || fail "$EX_USAGE" InvalidInput "invalid $3"
}

need_tools() {
  # need_tools <tool>...: a missing tool is named, not discovered halfway through an operation.
  for nt_tool in "$@"; do
    command -v "$nt_tool" >/dev/null 2>&1 && continue
    case $nt_tool in
      flock | setpriv | setsid | unshare) nt_pkg=util-linux ;;
      tar) nt_pkg=tar ;;
      gzip) nt_pkg=gzip ;;
      *) nt_pkg=coreutils ;;
    esac
    fail "$EX_TOOL_MISSING" HostToolMissing "$nt_tool is missing on this host (install the $nt_pkg package)"
  done
}

# --- failure classes ----------------------------------------------------------------------------

# df_avail <-k|-i> <dir>: the free 1 KiB blocks (or inodes) of the filesystem holding <dir>.
df_avail() {
  df -P"${1#-}" -- "$2" 2>/dev/null | { read -r _ && read -r _ _ _ a _ && printf '%s' "$a"; }
}

# io_fail <dir> <message>: a file operation under <dir> failed. Says which fault an operator
# meets (full disk, read-only or unwritable filesystem) rather than a generic I/O error. Only
# ever runs on a failure path, so its forks cost nothing on the way to success.
io_fail() {
  if_dir=$1
  while [ ! -d "$if_dir" ] && [ "$if_dir" != / ]; do if_dir=${if_dir%/*}; [ -n "$if_dir" ] || if_dir=/; done
  if_free=$(df_avail -k "$if_dir")
  if_inodes=$(df_avail -i "$if_dir")
  if valid_uint "${if_free:-x}" && [ "$if_free" -lt 256 ]; then
    fail "$EX_DISK_FULL" HostDiskFull "$2: no space left on the host's disk under $if_dir ($((if_free * 1024)) bytes free)"
  fi
  if [ "${if_inodes:-x}" = 0 ]; then
    fail "$EX_DISK_FULL" HostDiskFull "$2: no free inodes left on the host's filesystem under $if_dir"
  fi
  if [ ! -w "$if_dir" ]; then
    fail "$EX_PERMISSION" HostPermissionDenied "$2: $if_dir is not writable (read-only filesystem or permissions)"
  fi
  fail "$EX_IO" HostIoError "$2"
}

# --- common state -----------------------------------------------------------------------------

setup_paths() {
  ROOT=$1
  NAME=$2
  STAMP=$3
  need valid_root "$ROOT" "plugins root"
  need valid_name "$NAME" "plugin name"
  need valid_stamp "$STAMP" "stamp"
  LIVE="$ROOT/$NAME"
  STG="$ROOT/.staging/$NAME.$STAMP"
  PARTIAL="$STG.partial"
  WORK="$STG.work"
  PREV="$ROOT/.previous/$NAME.$STAMP"
  FAILED="$ROOT/.failed/$NAME.$STAMP"
  LOCK="$ROOT/.locks/$NAME"
  STAGE_LOCK="$ROOT/.locks/.stage.$NAME.$STAMP"
  META="$ROOT/.meta/$NAME.$STAMP"
}

# mgmt_dir <path>: a management directory (or the root) that exists as a real directory owned by
# us. Created 0700 (the root 0755) when missing; a symlink or a directory someone else owns is
# refused: whoever controls it could redirect what root does there.
mgmt_dir() {
  if [ -L "$1" ]; then
    fail "$EX_UNSAFE_LAYOUT" UnsafeHostLayout "$1 is a symbolic link; remove it so the installer can create a real directory there"
  fi
  if [ ! -d "$1" ]; then
    if [ -e "$1" ]; then
      fail "$EX_UNSAFE_LAYOUT" UnsafeHostLayout "$1 exists and is not a directory; move it away"
    fi
    if [ "$1" = "$ROOT" ]; then
      mkdir -p -- "$1" 2>/dev/null || [ -d "$1" ] || io_fail "${1%/*}" "cannot create $1"
    else
      mkdir -m 0700 -- "$1" 2>/dev/null || [ -d "$1" ] || io_fail "${1%/*}" "cannot create $1"
    fi
    [ -L "$1" ] && fail "$EX_UNSAFE_LAYOUT" UnsafeHostLayout "$1 became a symbolic link while it was created"
  fi
  [ -O "$1" ] || fail "$EX_UNSAFE_LAYOUT" UnsafeHostLayout "$1 is owned by another user; it must be owned by the installer's user ($(id -un 2>/dev/null)) and writable only by it: chown it (and remove anything planted in it)"
}

# check_root: the plugins root and management directories are ours and writable by nobody else.
# Run by lock (first step of every workflow) and sweep; fixes modes it can fix and refuses
# what it cannot (a directory owned by someone else may have been prepared as a trap).
check_root() {
  if [ -d "$ROOT" ] && [ ! -L "$ROOT" ] && [ ! -O "$ROOT" ] && [ "$(id -u)" = 0 ]; then
    # A plugins root the agent owns (an older layout): whoever owns it can rename live under
    # root's feet. Take it over; what it holds is judged entry by entry (by inode) from now on.
    if ! chown -h 0:0 -- "$ROOT" || ! chmod 0755 -- "$ROOT"; then
      io_fail "$ROOT" "cannot take ownership of the plugins root"
    fi
  fi
  mgmt_dir "$ROOT"
  for cr_d in .staging .previous .failed .locks .meta; do mgmt_dir "$ROOT/$cr_d"; done
  cr_loose=$(find "$ROOT" "$ROOT/.staging" "$ROOT/.previous" "$ROOT/.failed" "$ROOT/.locks" "$ROOT/.meta" \
    -maxdepth 0 -perm /022 -print 2>/dev/null)
  if [ -n "$cr_loose" ]; then
    chmod go-w -- "$ROOT" "$ROOT/.staging" "$ROOT/.previous" "$ROOT/.failed" "$ROOT/.locks" "$ROOT/.meta" ||
      io_fail "$ROOT" "cannot make the plugins root writable by its owner only"
  fi
}

# check_layout: the read-only form of check_root, for list and a dry-run sweep: refuse (never fix)
# a root or management directory that is a link, not a directory, or someone else's, so nothing
# is read through a directory the agent could have replaced.
check_layout() {
  for cl_d in "$ROOT" "$ROOT/.staging" "$ROOT/.previous" "$ROOT/.failed" "$ROOT/.locks" "$ROOT/.meta"; do
    if [ -L "$cl_d" ]; then
      fail "$EX_UNSAFE_LAYOUT" UnsafeHostLayout "$cl_d is a symbolic link; remove it (the next install recreates a real directory)"
    fi
    [ -e "$cl_d" ] || continue
    [ -d "$cl_d" ] || fail "$EX_UNSAFE_LAYOUT" UnsafeHostLayout "$cl_d exists and is not a directory; move it away"
    [ -O "$cl_d" ] || fail "$EX_UNSAFE_LAYOUT" UnsafeHostLayout "$cl_d is owned by another user; it must be owned by the installer's user: chown it (the next install does so for the plugins root)"
  done
}

# The other operations only confirm the management directories they touch (no forks).
ensure_dirs() {
  mgmt_dir "$ROOT"
  for ed_d in "$@"; do mgmt_dir "$ROOT/$ed_d"; done
}

# kv <file> <key>: KV = the key's first value in a root-owned key=value file ("" if none).
kv() {
  KV=""
  [ -f "$1" ] || return 1
  while IFS= read -r kv_line || [ -n "$kv_line" ]; do
    case $kv_line in
      "$2="*)
        KV=${kv_line#"$2"=}
        return 0
        ;;
    esac
  done <"$1" 2>/dev/null
  return 1
}

# inos <path>...: INO_1, INO_2, ... = "<dev>-<ino>" of each path without following a link
# ("" for a missing path). One stat(1) for all of them.
# shellcheck disable=SC2034 # io_v is read through eval
inos() {
  io_n=0
  io_out=$(stat -c '%n|%d-%i' -- "$@" 2>/dev/null)
  for io_p in "$@"; do
    io_n=$((io_n + 1))
    io_v=""
    while IFS= read -r io_line; do
      case $io_line in "$io_p|"*) io_v=${io_line#"$io_p|"} ;; esac
    done <<STATS
$io_out
STATS
    eval "INO_$io_n=\$io_v"
  done
}

# staged_ino: STAGED = identity of the directory this stamp staged (or restored), "" if none.
staged_ino() {
  kv "$META" staged
  STAGED=$KV
}

# live_is_ours: live is the directory this stamp staged (after inos "$LIVE" ...).
live_is_ours() {
  [ -n "$STAGED" ] && [ "$INO_1" = "$STAGED" ]
}

now_epoch() {
  date +%s
}

HOSTNAME_=""
host_name() {
  [ -n "$HOSTNAME_" ] && return 0
  IFS= read -r HOSTNAME_ </proc/sys/kernel/hostname 2>/dev/null || HOSTNAME_=$(hostname)
}

# --- the lease ------------------------------------------------------------------------------------

with_mutex() {
  # Serialises every lease decision and every change to live on this host: a step checks that
  # it still holds the lease and acts inside the same critical section (fencing).
  mgmt_dir "$ROOT/.locks"
  need_tools flock
  # `command`: a failed redirection of a special builtin would end the shell without a word.
  command exec 9>>"$ROOT/.locks/.mutex" || io_fail "$ROOT/.locks" "cannot open the lock mutex"
  flock -w 20 9 || fail "$EX_BUSY" LockBusy "timed out after 20s waiting for the host's lock mutex (another step holds it)"
}

release_mutex() {
  exec 9>&-
}

# read_lease <file>: L_STAMP L_OWNER L_PID L_HOST L_EXPIRES from a lease file (no forks).
read_lease() {
  L_STAMP="" L_OWNER="" L_PID="" L_HOST="" L_EXPIRES=""
  [ -f "$1" ] || return 1
  while IFS= read -r rl_line || [ -n "$rl_line" ]; do
    case $rl_line in
      stamp=*) [ -n "$L_STAMP" ] || L_STAMP=${rl_line#stamp=} ;;
      owner=*) [ -n "$L_OWNER" ] || L_OWNER=${rl_line#owner=} ;;
      pid=*) [ -n "$L_PID" ] || L_PID=${rl_line#pid=} ;;
      host=*) [ -n "$L_HOST" ] || L_HOST=${rl_line#host=} ;;
      expires=*) [ -n "$L_EXPIRES" ] || L_EXPIRES=${rl_line#expires=} ;;
    esac
  done <"$1" 2>/dev/null
  return 0
}

require_lock() {
  # Fencing: under the mutex, a step acts only while its operation holds the plugin's lease.
  with_mutex
  read_lease "$LOCK"
  [ "$L_STAMP" = "$STAMP" ] || fail "$EX_LOCK_LOST" LockLost "lock on $NAME is not held by $STAMP (holder: ${L_STAMP:-none})"
}

owner_alive() {
  # A lock is provably abandoned when it was taken on this host by a process that is gone.
  host_name
  if [ -n "$L_PID" ] && [ "$L_PID" != 0 ] && [ "$L_HOST" = "$HOSTNAME_" ]; then
    [ -d "/proc/$L_PID" ] && return 0
    kill -0 "$L_PID" 2>/dev/null && return 0
    return 1
  fi
  return 0
}

# --- renames ------------------------------------------------------------------------------------

# flush <path>...: fsync each directory or file (their data and entries reach the disk).
flush() {
  sync -- "$@" 2>/dev/null || io_fail "$1" "cannot flush $*"
}

# move <from> <to> <what>: one rename(2); never into a directory that happens to exist at <to>.
move() {
  mv -T -- "$1" "$2" 2>/dev/null || io_fail "${2%/*}" "cannot move $3"
}

# exchange_method: EXCH = how this host exchanges two directories in one system call, probed
# once and remembered in .meta/exchange. In order: coreutils mv --exchange (9.5+), util-linux
# exch (2.40+), perl's syscall() (x86_64, aarch64), python3's ctypes; none = two renames.
exchange_method() {
  EXCH=""
  kv "$ROOT/.meta/exchange" method && EXCH=$KV
  case $EXCH in
    mv-exchange | exch | perl-renameat2:* | python3-renameat2 | two-renames) return 0 ;;
  esac
  if mv --help 2>/dev/null | grep -q -e '--exchange'; then
    EXCH=mv-exchange
  elif command -v exch >/dev/null 2>&1; then
    EXCH=exch
  else
    case $(uname -m 2>/dev/null) in
      x86_64) em_nr=316 ;;
      aarch64 | arm64) em_nr=276 ;;
      *) em_nr="" ;;
    esac
    if [ -n "$em_nr" ] && command -v perl >/dev/null 2>&1; then
      EXCH=perl-renameat2:$em_nr
    elif python3_bin; then
      EXCH=python3-renameat2
    else
      EXCH=two-renames
    fi
  fi
  printf 'method=%s\n' "$EXCH" >"$ROOT/.meta/exchange" 2>/dev/null || true
}

python3_bin() {
  # The distribution's python3 (not a per-user shim earlier on PATH).
  PY=/usr/bin/python3
  [ -x "$PY" ] && return 0
  PY=$(command -v python3 2>/dev/null) && [ -n "$PY" ]
}

# exchange <a> <b>: swap two directory entries atomically (renameat2 RENAME_EXCHANGE); neither
# is ever absent. Returns 3 when this host cannot exchange (old kernel, filesystem without
# support, no tool): the caller then falls back to two renames and says so.
exchange() {
  exchange_method
  case $EXCH in
    mv-exchange) mv --exchange -T -- "$1" "$2" ;;
    exch) exch -- "$1" "$2" ;;
    perl-renameat2:*)
      # shellcheck disable=SC2016 # perl code, expanded by perl
      perl -e 'exit 0 if syscall($ARGV[0] + 0, -100, $ARGV[1], -100, $ARGV[2], 2) == 0;
        my $e = $! + 0; print STDERR "renameat2: $!\n"; exit(($e == 22 || $e == 38 || $e == 95) ? 3 : 1)' \
        "${EXCH#perl-renameat2:}" "$1" "$2"
      ;;
    python3-renameat2)
      python3_bin || return 3
      "$PY" -I -S -c 'import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
f = getattr(libc, "renameat2", None)
if f is None: sys.exit(3)
if f(-100, os.fsencode(sys.argv[1]), -100, os.fsencode(sys.argv[2]), 2) == 0: sys.exit(0)
e = ctypes.get_errno()
sys.stderr.write("renameat2: " + os.strerror(e) + "\n")
sys.exit(3 if e in (22, 38, 95) else 1)' "$1" "$2"
      ;;
    *) return 3 ;;
  esac
  ex_status=$?
  if [ "$ex_status" != 0 ] && [ "$ex_status" != 3 ]; then
    # A failure of the tool itself (not of the rename) means the probe was wrong: forget it.
    case $EXCH in mv-exchange | exch) ex_status=3 ;; esac
    # perl or python3 gone since the probe (not found / not executable): probe again next time.
    case $ex_status in 126 | 127) ex_status=3 ;; esac
  fi
  if [ "$ex_status" = 3 ]; then
    printf 'method=two-renames\n' >"$ROOT/.meta/exchange" 2>/dev/null || true
  fi
  return "$ex_status"
}

# --- operations -------------------------------------------------------------------------------

op_lock() {
  setup_paths "${1:-}" "${2:-}" "${3:-}"
  owner=${4:-}
  pid=${5:-}
  ttl=${6:-}
  need valid_token "$owner" "lock owner"
  need valid_uint "$pid" "owner pid"
  need valid_uint "$ttl" "lease seconds"
  check_root
  with_mutex
  now=$(now_epoch)
  taken=acquired
  if read_lease "$LOCK"; then
    if [ "$L_STAMP" = "$STAMP" ]; then
      # A retry of our own acquisition: already done, nothing to rewrite.
      ok "\"result\":\"held\",\"expires\":${L_EXPIRES:-0}"
    elif ! valid_uint "$L_EXPIRES" || [ "$L_EXPIRES" -le "$now" ]; then
      taken=took-over-expired
    elif ! owner_alive; then
      taken=took-over-dead-owner
    else
      fail "$EX_BUSY" LockBusy "plugin $NAME is busy: locked by $L_OWNER (stamp $L_STAMP) for another $((L_EXPIRES - now))s"
    fi
  fi
  host_name
  tmp="$ROOT/.locks/.$NAME.$STAMP.tmp"
  printf 'stamp=%s\nowner=%s\npid=%s\nhost=%s\nexpires=%s\n' "$STAMP" "$owner" "$pid" "$HOSTNAME_" "$((now + ttl))" >"$tmp" 2>/dev/null ||
    { rm -f -- "$tmp"; io_fail "$ROOT/.locks" "cannot write the lock file of $NAME"; }
  mv -f -T -- "$tmp" "$LOCK" 2>/dev/null || { rm -f -- "$tmp"; io_fail "$ROOT/.locks" "cannot install the lock file of $NAME"; }
  ok "\"result\":\"$taken\",\"expires\":$((now + ttl))"
}

op_unlock() {
  setup_paths "${1:-}" "${2:-}" "${3:-}"
  [ -d "$ROOT/.locks" ] || ok '"result":"not-held"'
  with_mutex
  read_lease "$LOCK"
  if [ "$L_STAMP" = "$STAMP" ]; then
    rm -f -- "$LOCK" 2>/dev/null || io_fail "$ROOT/.locks" "cannot remove the lock of $NAME"
    ok '"result":"released"'
  fi
  ok '"result":"not-held"'
}

fetch_input() {
  # The tarball arrives on stdin (local, EIC) or from a short-lived URL (SSM).
  if [ -z "$URL" ]; then
    cat
  elif command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 600 --retry 2 -- "$URL"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -T 600 -O - -- "$URL"
  else
    return 127
  fi
}

# stage_failed <exit> <code> <message>: a failed stage leaves nothing behind (the retry, or the
# rollback, starts from a clean slate) and says what failed.
stage_failed() {
  rm -rf -- "$PARTIAL" "$WORK" 2>/dev/null
  # No record may name the discarded directory: its inode number is free for reuse, and a
  # record naming it would make a later directory with that number "ours".
  rm -f -- "$STAGE_LOCK" "$META" 2>/dev/null
  fail "$1" "$2" "$3"
}

# stage_io_fail <dir> <message>: as stage_failed, for a failure io_fail classifies (full disk,
# read-only, other I/O): nothing of this stage is left, not even its stage lock or record.
stage_io_fail() {
  rm -rf -- "$PARTIAL" "$WORK" 2>/dev/null
  rm -f -- "$STAGE_LOCK" "$META" 2>/dev/null
  io_fail "$1" "$2"
}

stage_disk_full() {
  # How much the tree needed: what the caller said, or at least what was written before the
  # disk filled up. Free space is measured once the partial tree is gone.
  sdf_need=$BYTES
  if [ "$sdf_need" = 0 ]; then
    sdf_kb=$(du -sk -- "$PARTIAL" 2>/dev/null)
    sdf_kb=${sdf_kb%%[!0-9]*}
    sdf_need="more than $(( ${sdf_kb:-0} * 1024 ))"
  fi
  rm -rf -- "$PARTIAL" "$WORK" 2>/dev/null
  sdf_free=$(df_avail -k "$ROOT/.staging")
  stage_failed "$EX_DISK_FULL" HostDiskFull "no space left on the host to stage $NAME: it needs $sdf_need bytes unpacked, $((${sdf_free:-0} * 1024)) bytes are free under $ROOT"
}

op_stage() {
  setup_paths "${1:-}" "${2:-}" "${3:-}"
  sha=${4:-}
  owner_spec=${5:-}
  strip=${6:-}
  BYTES=${7:-}
  URL=${8:-}
  need valid_sha "$sha" "sha256"
  need valid_owner_spec "$owner_spec" "owner (uid:gid or -)"
  case $strip in 0 | 1) ;; *) fail "$EX_USAGE" InvalidInput "invalid strip-components" ;; esac
  need valid_uint "$BYTES" "unpacked size"
  [ -z "$URL" ] || need valid_url "$URL" "url"
  need_tools flock tar gzip sha256sum tee find stat sync mkfifo
  if [ -n "$URL" ] && ! command -v curl >/dev/null 2>&1 && ! command -v wget >/dev/null 2>&1; then
    fail "$EX_NO_DOWNLOADER" HostToolMissing "neither curl nor wget is installed on this host (install the curl package)"
  fi
  ensure_dirs .staging .locks .meta
  require_lock
  staged_ino
  inos "$LIVE" "$STG"
  if live_is_ours || { [ -n "$STAGED" ] && [ "$INO_2" = "$STAGED" ]; }; then
    # Done before (an attempt killed after its last rename may have left its work dir and lock).
    rm -rf -- "$WORK" 2>/dev/null
    rm -f -- "$STAGE_LOCK" 2>/dev/null
    if live_is_ours; then ok '"result":"already-live"'; fi
    ok '"result":"already-staged"'
  fi
  release_mutex

  # One stage per stamp at a time: a retry after a dropped connection waits here until the
  # earlier attempt (still running on the host until its stdin closes) has cleaned up, so that
  # cleanup cannot delete the retry's files.
  command exec 8>>"$STAGE_LOCK" || io_fail "$ROOT/.locks" "cannot open $STAGE_LOCK"
  flock -w 60 8 || fail "$EX_BUSY" LockBusy "an earlier attempt to stage $NAME at $STAMP is still running on the host"
  # That earlier attempt may have finished the job while this one waited: then there is nothing
  # to do (extracting again would overwrite its record and fail to rename onto its staging).
  staged_ino
  inos "$STG"
  if [ -n "$STAGED" ] && [ "$INO_1" = "$STAGED" ]; then
    rm -f -- "$STAGE_LOCK"
    ok '"result":"already-staged"'
  fi
  rm -rf -- "$PARTIAL" "$WORK" 2>/dev/null || io_fail "$ROOT/.staging" "cannot clear an earlier partial staging"
  # Enough room for the unpacked tree (plus 1 MiB of slack) before writing a byte.
  st_free=$(df_avail -k "$ROOT/.staging")
  if valid_uint "${st_free:-x}" && [ $((st_free * 1024)) -lt $((BYTES + 1048576)) ]; then stage_disk_full; fi
  mkdir -m 0700 -- "$PARTIAL" "$WORK" 2>/dev/null || { rm -rf -- "$PARTIAL" "$WORK"; io_fail "$ROOT/.staging" "cannot create the staging directories of $NAME"; }
  mkfifo -m 0600 -- "$WORK/fifo" 2>/dev/null || { rm -rf -- "$PARTIAL" "$WORK"; io_fail "$ROOT/.staging" "cannot create a fifo for the digest"; }

  # Hash the compressed bytes while they stream into tar: one pass, nothing buffered whole.
  # Every status and the digest travel on fd 3 into this substitution, not through files, so
  # a full disk cannot hide which part failed.
  results=$(
    {
      { sha256sum <"$WORK/fifo"; printf 'sumstatus=%s\n' "$?"; } >&3 &
      {
        fetch_input
        printf 'fetch=%s\n' "$?" >&3
      } | tee "$WORK/fifo" | {
        gzip -dc
        printf 'gzip=%s\n' "$?" >&3
        # gzip stops reading at the first corrupt byte: drain the rest, or tee dies of SIGPIPE,
        # the hash never sees every byte and a bad stream is misreported as a failed download.
        cat >/dev/null
      } | {
        # --ignore-zeros: read past end-of-archive blocks, as the validator does, so both see
        # the same entries. The transform drops leading "./" before stripping, so ./dir/x and
        # dir/x both land as x.
        st_err=$(tar -xf - -C "$PARTIAL" --no-same-owner --no-same-permissions --ignore-zeros \
          --transform='s,^\(\./\)*,,' --strip-components="$strip" 2>&1 >/dev/null)
        st_rc=$?
        printf 'tar=%s\n' "$st_rc" >&3
        if [ -n "$st_err" ]; then
          printf 'tarerr=%s\n' "$(printf '%s' "$st_err" | tr '\n' ' ' | cut -c 1-300)" >&3
        fi
        # tar stops at the end-of-archive blocks: drain the rest so the hash sees every byte.
        cat >/dev/null
      }
      wait
    } 3>&1 >/dev/null
  )
  fetch_status="" gzip_status="" tar_status="" got="" sum_status="" tar_err=""
  while IFS= read -r st_line; do
    case $st_line in
      fetch=*) fetch_status=${st_line#fetch=} ;;
      gzip=*) gzip_status=${st_line#gzip=} ;;
      tar=*) tar_status=${st_line#tar=} ;;
      tarerr=*) tar_err=${st_line#tarerr=} ;;
      sumstatus=*) sum_status=${st_line#sumstatus=} ;;
      *'  -') got=${st_line%%' '*} ;;
    esac
  done <<STATUSES
$results
STATUSES
  case $tar_err in
    *'No space left on device'* | *'Disk quota exceeded'* | *'Wrote only '*) stage_disk_full ;;
  esac
  if [ "$tar_status" != 0 ] && [ "$tar_status" != '' ]; then
    # tar does not always say why a write failed: a nearly full disk is the usual reason.
    st_free=$(df_avail -k "$ROOT/.staging")
    if valid_uint "${st_free:-x}" && [ "$st_free" -lt 256 ]; then stage_disk_full; fi
  fi
  case $fetch_status in
    0) ;;
    18 | 56 | 92 | 28 | 52 | 55 | 16 | 4)
      # The download started and was cut off (curl: partial file, receive error, HTTP/2
      # stream, timeout, empty reply, send error; wget: network failure): the same fault as a
      # dropped stream over SSH, and retried the same way.
      stage_failed "$EX_CHECKSUM" TransferCorrupted "the download of the tarball was cut off (exit $fetch_status)"
      ;;
    *) stage_failed "$EX_FETCH" FetchFailed "the host could not download the tarball (exit ${fetch_status:-unknown})" ;;
  esac
  if [ "$sum_status" != 0 ] || [ "$got" != "$sha" ]; then
    stage_failed "$EX_CHECKSUM" TransferCorrupted "sha256 mismatch: expected $sha, received ${got:-nothing}"
  fi
  if [ "$gzip_status" != 0 ] || [ "$tar_status" != 0 ]; then
    case $tar_err in
      *'Read-only file system'* | *'Permission denied'*)
        stage_failed "$EX_PERMISSION" HostPermissionDenied "cannot write under $ROOT/.staging: $tar_err" ;;
    esac
    stage_failed "$EX_EXTRACT" ExtractFailed "extraction failed (gzip $gzip_status, tar $tar_status): $tar_err"
  fi
  # Defence in depth: the tarball was validated before any host was touched, but never let a
  # link, device or setuid bit reach a live directory even if that check were bypassed.
  odd=$(find "$PARTIAL" ! -type f ! -type d -print 2>/dev/null | head -n 1)
  if [ -n "$odd" ]; then
    stage_failed "$EX_EXTRACT" ExtractFailed "tarball contains a link or special file: ${odd#"$PARTIAL"/}"
  fi
  # The top directory was made 0700 while root worked in it; live is readable like any plugin.
  if ! chmod -R ug-s,a-t,go-w -- "$PARTIAL" 2>/dev/null || ! chmod 0755 -- "$PARTIAL" 2>/dev/null; then
    stage_io_fail "$ROOT/.staging" "cannot clear setuid bits"
  fi
  if [ "$owner_spec" != - ]; then
    chown -R -h -- "$owner_spec" "$PARTIAL" 2>/dev/null || stage_io_fail "$ROOT/.staging" "cannot hand staging to $owner_spec"
  fi
  files=$(find "$PARTIAL" -type f -printf . | wc -c)
  files=${files##* }
  # Durable before visible: the staged tree reaches the disk before it is called staged, so no
  # later step (or a retry after a power loss) can swap in files whose data was never written.
  sync -f -- "$PARTIAL" 2>/dev/null || stage_io_fail "$ROOT/.staging" "cannot flush the staged files"
  inos "$PARTIAL"
  # A directory record left for this inode by a deleted directory is stale: forget it.
  rm -f -- "$ROOT/.meta/$NAME@$INO_1"
  printf 'staged=%s\n' "$INO_1" >"$META" 2>/dev/null || stage_io_fail "$ROOT/.meta" "cannot record staging"
  # Fencing: only while this stamp still holds the lease (a rollback may have run meanwhile).
  with_mutex
  read_lease "$LOCK"
  if [ "$L_STAMP" != "$STAMP" ]; then
    stage_failed "$EX_LOCK_LOST" LockLost "lock on $NAME is no longer held by $STAMP (holder: ${L_STAMP:-none}); staging discarded"
  fi
  # A failed rename discards the stage like any other failure (no .partial, .work, stage lock
  # or record left for CleanUp or the sweeper).
  mv -T -- "$PARTIAL" "$STG" 2>/dev/null || stage_io_fail "$ROOT/.staging" "cannot move partial staging of $NAME into place"
  release_mutex
  rm -rf -- "$WORK"
  rm -f -- "$STAGE_LOCK"
  ok "\"result\":\"staged\",\"files\":${files:-0}"
}

op_swap() {
  setup_paths "${1:-}" "${2:-}" "${3:-}"
  ensure_dirs .staging .meta
  require_lock
  staged_ino
  inos "$LIVE" "$STG"
  if live_is_ours; then ok '"result":"already"'; fi
  if [ -z "$STAGED" ] || [ "$INO_2" != "$STAGED" ]; then
    fail "$EX_STAGING_MISSING" StagingMissing "nothing staged for $NAME at $STAMP"
  fi
  if [ -z "$INO_1" ]; then
    # First install: one rename makes it visible.
    move "$STG" "$LIVE" "staging of $NAME onto live"
    flush "$ROOT" "$ROOT/.staging"
    ok '"result":"renamed","how":"rename"'
  fi
  # Upgrade: exchange staging and live in one system call, so a reader finds the old version
  # or the new one, never nothing. The displaced version is left in the staging slot.
  exchange "$STG" "$LIVE"
  sw_status=$?
  if [ "$sw_status" = 0 ]; then
    flush "$ROOT" "$ROOT/.staging"
    ok "\"result\":\"exchanged\",\"how\":\"$EXCH\""
  fi
  [ "$sw_status" = 3 ] || io_fail "$ROOT" "exchange of staging and live $NAME failed ($EXCH)"
  # This host cannot exchange: two renames inside one host command (live is absent between
  # them for microseconds, not for a state transition). The displaced version goes straight
  # to its snapshot slot.
  mgmt_dir "$ROOT/.previous"
  if [ -e "$PREV" ] || [ -L "$PREV" ]; then fail "$EX_LIVE_PRESENT" LivePresent ".previous/$NAME.$STAMP already exists"; fi
  move "$LIVE" "$PREV" "live $NAME to .previous"
  if ! mv -T -- "$STG" "$LIVE" 2>/dev/null; then
    mv -T -- "$PREV" "$LIVE" 2>/dev/null
    io_fail "$ROOT" "rename of staging onto live $NAME failed"
  fi
  flush "$ROOT" "$ROOT/.staging" "$ROOT/.previous"
  ok '"result":"renamed","how":"two-renames"'
}

op_snapshot() {
  # The version the swap displaced (in the staging slot) becomes the snapshot.
  setup_paths "${1:-}" "${2:-}" "${3:-}"
  ensure_dirs .staging .previous .meta
  require_lock
  if [ -e "$PREV" ] || [ -L "$PREV" ]; then ok '"result":"already"'; fi
  staged_ino
  inos "$LIVE" "$STG"
  live_is_ours || fail "$EX_LIVE_NOT_OURS" LiveNotOurs "live $NAME was not placed by $STAMP; nothing to snapshot"
  if [ -z "$INO_2" ]; then ok '"result":"none"'; fi
  move "$STG" "$PREV" "the displaced $NAME to .previous"
  flush "$ROOT/.staging" "$ROOT/.previous"
  ok '"result":"moved"'
}

op_mark() {
  setup_paths "${1:-}" "${2:-}" "${3:-}"
  version=${4:-}
  sha=${5:-}
  execution=${6:-}
  installed_at=${7:-}
  owner_spec=${8:-}
  need valid_token "$version" "version"
  need valid_sha "$sha" "sha256"
  need valid_token "$execution" "execution name"
  need valid_time "$installed_at" "install time"
  need valid_owner_spec "$owner_spec" "owner (uid:gid or -)"
  ensure_dirs .staging .meta
  require_lock
  staged_ino
  inos "$LIVE"
  live_is_ours || fail "$EX_LIVE_NOT_OURS" LiveNotOurs "live $NAME was not placed by $STAMP"
  record="$ROOT/.meta/$NAME@$STAGED"
  if kv "$record" stamp && [ "$KV" = "$STAMP" ] && [ -f "$LIVE/.complete" ] && [ ! -L "$LIVE/.complete" ]; then
    ok '"result":"already"'
  fi
  # What list reports comes from this root-owned record, never from the agent's .complete.
  printf 'stamp=%s\nversion=%s\nsha256=%s\ninstalledAt=%s\nexecution=%s\n' \
    "$STAMP" "$version" "$sha" "$installed_at" "$execution" >"$record" 2>/dev/null ||
    io_fail "$ROOT/.meta" "cannot write the marker record of $NAME"
  # The temp file lives outside the live directory (same filesystem, root-only directory), so
  # a reader of live never sees it and the agent cannot touch it; the rename into live is
  # atomic and replaces whatever the agent put at .complete without following it.
  tmp="$ROOT/.staging/.complete.$NAME.$STAMP.tmp"
  printf '{"name":"%s","version":"%s","sha256":"%s","stamp":"%s","installedAt":"%s","execution":"%s"}\n' \
    "$NAME" "$version" "$sha" "$STAMP" "$installed_at" "$execution" >"$tmp" 2>/dev/null ||
    { rm -f -- "$tmp"; io_fail "$ROOT/.staging" "cannot write the marker temp file"; }
  if [ "$owner_spec" != - ]; then
    chown -h -- "$owner_spec" "$tmp" 2>/dev/null || { rm -f -- "$tmp"; io_fail "$ROOT/.staging" "cannot hand the marker to $owner_spec"; }
  fi
  # Durable before visible: the marker's bytes, then its name, then the directory entry.
  sync -- "$tmp" 2>/dev/null || { rm -f -- "$tmp"; io_fail "$ROOT/.staging" "cannot flush the marker"; }
  if ! mv -T -f -- "$tmp" "$LIVE/.complete" 2>/dev/null; then
    rm -f -- "$tmp"
    if [ -d "$LIVE/.complete" ] && [ ! -L "$LIVE/.complete" ]; then
      fail "$EX_IO" HostIoError "cannot write $LIVE/.complete: a directory is in its place; remove it and retry"
    fi
    io_fail "$LIVE" "cannot rename the marker into live $NAME"
  fi
  flush "$LIVE"
  ok '"result":"marked"'
}

# --- the health check (verify) --------------------------------------------------------------------

# The environment a check starts with: nothing of ours but a PATH and the plugin's coordinates.
CHECK_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# How much of its output is kept (the tail), and how much of that the failure message quotes.
CHECK_OUTPUT_BYTES=16384
CHECK_QUOTE_LINES=20
CHECK_QUOTE_WIDTH=200

# health_fail <message>: the new version failed its check (HealthCheckFailed); the workflow rolls
# it back. Nothing of the check is left behind (its work directory holds only its output).
health_fail() {
  check_cleanup
  fail "$EX_HEALTH" HealthCheckFailed "$1"
}

# check_cleanup: removes this attempt's directory under $WORK, and $WORK once empty. Each attempt
# has its own (an attempt cut off from its caller may still run beside the retry).
check_cleanup() {
  [ -n "${CHK:-}" ] || return 0
  rm -rf -- "$CHK" 2>/dev/null
  rmdir -- "$WORK" 2>/dev/null
  return 0
}

# check_owner <owner-spec>: CHECK_UID/CHECK_GID = who runs the check. As root: the plugin's owner,
# never root. Not root (embedded mode as a developer): the user running this script, who cannot
# hand a process to anybody else.
check_owner() {
  CHECK_UID="" CHECK_GID=""
  MY_UID=$(id -u)
  if [ "$MY_UID" != 0 ]; then return 0; fi
  if [ "$1" = - ] || [ "${1%%:*}" -eq 0 ] || [ "${1#*:}" -eq 0 ]; then
    fail "$EX_USAGE" InvalidInput "the health check runs as the plugin's owner and never as root: owner must be a non-root uid:gid, not $1"
  fi
  CHECK_UID=${1%%:*}
  CHECK_GID=${1#*:}
}

# as_owner <isolation> <command> [args...]: runs a command as the check's user in the live
# directory, in the check's environment: uid:gid of the owner with no supplementary groups, no
# capabilities and no way to gain privileges (no_new_privs: sudo and setuid programs do not
# elevate). The directory is entered before privileges are dropped, so the check starts there
# even if the owner could not walk the path to it; it reaches nothing more than its user can.
# <isolation> `pid-namespace` puts it in a new PID namespace first (unshare needs root), `none`
# does not. Call it in a subshell: it ends in exec.
as_owner() {
  ao_isolation=$1
  shift
  set -- env -i PATH="$CHECK_PATH" LC_ALL=C PLUGIN_DIR="$LIVE" PLUGIN_NAME="$NAME" PLUGIN_VERSION="$VERSION_" "$@"
  if [ -n "$CHECK_UID" ]; then
    set -- setpriv --reuid="$CHECK_UID" --regid="$CHECK_GID" --clear-groups --inh-caps=-all --no-new-privs -- "$@"
  else
    set -- setpriv --no-new-privs -- "$@"
  fi
  if [ "$ao_isolation" = pid-namespace ]; then
    # The namespace's init is a root sh that runs the check as its child: --kill-child's
    # parent-death signal reaches it when unshare is killed (the kernel clears that signal in a
    # process whose uid changes, so the check itself cannot be init), and when init ends, for
    # whatever reason, the kernel kills every process left in the namespace. (Waited for as a
    # background job: sh would report a foreground child's signal on the check's output.)
    set -- unshare --pid --fork --kill-child -- sh -c '"$@" & wait "$!" 2>/dev/null; exit $?' healthcheck-init "$@"
  fi
  cd -P -- "$LIVE" 2>/dev/null || { echo "cannot enter $LIVE" >&2; exit 125; }
  exec "$@"
}

# check_isolation: ISOLATION = how everything a check starts is found and killed. A new PID
# namespace when this host allows one (root): when its init ends, with the check or killed, the
# kernel kills every process the check left, even one that made itself a new session. Otherwise
# its own session and process group (and a `timeout` inside it as a backstop should this script
# die).
check_isolation() {
  ISOLATION='process-group'
  if [ "$MY_UID" = 0 ] && unshare --pid --fork --kill-child true </dev/null >/dev/null 2>&1; then
    ISOLATION='pid-namespace'
  else
    need_tools setsid timeout
  fi
}

# run_check <timeout> <command>: CHECK_RC (its exit status), CHECK_TIMED_OUT (0/1); its output's
# last CHECK_OUTPUT_BYTES in $CHK/out. The output reaches a root-owned file through a fifo in the
# root-only work directory: the check can write to the descriptor it was given and open neither.
run_check() {
  rc_timeout=$1
  rc_command=$2
  CHK="$WORK/check.$$"
  if [ ! -d "$WORK" ]; then
    mkdir -m 0700 -- "$WORK" 2>/dev/null || [ -d "$WORK" ] || io_fail "$ROOT/.staging" "cannot create the health check's work directory"
  fi
  # What attempts that were killed left (their process is gone); a live one keeps its own.
  for rc_old in "$WORK"/check.*; do
    [ -d "$rc_old" ] || continue
    rc_pid=${rc_old##*.}
    if valid_uint "$rc_pid" && [ "$rc_pid" != "$$" ] && kill -0 "$rc_pid" 2>/dev/null; then continue; fi
    rm -rf -- "$rc_old" 2>/dev/null
  done
  mkdir -m 0700 -- "$CHK" 2>/dev/null || io_fail "$ROOT/.staging" "cannot create the health check's work directory"
  mkfifo -m 0600 -- "$CHK/fifo" 2>/dev/null || io_fail "$ROOT/.staging" "cannot create a fifo for the health check's output"
  tail -c "$CHECK_OUTPUT_BYTES" <"$CHK/fifo" >"$CHK/out" 2>/dev/null &
  rc_reader=$!
  if [ "$ISOLATION" = pid-namespace ]; then
    # Not a new session: the host step's own process group (which a transport kills when the
    # step times out) keeps unshare, and with it the whole namespace.
    (as_owner pid-namespace sh -c "$rc_command" healthcheck) </dev/null >"$CHK/fifo" 2>&1 &
    rc_check=$!
  else
    # setsid (not forking: an asynchronous list leads no process group) makes this pid the group.
    (as_owner none setsid timeout -s KILL "$((rc_timeout + 5))" sh -c "$rc_command" healthcheck) </dev/null >"$CHK/fifo" 2>&1 &
    rc_check=$!
  fi
  # The watchdog: at the timeout, note it and kill the check with every process it started.
  (
    trap '[ -n "${rc_sleep:-}" ] && kill "$rc_sleep" 2>/dev/null; exit 0' TERM
    sleep "$rc_timeout" &
    rc_sleep=$!
    wait "$rc_sleep" || exit 0
    : >"$CHK/timed-out"
    kill_check
  ) </dev/null >/dev/null 2>&1 &
  rc_dog=$!
  wait "$rc_check" 2>/dev/null
  CHECK_RC=$?
  kill -TERM "$rc_dog" 2>/dev/null
  wait "$rc_dog" 2>/dev/null
  CHECK_TIMED_OUT=0
  [ -e "$CHK/timed-out" ] && CHECK_TIMED_OUT=1
  # What the check started dies with it, also when it passed.
  kill_check
  # The reader ends when the last writer is gone. A process that escaped the process group
  # (possible only without a PID namespace) may still hold the fifo: then stop waiting after 2 s.
  (
    trap '[ -n "${rb_sleep:-}" ] && kill "$rb_sleep" 2>/dev/null; exit 0' TERM
    sleep 2 &
    rb_sleep=$!
    wait "$rb_sleep" || exit 0
    kill "$rc_reader"
  ) </dev/null >/dev/null 2>&1 &
  rc_bound=$!
  wait "$rc_reader" 2>/dev/null
  kill "$rc_bound" 2>/dev/null
}

kill_check() {
  if [ "$ISOLATION" = pid-namespace ]; then
    # unshare --kill-child: the namespace's init dies with unshare, and the kernel kills the rest.
    kill -KILL "$rc_check" 2>/dev/null
  else
    kill -KILL "-$rc_check" 2>/dev/null
  fi
}

# check_output_quote: CHECK_QUOTE = the last lines of the check's output, JSON-escaped, joined by
# \n (escaped): control characters dropped, tabs as spaces, each line cut to CHECK_QUOTE_WIDTH.
check_output_quote() {
  CHECK_QUOTE=$(tail -n "$CHECK_QUOTE_LINES" -- "$CHK/out" 2>/dev/null | tr '\011' ' ' | tr -d '\000-\010\013-\037\177' |
    cut -c "1-$CHECK_QUOTE_WIDTH" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' |
    awk 'NR > 1 { printf "\\n" } { printf "%s", $0 }')
}

op_verify() {
  # The new version is live (swap) and its predecessor filed (snapshot): before it is marked,
  # built-in structural checks, then the plugin's own health check if it declares one.
  setup_paths "${1:-}" "${2:-}" "${3:-}"
  VERSION_=${4:-}
  owner_spec=${5:-}
  check_timeout=${6:-}
  check_command=${7:-}
  need valid_token "$VERSION_" "version"
  need valid_owner_spec "$owner_spec" "owner (uid:gid or -)"
  need valid_check_timeout "$check_timeout" "health check timeout (1-300 seconds)"
  [ -z "$check_command" ] || need valid_check_command "$check_command" "health check command"
  need_tools find setpriv mkfifo tail
  check_owner "$owner_spec"
  ensure_dirs .staging .meta
  require_lock
  staged_ino
  inos "$LIVE"
  live_is_ours || fail "$EX_LIVE_NOT_OURS" LiveNotOurs "live $NAME was not placed by $STAMP; nothing to verify"
  if kv "$META" verified && [ "$KV" = passed ]; then ok '"result":"already"'; fi
  release_mutex

  # Built-in checks, on what the tarball can get wrong: its modes (tar keeps them). 1: live is the
  # directory this stamp staged (above). 2: the plugin's owner can list and enter it. 3: if its
  # plugin.yaml is a regular file (asked of find, which follows no link and opens nothing), the
  # owner can read it. Asked as the owner, in live. What the agent does to its own directory (a
  # link, a fifo, a file gone) is its business and trips nothing here.
  vf_type=$(find "$LIVE" -mindepth 1 -maxdepth 1 -name plugin.yaml -printf '%y' 2>/dev/null) ||
    io_fail "$LIVE" "cannot list live $NAME"
  # The tests print nothing: anything on stderr comes from setpriv, env or cd, a fault of the
  # host (not of the plugin), reported as such.
  # shellcheck disable=SC2016 # $1 is expanded by the owner's sh
  if ! vf_err=$( (as_owner none sh -c 'test -r . && test -x . && { [ "$1" != f ] || test -r plugin.yaml; }' builtin-check "$vf_type") </dev/null 2>&1 >/dev/null); then
    if [ -n "$vf_err" ]; then
      fail "$EX_TOOL_MISSING" HostToolMissing "cannot run a command as the plugin's owner (${CHECK_UID:-$MY_UID}:${CHECK_GID:-$(id -g)}) with setpriv (util-linux): $(printf '%s' "$vf_err" | head -n 2 | tr '\n' ' ' | cut -c 1-300)"
    fi
    health_fail "built-in check: the plugin's owner (${CHECK_UID:-$MY_UID}:${CHECK_GID:-$(id -g)}) cannot list live $NAME or read its plugin.yaml (check the modes in the tarball)"
  fi

  check='built-in'
  ISOLATION=""
  if [ -n "$check_command" ]; then
    check='command'
    check_isolation
    run_check "$check_timeout" "$check_command"
    if [ "$CHECK_TIMED_OUT" = 1 ] || [ "$CHECK_RC" != 0 ]; then
      check_output_quote
      if [ "$CHECK_TIMED_OUT" = 1 ]; then
        vf_why="timed out after ${check_timeout}s and was killed with every process it started"
      elif [ "$CHECK_RC" -gt 128 ]; then
        vf_why="killed by signal $((CHECK_RC - 128))"
      else
        vf_why="exit status $CHECK_RC"
      fi
      if [ -n "$CHECK_QUOTE" ]; then
        vf_out="; last lines of its output:\\n$CHECK_QUOTE"
      else
        vf_out="; it printed nothing"
      fi
      check_cleanup
      # The message is built from escaped output: printed as is, not through fail's escaping.
      printf '{"ok":false,"op":"verify","code":"HealthCheckFailed","message":"health check of %s %s failed: %s%s","exitStatus":%s,"timedOut":%s}\n' \
        "$NAME" "$VERSION_" "$vf_why" "$vf_out" "$CHECK_RC" "$([ "$CHECK_TIMED_OUT" = 1 ] && echo true || echo false)"
      exit "$EX_HEALTH"
    fi
    check_cleanup
  fi

  # Recorded under the lease (fencing): a check that outlived our lease decides nothing.
  require_lock
  printf 'verified=passed\n' >>"$META" 2>/dev/null || io_fail "$ROOT/.meta" "cannot record the health check"
  if [ -n "$ISOLATION" ]; then
    ok "\"result\":\"passed\",\"check\":\"$check\",\"isolation\":\"$ISOLATION\""
  fi
  ok "\"result\":\"passed\",\"check\":\"$check\""
}

# settle_ours <path>: a directory this stamp placed is taken out of the way: back to the snapshot
# slot it was restored from (rollback of a rollback), else to .failed as evidence.
settle_ours() {
  if kv "$META" from && valid_stamp "$KV" && [ ! -e "$ROOT/.previous/$NAME.$KV" ] && [ ! -L "$ROOT/.previous/$NAME.$KV" ]; then
    mgmt_dir "$ROOT/.previous"
    mv -T -- "$1" "$ROOT/.previous/$NAME.$KV" 2>/dev/null || rollback_failed "cannot return $1 to .previous/$NAME.$KV"
    ACTIONS="$ACTIONS\"returned-snapshot\","
  else
    mgmt_dir "$ROOT/.failed"
    rm -rf -- "$FAILED" 2>/dev/null || rollback_failed "cannot clear $FAILED"
    mv -T -- "$1" "$FAILED" 2>/dev/null || rollback_failed "cannot move $1 to .failed"
    ACTIONS="$ACTIONS\"moved-ours-to-failed\","
  fi
}

rollback_failed() {
  fail "$EX_ROLLBACK" RollbackFailed "$1; nothing else was changed (actions so far: [${ACTIONS%,}])"
}

op_rollback() {
  # Undo what this stamp did, judged from what is on disk, so it is right whichever step failed
  # and however often it runs; touches nothing this stamp did not place.
  setup_paths "${1:-}" "${2:-}" "${3:-}"
  ACTIONS=""
  [ -d "$ROOT" ] || ok '"live":"absent","changed":false,"actions":[],"lock":"free"'
  ensure_dirs .staging .locks .meta
  rm -rf -- "$PARTIAL" "$WORK" 2>/dev/null || rollback_failed "cannot remove the partial staging of $STAMP"
  rm -f -- "$STAGE_LOCK" "$ROOT/.staging/.complete.$NAME.$STAMP.tmp"
  with_mutex
  read_lease "$LOCK"
  holder=$L_STAMP
  staged_ino
  inos "$LIVE" "$STG"
  if [ -n "$INO_2" ] && [ -n "$STAGED" ] && [ "$INO_2" = "$STAGED" ]; then
    # Staged, never swapped.
    if kv "$META" from && valid_stamp "$KV"; then
      settle_ours "$STG"
    else
      rm -rf -- "$STG" 2>/dev/null || rollback_failed "cannot remove staging $STG"
      ACTIONS="$ACTIONS\"removed-staging\","
    fi
    INO_2=""
  fi
  if [ -n "$holder" ] && [ "$holder" != "$STAMP" ]; then
    # Someone else holds the plugin now: our staging was ours to clean, live is not. Unless live
    # is still the directory we placed, nothing of ours is left for the record to name.
    live_is_ours || rm -f -- "$META"
    ok "\"live\":\"untouched\",\"changed\":false,\"actions\":[${ACTIONS%,}],\"lock\":\"held-by-other\""
  fi
  live=untouched
  changed=false
  if live_is_ours; then
    changed=true
    # What we displaced is still beside live (staging slot) or already the snapshot.
    displaced=""
    if [ -n "$INO_2" ]; then
      displaced=$STG
    elif [ -e "$PREV" ] || [ -L "$PREV" ]; then
      displaced=$PREV
    fi
    if [ -n "$displaced" ]; then
      exchange "$displaced" "$LIVE"
      rb_status=$?
      if [ "$rb_status" = 0 ]; then
        ACTIONS="$ACTIONS\"exchanged-back\","
        settle_ours "$displaced"
      elif [ "$rb_status" = 3 ]; then
        settle_ours "$LIVE"
        mv -T -- "$displaced" "$LIVE" 2>/dev/null || rollback_failed "cannot move $displaced back to live"
        ACTIONS="$ACTIONS\"renamed-back\","
      else
        rollback_failed "cannot exchange $displaced back into live $NAME"
      fi
      live=restored
    else
      settle_ours "$LIVE"
      live=absent
    fi
  elif [ -n "$INO_2" ] && [ -z "$INO_1" ]; then
    # A displaced version in our staging slot and no live: put it back.
    mv -T -- "$STG" "$LIVE" 2>/dev/null || rollback_failed "cannot move $STG back to live"
    ACTIONS="$ACTIONS\"restored-displaced\","
    live=restored
    changed=true
  fi
  if [ ! -e "$LIVE" ] && [ ! -L "$LIVE" ] && [ -d "$PREV" ] && [ ! -L "$PREV" ]; then
    # Uninstall (or a swap that fell back to two renames and was cut off) moved live here.
    mv -T -- "$PREV" "$LIVE" 2>/dev/null || rollback_failed "cannot move .previous/$NAME.$STAMP back to live"
    ACTIONS="$ACTIONS\"restored-previous\","
    live=restored
    changed=true
  elif [ "$live" = untouched ] && [ ! -e "$LIVE" ] && [ ! -L "$LIVE" ]; then
    live=absent
  fi
  lock=free
  if [ "$holder" = "$STAMP" ]; then
    rm -f -- "$LOCK" 2>/dev/null || rollback_failed "cannot release lock $LOCK"
    lock=released
  fi
  if [ -n "$ACTIONS" ]; then
    sync -- "$ROOT" "$ROOT/.staging" 2>/dev/null
  fi
  # Undone: what this stamp placed is gone or filed away, so its record names nothing any more.
  # Kept, it would outlive the inode numbers it names, and a retry of this rollback would take a
  # later directory that reuses one (ext4 hands freed numbers out again at once) for ours.
  rm -f -- "$META" 2>/dev/null || rollback_failed "cannot remove the record $META"
  ok "\"live\":\"$live\",\"changed\":$changed,\"actions\":[${ACTIONS%,}],\"lock\":\"$lock\""
}

op_restore() {
  # Stages the newest snapshot (other than our own) as if it had just been extracted, so that
  # swap + snapshot finish the job exactly as they do for an install.
  setup_paths "${1:-}" "${2:-}" "${3:-}"
  ensure_dirs .staging .meta
  require_lock
  staged_ino
  if kv "$META" from; then rs_from=$KV; else rs_from=""; fi
  inos "$LIVE" "$STG"
  if [ -n "$STAGED" ] && [ "$INO_2" = "$STAGED" ]; then ok "\"result\":\"already\",\"from\":\"$rs_from\""; fi
  if live_is_ours; then ok "\"result\":\"already-live\",\"from\":\"$rs_from\""; fi
  target=""
  for entry in "$ROOT/.previous/$NAME".*; do
    if [ ! -d "$entry" ] || [ -L "$entry" ]; then continue; fi
    s=${entry##*/}
    s=${s#"$NAME".}
    valid_stamp "$s" || continue
    [ "$s" = "$STAMP" ] && continue
    # The glob lists a plugin's stamps in ascending order: the last one of the latest second is
    # the newest by whole stamp (the suffix orders stamps within one second), as sweep keeps it.
    if [ -z "$target" ] || ! older "$s" "${target%-*}"; then target=$s; fi
  done
  [ -n "$target" ] || fail "$EX_NOTHING_TO_RESTORE" NothingToRestore "no snapshot of $NAME to roll back to"
  src="$ROOT/.previous/$NAME.$target"
  inos "$src"
  # Recorded before the move: a kill between the two leaves a record, never an unknown stage.
  printf 'staged=%s\nfrom=%s\n' "$INO_1" "$target" >"$META" 2>/dev/null || io_fail "$ROOT/.meta" "cannot record the restore"
  move "$src" "$STG" "snapshot $target into staging"
  flush "$ROOT/.previous" "$ROOT/.staging"
  ok "\"result\":\"staged\",\"from\":\"$target\""
}

op_uninstall() {
  setup_paths "${1:-}" "${2:-}" "${3:-}"
  ensure_dirs .previous .meta
  require_lock
  if [ -e "$PREV" ] && [ ! -e "$LIVE" ] && [ ! -L "$LIVE" ]; then ok '"result":"already"'; fi
  if [ ! -e "$LIVE" ] && [ ! -L "$LIVE" ]; then
    fail "$EX_NOT_INSTALLED" NotInstalled "plugin $NAME is not installed"
  fi
  move "$LIVE" "$PREV" "live $NAME to .previous"
  flush "$ROOT" "$ROOT/.previous"
  ok '"result":"moved"'
}

# marker_json <record>: MJ = the marker fields of a directory record as a JSON object ("" if
# the record is missing or incomplete). Every value was validated before it was written.
marker_json() {
  MJ=""
  mj_s="" mj_v="" mj_h="" mj_t="" mj_e=""
  [ -f "$1" ] || return 1
  while IFS= read -r mj_line || [ -n "$mj_line" ]; do
    case $mj_line in
      stamp=*) mj_s=${mj_line#stamp=} ;;
      version=*) mj_v=${mj_line#version=} ;;
      sha256=*) mj_h=${mj_line#sha256=} ;;
      installedAt=*) mj_t=${mj_line#installedAt=} ;;
      execution=*) mj_e=${mj_line#execution=} ;;
    esac
  done <"$1" 2>/dev/null
  valid_stamp "$mj_s" && valid_token "$mj_v" && valid_sha "$mj_h" && valid_time "$mj_t" && valid_token "$mj_e" || return 1
  MJ="{\"name\":\"$LN\",\"version\":\"$mj_v\",\"sha256\":\"$mj_h\",\"stamp\":\"$mj_s\",\"installedAt\":\"$mj_t\",\"execution\":\"$mj_e\"}"
}

# list_items: reads find's lines (see op_list) and prints the plugins as JSON objects.
list_items() {
  li_items=""
  li_complete=""
  while IFS= read -r li_line; do
    case $li_line in
      "c f $ROOT/"*) li_complete=${li_line#"c f $ROOT/"} ;;
      'd d '*)
        li=${li_line#d d }
        LN=${li#* }
        li=${li%% *}
        if valid_name "$LN" && valid_ino "$li"; then
          complete=false
          stamp=""
          marker=null
          if marker_json "$ROOT/.meta/$LN@$li"; then
            marker=$MJ
            stamp=$mj_s
            [ "$li_complete" = "$LN" ] && complete=true
          fi
          li_items="$li_items{\"name\":\"$LN\",\"complete\":$complete,\"stamp\":\"$stamp\",\"marker\":$marker},"
        fi
        li_complete=""
        ;;
      *) li_complete="" ;;
    esac
  done
  printf '%s' "${li_items%,}"
}

op_list() {
  ROOT=${1:-}
  need valid_root "$ROOT" "plugins root"
  if [ ! -d "$ROOT" ] && [ ! -L "$ROOT" ]; then ok '"plugins":[],"previous":[],"locks":[]'; fi
  check_layout
  need_tools find
  # One pass over the root, children before their directory (-depth): whether each plugin
  # directory holds a regular .complete, then the directory's identity. find does not follow
  # links, and nothing inside a plugin directory is opened or read.
  items=$(find "$ROOT" -depth -mindepth 1 -maxdepth 2 \( -path "$ROOT/.*" \) -o \
    \( -name .complete -printf 'c %y %h\n' \) -o \( ! -path "$ROOT/*/*" -printf 'd %y %D-%i %f\n' \) 2>/dev/null |
    list_items)
  snaps=""
  for dir in "$ROOT/.previous"/*; do
    if [ ! -d "$dir" ] || [ -L "$dir" ]; then continue; fi
    e=${dir##*/}
    valid_entry "${e%.*}" "${e##*.}" || continue
    pinned=false
    [ -f "$ROOT/.meta/$e.pin" ] && pinned=true
    snaps="$snaps{\"name\":\"${e%.*}\",\"stamp\":\"${e##*.}\",\"pinned\":$pinned},"
  done
  locks=""
  if [ -d "$ROOT/.locks" ]; then
    now=$(now_epoch)
    for f in "$ROOT/.locks"/*; do
      [ -f "$f" ] || continue
      n=${f##*/}
      valid_name "$n" || continue
      read_lease "$f"
      valid_stamp "$L_STAMP" || continue
      valid_uint "$L_EXPIRES" || continue
      [ "$L_EXPIRES" -gt "$now" ] || continue
      locks="$locks{\"name\":\"$n\",\"stamp\":\"$L_STAMP\",\"expires\":$L_EXPIRES},"
    done
  fi
  ok "\"plugins\":[$items],\"previous\":[${snaps%,}],\"locks\":[${locks%,}]"
}

# sweep_entry <kind> <path> <rel>: delete (or, dry-run, only report) one entry. <rel> is built from
# validated names and stamps only, so it needs no JSON escaping (and the sweep forks less).
sweep_entry() {
  kb=$(du -sk -- "$2" 2>/dev/null)
  kb=${kb%%[!0-9]*}
  bytes=$(( ${kb:-0} * 1024 ))
  if [ "$DRY" = 0 ]; then
    rm -rf -- "$2" 2>/dev/null || io_fail "${2%/*}" "cannot delete $3"
  fi
  DELETED="$DELETED{\"kind\":\"$1\",\"path\":\"$3\",\"bytes\":$bytes},"
  TOTAL=$((TOTAL + bytes))
  eval "COUNT_$1=\$((COUNT_$1 + 1))"
}

lock_active() {
  # lock_active <name>: a lease that has not expired protects the plugin's staging and failures.
  read_lease "$ROOT/.locks/$1" || return 1
  valid_uint "$L_EXPIRES" && [ "$L_EXPIRES" -gt "$NOW" ]
}

older() {
  # older <stamp> <cutoff>: is the stamp's time part (YYYYMMDDTHHMMSSZ) strictly before the
  # cutoff? Compared as date then time, both decimal (test(1) ignores leading zeros).
  od_stamp=${1%-*}
  od_sday=${od_stamp%T*}
  od_stime=${od_stamp#*T}
  od_stime=${od_stime%Z}
  od_cday=${2%T*}
  od_ctime=${2#*T}
  od_ctime=${od_ctime%Z}
  [ "$od_sday" -lt "$od_cday" ] || { [ "$od_sday" -eq "$od_cday" ] && [ "$od_stime" -lt "$od_ctime" ]; }
}

op_sweep() {
  ROOT=${1:-}
  prev_cutoff=${2:-}
  KEEP=${3:-}
  staging_cutoff=${4:-}
  failed_cutoff=${5:-}
  NOW=${6:-}
  DRY=${7:-}
  need valid_root "$ROOT" "plugins root"
  need valid_cutoff "$prev_cutoff" "snapshot cutoff"
  need valid_uint "$KEEP" "keep count"
  need valid_cutoff "$staging_cutoff" "staging cutoff"
  need valid_cutoff "$failed_cutoff" "failed cutoff"
  need valid_uint "$NOW" "now"
  case $DRY in 0 | 1) ;; *) fail "$EX_USAGE" InvalidInput "invalid dry-run flag" ;; esac
  DELETED=""
  TOTAL=0
  COUNT_previous=0
  COUNT_staging=0
  COUNT_failed=0
  COUNT_locks=0
  dry=false
  [ "$DRY" = 1 ] && dry=true
  [ -d "$ROOT" ] || ok "\"dryRun\":$dry,\"deleted\":[],\"counts\":{\"previous\":0,\"staging\":0,\"failed\":0,\"locks\":0},\"bytes\":0"
  if [ "$DRY" = 0 ]; then check_root; else check_layout; fi

  if [ -d "$ROOT/.previous" ]; then
    # Listed as "<name>/<stamp>" and sorted in reverse: "/" appears in no name, so each plugin's
    # snapshots form one run, newest first, and the first KEEP seen per plugin are the ones kept.
    # (Sorting "<name>.<stamp>" would not: p.202603.<stamp> sorts between p.20260301… and
    # p.20260228…, splitting p's run and keeping more than KEEP of it.) Only valid entries are
    # listed: the unquoted loop below must not split a name like "x.<stamp> y" into an entry that
    # does not exist and counts against KEEP (nor glob-expand one).
    listing=$(for d in "$ROOT/.previous"/*; do
      e=${d##*/}
      # Only real directories count towards KEEP: restore never picks anything else.
      [ -d "$d" ] && [ ! -L "$d" ] && valid_entry "${e%.*}" "${e##*.}" && printf '%s/%s\n' "${e%.*}" "${e##*.}"
    done | sort -r)
    last=""
    seen=0
    for line in $listing; do
      n=${line%/*}
      s=${line#*/}
      valid_entry "$n" "$s" || continue
      e="$n.$s"
      if [ "$n" != "$last" ]; then
        last=$n
        seen=0
      fi
      seen=$((seen + 1))
      [ "$seen" -le "$KEEP" ] && continue
      [ -f "$ROOT/.meta/$e.pin" ] && continue
      older "$s" "$prev_cutoff" || continue
      sweep_entry previous "$ROOT/.previous/$e" ".previous/$e"
    done
  fi

  if [ -d "$ROOT/.staging" ]; then
    for d in "$ROOT/.staging"/* "$ROOT/.staging"/.complete.*.tmp; do
      [ -e "$d" ] || [ -L "$d" ] || continue
      e=${d##*/}
      base=${e%.tmp}
      base=${base#.complete.}
      base=${base%.partial}
      base=${base%.work}
      n=${base%.*}
      s=${base##*.}
      valid_entry "$n" "$s" || continue
      lock_active "$n" && continue
      older "$s" "$staging_cutoff" || continue
      sweep_entry staging "$d" ".staging/$e"
    done
  fi

  if [ -d "$ROOT/.failed" ]; then
    for d in "$ROOT/.failed"/*; do
      [ -e "$d" ] || continue
      e=${d##*/}
      n=${e%.*}
      s=${e##*.}
      valid_entry "$n" "$s" || continue
      lock_active "$n" && continue
      older "$s" "$failed_cutoff" || continue
      sweep_entry failed "$d" ".failed/$e"
    done
  fi

  if [ -d "$ROOT/.locks" ]; then
    # Under the lock mutex (deleting only): op_lock may be taking over this very expired lease,
    # and the sweep must not delete the lease it has just written.
    if [ "$DRY" = 0 ]; then with_mutex; fi
    for f in "$ROOT/.locks"/* "$ROOT/.locks"/.stage.*; do
      [ -f "$f" ] || continue
      n=${f##*/}
      case $n in
        .stage.*)
          # A stage lock an interrupted stage left behind (a running stage holds its flock).
          sl=${n#.stage.}
          valid_entry "${sl%.*}" "${sl##*.}" || continue
          lock_active "${sl%.*}" && continue
          older "${sl##*.}" "$staging_cutoff" || continue
          ;;
        *)
          valid_name "$n" || continue
          lease_ok=0
          lock_active "$n" && lease_ok=1
          [ "$lease_ok" = 1 ] && continue
          ;;
      esac
      sweep_entry locks "$f" ".locks/$n"
    done
  fi

  if [ -d "$ROOT/.meta" ] && [ "$DRY" = 0 ]; then
    # Operation records of stamps older than the staging cutoff whose directories are all gone.
    for f in "$ROOT/.meta"/*; do
      [ -f "$f" ] || continue
      e=${f##*/}
      case $e in *@* | *.pin | exchange) continue ;; esac
      n=${e%.*}
      s=${e##*.}
      valid_entry "$n" "$s" || continue
      older "$s" "$staging_cutoff" || continue
      [ -e "$ROOT/.staging/$e" ] || [ -e "$ROOT/.previous/$e" ] || [ -e "$ROOT/.failed/$e" ] || [ -e "$ROOT/.locks/$n" ] && continue
      rm -f -- "$f"
    done
  fi

  ok "\"dryRun\":$dry,\"deleted\":[${DELETED%,}],\"counts\":{\"previous\":$COUNT_previous,\"staging\":$COUNT_staging,\"failed\":$COUNT_failed,\"locks\":$COUNT_locks},\"bytes\":$TOTAL"
}

[ $# -ge 1 ] && shift
case $OP in
  lock) op_lock "$@" ;;
  unlock) op_unlock "$@" ;;
  stage) op_stage "$@" ;;
  swap) op_swap "$@" ;;
  snapshot) op_snapshot "$@" ;;
  mark) op_mark "$@" ;;
  verify) op_verify "$@" ;;
  rollback) op_rollback "$@" ;;
  restore) op_restore "$@" ;;
  uninstall) op_uninstall "$@" ;;
  list) op_list "$@" ;;
  sweep) op_sweep "$@" ;;
  *) fail "$EX_USAGE" InvalidInput "unknown operation (use lock, unlock, stage, swap, snapshot, verify, mark, rollback, restore, uninstall, list or sweep)" ;;
esac
