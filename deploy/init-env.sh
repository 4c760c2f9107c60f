#!/bin/sh
# Create deploy/.env from deploy/.env.example with a fresh random value for every empty
# secret. Never overwrites an existing deploy/.env. The secrets exist only in that file
# (git-ignored, mode 600) and in the containers that need them.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
target="$here/.env"
if [ -e "$target" ]; then
  echo "$target exists; not touching it"
  exit 0
fi
umask 077
while IFS= read -r line; do
  case "$line" in
    POSTGRES_PASSWORD=|MINIO_ROOT_PASSWORD=|MOVESMART_S3_SECRET_ACCESS_KEY=)
      printf '%s%s\n' "$line" "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" ;;
    *) printf '%s\n' "$line" ;;
  esac
done < "$here/.env.example" > "$target"
echo "wrote $target (random secrets; keep it out of git)"
