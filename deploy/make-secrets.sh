#!/bin/sh
# Writes the random passwords docker-compose.yml mounts as secrets, one file each, into
# deploy/secrets/ (or DEPLOY_SECRETS_DIR). A file that exists already is kept: run it again
# safely, and to change a password, edit or delete its file first (docs/deployment.md).
#
#   sh deploy/make-secrets.sh
#
# The directory is made private to its owner (0700); the files are 0644 because the containers'
# users (the service's uid 1883 among them) read them through their mounts, not through the
# directory.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
dir=${DEPLOY_SECRETS_DIR:-$here/secrets}

umask 077
mkdir -p "$dir"
chmod 700 "$dir"

random_password() {
    # 32 random bytes as 64 hex characters: nothing a URL, a shell or a config file must escape
    od -An -N32 -tx1 /dev/urandom | tr -d ' \n'
}

for name in postgres_password mqtt_service_password mqtt_healthcheck_password; do
    file=$dir/$name
    if [ -e "$file" ]; then
        echo "kept    $file"
        continue
    fi
    random_password > "$file.tmp"
    chmod 644 "$file.tmp"
    mv "$file.tmp" "$file"
    echo "created $file"
done
