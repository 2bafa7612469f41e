#!/bin/sh
# ssm-document.sh: the one script of the stack's own SSM Command document (ssm-document.ts builds
# the document from this file; infra/ deploys it as AWS::SSM::Document). The Lambda roles may
# send ssm:SendCommand with this document only, so what they can make root do on a workspace
# instance is exactly what this script allows:
#
#   operation  one of plugin-host.sh's operations, or fleet-sweep
#   arguments  the operation's arguments, each base64("x" + value), separated by spaces
#
# Both arrive as environment variables (interpolationType ENV_VAR: SSM_operation,
# SSM_arguments). SSM agents older than 3.3.2746.0 set no such variables; the values are then
# interpolated into the text below, which is safe only because the document's allowedPattern
# admits nothing but [a-z-] and base64 characters.
#
# - The host script travels inside the document gzip+base64 and is checked against its sha256
#   before it runs: the same bytes every transport runs.
# - Host steps may name only this document's plugins roots (the runtimes' roots on a real host);
#   a fleet sweep names none, it sweeps those roots where they exist.
# - SSM keeps only the FIRST 24,000 characters of stdout (8,000 of stderr) and the host script
#   prints its one JSON result line LAST, so a step's stdout goes to a temp file and only its last
#   line is printed; a line longer than 20,000 characters is printed as "PLUGINHOST-GZ64:" +
#   gzip | base64 on one line, which ssm-host.ts decodes. The exit status is the step's, so SSM's
#   ResponseCode carries it.
# - A fleet sweep prints one compact line per root (ListCommandInvocations keeps 2,500 characters):
#     PLUGINSWEEP {"root":"/configs/plugins","ok":true,"counts":{…},"bytes":N}
#     PLUGINSWEEP {"root":"/configs/plugins","ok":false,"exit":21,"code":"HostIoError","message":"…"}
#   then PLUGINSWEEP-END {"roots":N,"failed":N}, and exits 1 when a root failed, so SSM counts
#   the instance against MaxErrors.
set -u
export LC_ALL=C

# Filled in when the document is built (ssm-document.ts).
script_gz64='@SCRIPT_GZ64@'
script_sha256='@SCRIPT_SHA256@'
# Space-separated plugins roots, and where they are: '' on a real host, '.' (the command's
# working directory) in tests, where every fake instance is a directory.
roots='@ROOTS@'
root_prefix='@ROOT_PREFIX@'

if [ -z "${SSM_operation+x}" ]; then
  SSM_operation='{{ operation }}'
  SSM_arguments='{{ arguments }}'
fi

op=unknown
result_fail() {
  # result_fail <exit> <Code> <message>: a result line as plugin-host.sh prints it
  printf '{"ok":false,"op":"%s","code":"%s","message":"%s"}\n' "$op" "$2" "$3"
  exit "$1"
}

case $SSM_operation in
  lock | unlock | stage | swap | snapshot | verify | mark | rollback | restore | uninstall | list | sweep | fleet-sweep) op=$SSM_operation ;;
  *) result_fail 10 InvalidInput "unknown operation" ;;
esac

# Arguments: word splitting on purpose (the words are base64, no glob characters; set -f anyway).
set -f
set --
for word in ${SSM_arguments-}; do
  case $word in
    *[!A-Za-z0-9+/=]*) result_fail 10 InvalidInput "an argument is not base64" ;;
  esac
  value=$(printf '%s' "$word" | base64 -d 2>/dev/null && printf .) || result_fail 10 InvalidInput "an argument is not valid base64"
  value=${value%.}
  case $value in
    x*) ;;
    *) result_fail 10 InvalidInput "an argument lacks its x prefix" ;;
  esac
  set -- "$@" "${value#x}"
done
set +f

prefix=$root_prefix
if [ "$prefix" = . ]; then prefix=$(pwd -P) || result_fail 21 HostIoError "cannot resolve the working directory"; fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/plugin-host-ssm.XXXXXX") || result_fail 21 HostIoError "cannot create a temporary directory"
trap 'rm -rf "$dir"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

script=$dir/plugin-host.sh
printf '%s' "$script_gz64" | base64 -d | gzip -dc >"$script" || result_fail 21 HostIoError "cannot unpack the host script into $dir"
sum=$(sha256sum "$script") || result_fail 25 HostToolMissing "sha256sum failed"
[ "${sum%% *}" = "$script_sha256" ] || result_fail 21 HostIoError "the unpacked host script does not match its sha256"

fleet_sweep() {
  # fleet_sweep <prevCutoff> <keep> <stagingCutoff> <failedCutoff> <now> <dryRun>
  [ $# -eq 6 ] || result_fail 10 InvalidInput "fleet-sweep takes 6 arguments"
  swept=0
  bad=0
  for root in $roots; do
    root_dir=$prefix$root
    [ -d "$root_dir" ] || continue
    swept=$((swept + 1))
    out=$(sh "$script" sweep "$root_dir" "$@" 2>/dev/null)
    status=$?
    line=$(printf '%s\n' "$out" | tail -n 1)
    summary=$(printf '%s\n' "$line" | sed -n 's/^{"ok":true,"op":"sweep",.*,"counts":\({[^}]*}\),"bytes":\([0-9]*\)}$/"counts":\1,"bytes":\2/p')
    if [ "$status" -eq 0 ] && [ -n "$summary" ]; then
      printf 'PLUGINSWEEP {"root":"%s","ok":true,%s}\n' "$root" "$summary"
      continue
    fi
    bad=$((bad + 1))
    code=$(printf '%s\n' "$line" | sed -n 's/^{"ok":false,"op":"[a-z]*","code":"\([A-Za-z]*\)".*/\1/p')
    message=$(printf '%s\n' "$line" | sed -n 's/^{"ok":false,.*,"message":"\(.*\)"}$/\1/p' | tr -d '\\"' | cut -c 1-200)
    if [ -z "$code" ]; then
      code=HostStepFailed
      message="sweep exited with status $status without a result line"
    fi
    printf 'PLUGINSWEEP {"root":"%s","ok":false,"exit":%s,"code":"%s","message":"%s"}\n' "$root" "$status" "$code" "$message"
  done
  printf 'PLUGINSWEEP-END {"roots":%s,"failed":%s}\n' "$swept" "$bad"
  [ "$bad" -eq 0 ]
}

if [ "$op" = fleet-sweep ]; then
  fleet_sweep "$@"
  exit $?
fi

allowed=0
for root in $roots; do
  if [ "${1-}" = "$prefix$root" ]; then allowed=1; fi
done
[ "$allowed" = 1 ] || result_fail 10 InvalidInput "invalid plugins root: this document works only in $roots"

sh "$script" "$op" "$@" >"$dir/out" 2>"$dir/err"
status=$?

line=$(tail -n 1 "$dir/out")
if [ "${#line}" -gt 20000 ]; then
  printf 'PLUGINHOST-GZ64:'
  printf '%s\n' "$line" | gzip -c | base64 | tr -d '\n'
  printf '\n'
else
  printf '%s\n' "$line"
fi
tail -c 2000 "$dir/err" >&2
exit "$status"
