#!/bin/sh
# One-shot MinIO setup for docker-compose.yml (runs in the minio/mc image):
# the warehouse bucket, and a platform user limited to that bucket (never the root account).
# Idempotent: a re-run after `docker compose up` changes nothing.
set -eu
bucket="${MOVESMART_S3_BUCKET:-movesmart}"
mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "local/$bucket"
sed "s/__BUCKET__/$bucket/g" /movesmart/platform-policy.json > /tmp/platform-policy.json
mc admin policy create local movesmart-platform /tmp/platform-policy.json
if ! mc admin user info local "$MOVESMART_S3_ACCESS_KEY_ID" >/dev/null 2>&1; then
  mc admin user add local "$MOVESMART_S3_ACCESS_KEY_ID" "$MOVESMART_S3_SECRET_ACCESS_KEY"
fi
mc admin policy attach local movesmart-platform --user "$MOVESMART_S3_ACCESS_KEY_ID" 2>/dev/null || true
echo "bucket $bucket ready; user $MOVESMART_S3_ACCESS_KEY_ID limited to it"
