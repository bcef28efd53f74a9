#!/bin/sh
# Prints a fresh deploy/.env for deploy/compose.yaml: the broker's admin
# password, the deployer's API token and the Docker socket's group.
#
#   deploy/secrets.sh > deploy/.env && chmod 600 deploy/.env
#
# Keep the file: the broker's volume holds users made with this password,
# and the deployer's clients need the token. Changing the password later is
# fine (the broker takes the new one at its next start).
set -eu
rand() { head -c 32 /dev/urandom | base64 | tr -d '/+=\n' | cut -c1-40; }
echo "BUTTER_ADMIN_PASSWORD=$(rand)"
echo "BUTTER_TOKEN=$(rand)"
echo "DOCKER_GID=$(stat -c %g /var/run/docker.sock 2>/dev/null || echo 999)"
