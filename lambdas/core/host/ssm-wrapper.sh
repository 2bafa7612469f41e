#!/bin/sh
# ssm-wrapper.sh: runs one host step under SSM Run Command so that its result line survives.
#
#   ssm-wrapper.sh <command> [args...]      (lambdas/core/host/ssm-host.ts passes
#                                            sh -c '<plugin-host.sh>' plugin-host.sh <op> <args>)
#
# SSM keeps only the FIRST 24,000 characters of a command's stdout (8,000 of stderr), and the
# host script prints its one JSON result line LAST. So the step's stdout goes to a temp file and
# only its last line is printed; a line longer than 20,000 characters is printed as
# "PLUGINHOST-GZ64:" + gzip | base64 on one line, which the adapter decodes. Only the tail of
# stderr is kept. The exit status is the step's, so SSM's ResponseCode carries it.
set -u

dir=$(mktemp -d "${TMPDIR:-/tmp}/plugin-host-ssm.XXXXXX") || {
  echo "ssm-wrapper: cannot create a temporary directory" >&2
  exit 21
}
trap 'rm -rf "$dir"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

"$@" >"$dir/out" 2>"$dir/err"
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
