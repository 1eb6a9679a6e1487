#!/bin/sh
# minio-init (the minio/mc image) runs this on every `docker compose up`; each step is idempotent.
# The raw bucket, and one MinIO user per job, each with a policy that allows only that job:
# - the collector (internet-facing) may write objects under trackway-raw/segment/ and nothing else:
#   no reads, no deletes (s3:ListBucket only because HeadBucket, its start-up check, needs it);
# - the loader may list and read the bucket, never write;
# - the privacy DAG (its own Airflow connection) may read, rewrite and delete objects, and their old
#   versions, under trackway-raw/segment/ only: erasure rewrites raw objects without a person's lines.
# The root user stays with MinIO and this script. Re-running with a new secret key rotates it.
# If TRACKWAY_RAW_URL names another bucket or prefix, change the policy files beside this one.
set -eu
here=$(dirname "$0")
mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing local/trackway-raw

grant() {  # user secret policy
    mc admin policy create local "$3" "$here/$3-policy.json"
    mc admin user add local "$1" "$2"
    mc admin user info local "$1" --json | grep -q "\"$3\"" || mc admin policy attach local "$3" --user "$1"
}
grant "$MINIO_COLLECTOR_ACCESS_KEY" "$MINIO_COLLECTOR_SECRET_KEY" trackway-collector
grant "$MINIO_LOADER_ACCESS_KEY" "$MINIO_LOADER_SECRET_KEY" trackway-loader
grant "$MINIO_PRIVACY_ACCESS_KEY" "$MINIO_PRIVACY_SECRET_KEY" trackway-privacy
