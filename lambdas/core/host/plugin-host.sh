#!/bin/sh
# plugin-host.sh: every step the installer performs on a workspace host.
#
# The same bytes run for every transport (local bash, EC2 Instance Connect over SSH, SSM Run
# Command). Usage:  plugin-host.sh <op> <plugins-root> [args...]
#
# Layout under <plugins-root> (see docs/host-layout.md):
#   <name>/                      live copy (.install-stamp names the operation that placed it,
#                                .complete is the marker written last)
#   .staging/<name>.<stamp>      fully extracted and verified, ready to swap
#   .staging/<name>.<stamp>.partial, .staging/<name>.<stamp>.work   in-progress extraction
#   .previous/<name>.<stamp>     what <stamp> displaced (install/uninstall/restore)
#   .failed/<name>.<stamp>       a rolled-back install, kept as evidence
#   .locks/<name>                lease: stamp, owner, pid, host, expiry
#
# Every operation is idempotent keyed by the stamp (Step Functions retries a step whose Lambda
# died after the host did the work), checks every exit status, and prints exactly one JSON result
# line last on stdout. Distinct exit codes map to typed errors in lambdas/core/host/host-errors.ts.
# Every argument is validated by the TypeScript caller and validated again here.

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

OP=${1:-}

# --- output -----------------------------------------------------------------------------------

json_str() {
  # Escape for a JSON string. Inputs are validated, but messages may quote paths.
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

# valid_entry <name> <stamp>: a `<name>.<stamp>` entry under .staging/.previous/.failed.
valid_entry() {
  valid_name "$1" && valid_stamp "$2"
}

need() {
  # need <validator> <value> <what>
  "$1" "$2" || fail "$EX_USAGE" InvalidInput "invalid $3"
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
}

# Stamp of the operation that placed a directory ("" if none).
stamp_of() {
  if [ -f "$1/.install-stamp" ]; then
    head -c 64 "$1/.install-stamp" | tr -d '\n'
  fi
}

live_is_ours() {
  [ -d "$LIVE" ] && [ ! -L "$LIVE" ] && [ "$(stamp_of "$LIVE")" = "$STAMP" ]
}

# lock_field <file> <key>
lock_field() {
  sed -n "s/^$2=//p" "$1" 2>/dev/null | head -n 1
}

now_epoch() {
  date +%s
}

require_lock() {
  # Fencing: a step only acts while its install holds the plugin's lease.
  holder=$(lock_field "$LOCK" stamp)
  [ "$holder" = "$STAMP" ] || fail "$EX_LOCK_LOST" LockLost "lock on $NAME is not held by $STAMP (holder: ${holder:-none})"
}

with_mutex() {
  # Serialises lock decisions between concurrent operations on this host.
  mkdir -p "$ROOT/.locks" || fail "$EX_IO" HostIoError "cannot create $ROOT/.locks"
  command -v flock >/dev/null 2>&1 || fail "$EX_IO" HostIoError "flock(1) is missing on this host (install util-linux)"
  exec 9>>"$ROOT/.locks/.mutex" || fail "$EX_IO" HostIoError "cannot open lock mutex"
  flock -w 20 9 || fail "$EX_BUSY" LockBusy "timed out waiting for the lock mutex"
}

owner_alive() {
  # A lock is provably abandoned when it was taken on this host by a process that is gone.
  lpid=$(lock_field "$LOCK" pid)
  lhost=$(lock_field "$LOCK" host)
  if [ -n "$lpid" ] && [ "$lpid" != 0 ] && [ "$lhost" = "$(hostname)" ]; then
    [ -d "/proc/$lpid" ] && return 0
    kill -0 "$lpid" 2>/dev/null && return 0
    return 1
  fi
  return 0
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
  with_mutex
  now=$(now_epoch)
  taken=acquired
  if [ -f "$LOCK" ]; then
    lstamp=$(lock_field "$LOCK" stamp)
    lexpires=$(lock_field "$LOCK" expires)
    lowner=$(lock_field "$LOCK" owner)
    if [ "$lstamp" = "$STAMP" ]; then
      # A retry of our own acquisition: already done, nothing to rewrite.
      ok "\"result\":\"held\",\"expires\":${lexpires:-0}"
    elif ! valid_uint "$lexpires" || [ "$lexpires" -le "$now" ]; then
      taken=took-over-expired
    elif ! owner_alive; then
      taken=took-over-dead-owner
    else
      fail "$EX_BUSY" LockBusy "plugin $NAME is busy: locked by $lowner (stamp $lstamp) for another $((lexpires - now))s"
    fi
  fi
  tmp="$ROOT/.locks/.$NAME.$STAMP.tmp"
  printf 'stamp=%s\nowner=%s\npid=%s\nhost=%s\nexpires=%s\n' "$STAMP" "$owner" "$pid" "$(hostname)" "$((now + ttl))" >"$tmp" ||
    fail "$EX_IO" HostIoError "cannot write lock file"
  if ! mv -f "$tmp" "$LOCK"; then
    rm -f "$tmp"
    fail "$EX_IO" HostIoError "cannot install lock file"
  fi
  ok "\"result\":\"$taken\",\"expires\":$((now + ttl))"
}

op_unlock() {
  setup_paths "${1:-}" "${2:-}" "${3:-}"
  with_mutex
  if [ "$(lock_field "$LOCK" stamp)" = "$STAMP" ]; then
    rm -f "$LOCK" || fail "$EX_IO" HostIoError "cannot remove $LOCK"
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

op_stage() {
  setup_paths "${1:-}" "${2:-}" "${3:-}"
  sha=${4:-}
  owner_spec=${5:-}
  strip=${6:-}
  URL=${7:-}
  need valid_sha "$sha" "sha256"
  need valid_owner_spec "$owner_spec" "owner (uid:gid or -)"
  case $strip in 0 | 1) ;; *) fail "$EX_USAGE" InvalidInput "invalid strip-components" ;; esac
  [ -z "$URL" ] || need valid_url "$URL" "url"
  if [ -n "$URL" ] && ! command -v curl >/dev/null 2>&1 && ! command -v wget >/dev/null 2>&1; then
    fail "$EX_NO_DOWNLOADER" FetchFailed "neither curl nor wget is installed on this host; install one of them"
  fi
  require_lock
  if live_is_ours; then ok '"result":"already-live"'; fi
  if [ -d "$STG" ]; then ok '"result":"already-staged"'; fi

  mkdir -p "$ROOT/.staging" || fail "$EX_IO" HostIoError "cannot create $ROOT/.staging"
  # One stage per stamp at a time: a retry after a dropped connection waits here until the
  # earlier attempt (still running on the host until its stdin closes) has cleaned up, so that
  # cleanup cannot delete the retry's files.
  exec 8>>"$STAGE_LOCK" || fail "$EX_IO" HostIoError "cannot open $STAGE_LOCK"
  flock -w 60 8 || fail "$EX_IO" HostIoError "an earlier attempt to stage $NAME at $STAMP is still running"
  if [ -d "$STG" ]; then ok '"result":"already-staged"'; fi
  rm -rf "$PARTIAL" "$WORK" || fail "$EX_IO" HostIoError "cannot clear an earlier partial staging"
  mkdir "$PARTIAL" "$WORK" || fail "$EX_IO" HostIoError "cannot create staging directories"
  mkfifo "$WORK/fifo" || fail "$EX_IO" HostIoError "cannot create fifo"

  # Hash the compressed bytes while they stream into tar: one pass, nothing buffered whole.
  sha256sum <"$WORK/fifo" >"$WORK/sum" &
  sum_pid=$!
  {
    fetch_input
    echo "$?" >"$WORK/fetch.status"
  } | tee "$WORK/fifo" | {
    gzip -dc
    echo "$?" >"$WORK/gzip.status"
    # gzip stops reading at the first corrupt byte: drain the rest, or tee dies of SIGPIPE, the
    # hash never sees every byte and a bad stream is misreported as a failed download.
    cat >/dev/null
  } | {
    # --ignore-zeros: read past end-of-archive blocks, as the validator does, so both see the
    # same entries. The transform drops leading "./" before stripping, so ./dir/x and dir/x
    # both land as x.
    tar -xf - -C "$PARTIAL" --no-same-owner --no-same-permissions --ignore-zeros \
      --transform='s,^\(\./\)*,,' --strip-components="$strip" 2>"$WORK/tar.err"
    echo "$?" >"$WORK/tar.status"
    # tar stops at the end-of-archive blocks: drain the rest so the hash sees every byte.
    cat >/dev/null
  }
  wait "$sum_pid"
  sum_status=$?

  fetch_status=$(cat "$WORK/fetch.status" 2>/dev/null || echo 1)
  gzip_status=$(cat "$WORK/gzip.status" 2>/dev/null || echo 1)
  tar_status=$(cat "$WORK/tar.status" 2>/dev/null || echo 1)
  got=$(cut -d ' ' -f 1 "$WORK/sum" 2>/dev/null)
  if [ "$fetch_status" != 0 ]; then
    rm -rf "$PARTIAL" "$WORK"
    fail "$EX_FETCH" FetchFailed "download of the tarball failed (exit $fetch_status)"
  fi
  if [ "$sum_status" != 0 ] || [ "$got" != "$sha" ]; then
    rm -rf "$PARTIAL" "$WORK"
    fail "$EX_CHECKSUM" TransferCorrupted "sha256 mismatch: expected $sha, received ${got:-nothing}"
  fi
  if [ "$gzip_status" != 0 ] || [ "$tar_status" != 0 ]; then
    err=$(head -c 300 "$WORK/tar.err" 2>/dev/null)
    rm -rf "$PARTIAL" "$WORK"
    fail "$EX_EXTRACT" ExtractFailed "extraction failed (gzip $gzip_status, tar $tar_status): $err"
  fi
  # Defence in depth: the tarball was validated before any host was touched, but never let a
  # link, device or setuid bit reach a live directory even if that check were bypassed.
  odd=$(find "$PARTIAL" ! -type f ! -type d -print 2>/dev/null | head -n 1)
  if [ -n "$odd" ]; then
    rm -rf "$PARTIAL" "$WORK"
    fail "$EX_EXTRACT" ExtractFailed "tarball contains a link or special file: ${odd#"$PARTIAL"/}"
  fi
  chmod -R ug-s "$PARTIAL" || fail "$EX_IO" HostIoError "cannot clear setuid bits"
  printf '%s\n' "$STAMP" >"$PARTIAL/.install-stamp" || fail "$EX_IO" HostIoError "cannot write .install-stamp"
  if [ "$owner_spec" != - ]; then
    chown -R "$owner_spec" "$PARTIAL" || fail "$EX_IO" HostIoError "cannot chown staging to $owner_spec"
  fi
  files=$(find "$PARTIAL" -type f | wc -l | tr -d ' ')
  mv -T "$PARTIAL" "$STG" || fail "$EX_IO" HostIoError "cannot move partial staging into place"
  rm -rf "$WORK"
  rm -f "$STAGE_LOCK"
  ok "\"result\":\"staged\",\"files\":$files"
}

op_snapshot() {
  setup_paths "${1:-}" "${2:-}" "${3:-}"
  require_lock
  if [ -d "$PREV" ]; then ok '"result":"already"'; fi
  if [ ! -e "$LIVE" ] && [ ! -L "$LIVE" ]; then ok '"result":"none"'; fi
  if live_is_ours; then ok '"result":"already-swapped"'; fi
  mkdir -p "$ROOT/.previous" || fail "$EX_IO" HostIoError "cannot create $ROOT/.previous"
  mv -T "$LIVE" "$PREV" || fail "$EX_IO" HostIoError "cannot move live $NAME to .previous"
  ok '"result":"moved"'
}

op_swap() {
  setup_paths "${1:-}" "${2:-}" "${3:-}"
  require_lock
  if live_is_ours; then ok '"result":"already"'; fi
  [ -d "$STG" ] || fail "$EX_STAGING_MISSING" StagingMissing "nothing staged for $NAME at $STAMP"
  if [ -e "$LIVE" ] || [ -L "$LIVE" ]; then
    fail "$EX_LIVE_PRESENT" LivePresent "live $NAME exists and is not from $STAMP; snapshot it first"
  fi
  # The one rename(2) that makes the new version visible.
  mv -T "$STG" "$LIVE" || fail "$EX_IO" HostIoError "rename of staging onto live $NAME failed"
  ok '"result":"swapped"'
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
  require_lock
  live_is_ours || fail "$EX_LIVE_NOT_OURS" LiveNotOurs "live $NAME was not placed by $STAMP"
  if grep -q "\"stamp\":\"$STAMP\"" "$LIVE/.complete" 2>/dev/null; then ok '"result":"already"'; fi
  # The temp file lives outside the live directory (same filesystem), so a reader of live never
  # sees it; the rename into live is still atomic.
  mkdir -p "$ROOT/.staging" || fail "$EX_IO" HostIoError "cannot create $ROOT/.staging"
  tmp="$ROOT/.staging/.complete.$NAME.$STAMP.tmp"
  printf '{"name":"%s","version":"%s","sha256":"%s","stamp":"%s","installedAt":"%s","execution":"%s"}\n' \
    "$NAME" "$version" "$sha" "$STAMP" "$installed_at" "$execution" >"$tmp" ||
    fail "$EX_IO" HostIoError "cannot write marker temp file"
  if [ "$owner_spec" != - ]; then
    chown "$owner_spec" "$tmp" || fail "$EX_IO" HostIoError "cannot chown marker"
  fi
  if ! mv -f "$tmp" "$LIVE/.complete"; then
    rm -f "$tmp"
    fail "$EX_IO" HostIoError "cannot rename marker into place"
  fi
  ok '"result":"marked"'
}

# A directory carrying .restored-from goes back to the snapshot slot it came from.
return_to_previous() {
  from=$(head -c 64 "$1/.restored-from" | tr -d '\n')
  valid_stamp "$from" || fail "$EX_IO" RollbackFailed "$1/.restored-from is corrupt; move it back by hand"
  [ -e "$ROOT/.previous/$NAME.$from" ] && fail "$EX_IO" RollbackFailed ".previous/$NAME.$from already exists; cannot return $1 there"
  rm -f "$1/.restored-from"
  mv -T "$1" "$ROOT/.previous/$NAME.$from" || fail "$EX_IO" RollbackFailed "cannot move $1 back to .previous/$NAME.$from"
}

op_rollback() {
  setup_paths "${1:-}" "${2:-}" "${3:-}"
  holder=$(lock_field "$LOCK" stamp)
  actions=""
  rm -rf "$PARTIAL" "$WORK" || fail "$EX_IO" RollbackFailed "cannot remove partial staging of $STAMP"
  rm -f "$STAGE_LOCK"
  if [ -d "$STG" ]; then
    if [ -f "$STG/.restored-from" ]; then
      return_to_previous "$STG"
      actions="$actions\"returned-staged-snapshot\","
    else
      rm -rf "$STG" || fail "$EX_IO" RollbackFailed "cannot remove staging $STG"
      actions="$actions\"removed-staging\","
    fi
  fi
  if [ -n "$holder" ] && [ "$holder" != "$STAMP" ]; then
    # Someone else holds the plugin now: our staging was ours to clean, live is not.
    ok "\"live\":\"untouched\",\"actions\":[${actions%,}],\"lock\":\"held-by-other\""
  fi
  if live_is_ours; then
    if [ -f "$LIVE/.restored-from" ]; then
      return_to_previous "$LIVE"
      actions="$actions\"returned-live-snapshot\","
    else
      mkdir -p "$ROOT/.failed" || fail "$EX_IO" RollbackFailed "cannot create $ROOT/.failed"
      rm -rf "$FAILED" || fail "$EX_IO" RollbackFailed "cannot clear $FAILED"
      mv -T "$LIVE" "$FAILED" || fail "$EX_IO" RollbackFailed "cannot move failed live $NAME to .failed"
      actions="$actions\"moved-live-to-failed\","
    fi
  fi
  live=untouched
  if [ ! -e "$LIVE" ] && [ ! -L "$LIVE" ] && [ -d "$PREV" ]; then
    mv -T "$PREV" "$LIVE" || fail "$EX_IO" RollbackFailed "cannot move .previous/$NAME.$STAMP back to live"
    actions="$actions\"restored-previous\","
    live=restored
  elif [ ! -e "$LIVE" ]; then
    live=absent
  fi
  lock=free
  if [ "$holder" = "$STAMP" ]; then
    rm -f "$LOCK" || fail "$EX_IO" RollbackFailed "cannot release lock $LOCK"
    lock=released
  fi
  ok "\"live\":\"$live\",\"actions\":[${actions%,}],\"lock\":\"$lock\""
}

op_restore() {
  # Stages the newest snapshot (other than our own) as if it had just been extracted, so that
  # snapshot + swap finish the job exactly as they do for an install.
  setup_paths "${1:-}" "${2:-}" "${3:-}"
  require_lock
  if [ -d "$STG" ]; then ok "\"result\":\"already\",\"from\":\"$(head -c 64 "$STG/.restored-from" | tr -d '\n')\""; fi
  if live_is_ours; then ok '"result":"already-live"'; fi
  target=""
  if [ -d "$ROOT/.previous" ]; then
    for entry in "$ROOT/.previous/$NAME".*; do
      [ -d "$entry" ] || continue
      s=${entry##*/}
      s=${s#"$NAME".}
      valid_stamp "$s" || continue
      [ "$s" = "$STAMP" ] && continue
      if [ -z "$target" ] || [ "$(expr "$s" \> "$target")" = 1 ]; then target=$s; fi
    done
  fi
  [ -n "$target" ] || fail "$EX_NOTHING_TO_RESTORE" NothingToRestore "no snapshot of $NAME to roll back to"
  src="$ROOT/.previous/$NAME.$target"
  # Tag before moving: a kill between the two leaves a tagged snapshot, never an untagged stage.
  printf '%s\n' "$target" >"$src/.restored-from" || fail "$EX_IO" HostIoError "cannot tag snapshot"
  printf '%s\n' "$STAMP" >"$src/.install-stamp" || fail "$EX_IO" HostIoError "cannot tag snapshot"
  mkdir -p "$ROOT/.staging" || fail "$EX_IO" HostIoError "cannot create $ROOT/.staging"
  mv -T "$src" "$STG" || fail "$EX_IO" HostIoError "cannot stage snapshot $target"
  ok "\"result\":\"staged\",\"from\":\"$target\""
}

op_uninstall() {
  setup_paths "${1:-}" "${2:-}" "${3:-}"
  require_lock
  if [ -d "$PREV" ] && [ ! -e "$LIVE" ]; then ok '"result":"already"'; fi
  if [ ! -e "$LIVE" ] && [ ! -L "$LIVE" ]; then
    fail "$EX_NOT_INSTALLED" NotInstalled "plugin $NAME is not installed"
  fi
  mkdir -p "$ROOT/.previous" || fail "$EX_IO" HostIoError "cannot create $ROOT/.previous"
  mv -T "$LIVE" "$PREV" || fail "$EX_IO" HostIoError "cannot move live $NAME to .previous"
  ok '"result":"moved"'
}

op_list() {
  ROOT=${1:-}
  need valid_root "$ROOT" "plugins root"
  items=""
  if [ -d "$ROOT" ]; then
    for dir in "$ROOT"/*; do
      [ -d "$dir" ] || continue
      n=${dir##*/}
      valid_name "$n" || continue
      complete=false
      marker=""
      if [ -f "$dir/.complete" ]; then
        complete=true
        marker=$(head -c 4096 "$dir/.complete" | base64 | tr -d '\n')
      fi
      items="$items{\"name\":\"$n\",\"complete\":$complete,\"stamp\":\"$(json_str "$(stamp_of "$dir")")\",\"marker\":\"$marker\"},"
    done
  fi
  snaps=""
  if [ -d "$ROOT/.previous" ]; then
    for dir in "$ROOT/.previous"/*; do
      [ -d "$dir" ] || continue
      e=${dir##*/}
      valid_entry "${e%.*}" "${e##*.}" || continue
      pinned=false
      [ -e "$dir/.pinned" ] && pinned=true
      snaps="$snaps{\"name\":\"${e%.*}\",\"stamp\":\"${e##*.}\",\"pinned\":$pinned},"
    done
  fi
  locks=""
  if [ -d "$ROOT/.locks" ]; then
    now=$(now_epoch)
    for f in "$ROOT/.locks"/*; do
      [ -f "$f" ] || continue
      n=${f##*/}
      valid_name "$n" || continue
      ls_stamp=$(lock_field "$f" stamp)
      ls_expires=$(lock_field "$f" expires)
      valid_stamp "$ls_stamp" || continue
      valid_uint "$ls_expires" || continue
      [ "$ls_expires" -gt "$now" ] || continue
      locks="$locks{\"name\":\"$n\",\"stamp\":\"$ls_stamp\",\"expires\":$ls_expires},"
    done
  fi
  ok "\"plugins\":[${items%,}],\"previous\":[${snaps%,}],\"locks\":[${locks%,}]"
}

# sweep_entry <kind> <path> <rel>: delete (or, dry-run, only report) one entry. <rel> is built from
# validated names and stamps only, so it needs no JSON escaping (and the sweep forks less).
sweep_entry() {
  kb=$(du -sk "$2" 2>/dev/null)
  kb=${kb%%[!0-9]*}
  bytes=$(( ${kb:-0} * 1024 ))
  if [ "$DRY" = 0 ]; then
    rm -rf "$2" || fail "$EX_IO" HostIoError "cannot delete $3"
  fi
  DELETED="$DELETED{\"kind\":\"$1\",\"path\":\"$3\",\"bytes\":$bytes},"
  TOTAL=$((TOTAL + bytes))
  eval "COUNT_$1=\$((COUNT_$1 + 1))"
}

# lease_expiry <lock-file>: LE = its first expires= value ("" if none), as lock_field reads it,
# without forking (the sweep asks once per staging/failed entry and per lock).
lease_expiry() {
  LE=""
  [ -f "$1" ] || return 0
  while IFS= read -r le_line || [ -n "$le_line" ]; do
    case $le_line in
      expires=*)
        LE=${le_line#expires=}
        return 0
        ;;
    esac
  done <"$1"
}

lock_active() {
  # lock_active <name>: a lease that has not expired protects the plugin's staging and failures.
  # sh has no locals: these names must not be the callers' loop variables (e, d, f).
  la_file="$ROOT/.locks/$1"
  [ -f "$la_file" ] || return 1
  lease_expiry "$la_file"
  valid_uint "$LE" && [ "$LE" -gt "$NOW" ]
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
  [ -d "$ROOT" ] || ok '"dryRun":'"$([ "$DRY" = 1 ] && echo true || echo false)"',"deleted":[],"counts":{"previous":0,"staging":0,"failed":0,"locks":0},"bytes":0'

  if [ -d "$ROOT/.previous" ]; then
    # Listed as "<name>/<stamp>" and sorted in reverse: "/" appears in no name, so each plugin's
    # snapshots form one run, newest first, and the first KEEP seen per plugin are the ones kept.
    # (Sorting "<name>.<stamp>" would not: p.202603.<stamp> sorts between p.20260301… and
    # p.20260228…, splitting p's run and keeping more than KEEP of it.) Only valid entries are
    # listed: the unquoted loop below must not split a name like "x.<stamp> y" into an entry that
    # does not exist and counts against KEEP (nor glob-expand one).
    listing=$(for d in "$ROOT/.previous"/*; do
      e=${d##*/}
      [ -d "$d" ] && valid_entry "${e%.*}" "${e##*.}" && printf '%s/%s\n' "${e%.*}" "${e##*.}"
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
      [ -e "$ROOT/.previous/$e/.pinned" ] && continue
      older "$s" "$prev_cutoff" || continue
      sweep_entry previous "$ROOT/.previous/$e" ".previous/$e"
    done
  fi

  if [ -d "$ROOT/.staging" ]; then
    for d in "$ROOT/.staging"/*; do
      [ -e "$d" ] || continue
      e=${d##*/}
      base=${e%.partial}
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
    # and the sweep must not delete the lease it has just written. Every lease is written under
    # the mutex, so it exists wherever there is a lease to delete; the sweep does not create it.
    if [ "$DRY" = 0 ] && [ -f "$ROOT/.locks/.mutex" ]; then with_mutex; fi
    for f in "$ROOT/.locks"/*; do
      [ -f "$f" ] || continue
      n=${f##*/}
      valid_name "$n" || continue
      lease_expiry "$f"
      if valid_uint "$LE" && [ "$LE" -gt "$NOW" ]; then continue; fi
      sweep_entry locks "$f" ".locks/$n"
    done
  fi

  dry=false
  [ "$DRY" = 1 ] && dry=true
  ok "\"dryRun\":$dry,\"deleted\":[${DELETED%,}],\"counts\":{\"previous\":$COUNT_previous,\"staging\":$COUNT_staging,\"failed\":$COUNT_failed,\"locks\":$COUNT_locks},\"bytes\":$TOTAL"
}

[ $# -ge 1 ] && shift
case $OP in
  lock) op_lock "$@" ;;
  unlock) op_unlock "$@" ;;
  stage) op_stage "$@" ;;
  snapshot) op_snapshot "$@" ;;
  swap) op_swap "$@" ;;
  mark) op_mark "$@" ;;
  rollback) op_rollback "$@" ;;
  restore) op_restore "$@" ;;
  uninstall) op_uninstall "$@" ;;
  list) op_list "$@" ;;
  sweep) op_sweep "$@" ;;
  *) fail "$EX_USAGE" InvalidInput "unknown operation (use lock, unlock, stage, snapshot, swap, mark, rollback, restore, uninstall, list or sweep)" ;;
esac
