#!/bin/sh
# Prints a fresh deploy/.env for deploy/compose.yaml: the broker's admin
# password, the deployer's API token, each service's Kafka password and the
# Docker socket's group.
#
#   deploy/secrets.sh > deploy/.env && chmod 600 deploy/.env
#
# Keep the file: the deployer's clients need the token. Changing a password
# later is fine: the broker takes a new admin password at its next start,
# and `principals` sets the services' passwords at every `up`.
set -eu
rand() { head -c 32 /dev/urandom | base64 | tr -d '/+=\n' | cut -c1-40; }
echo "BUTTER_ADMIN_PASSWORD=$(rand)"
echo "BUTTER_TOKEN=$(rand)"
for s in DEPLOYER GATEWAY TIMER LOADMON TRACER BRIDGE; do echo "BUTTER_${s}_PASSWORD=$(rand)"; done
echo "DOCKER_GID=$(stat -c %g /var/run/docker.sock 2>/dev/null || echo 999)"
