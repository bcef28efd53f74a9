#!/usr/bin/env bash
# Builds the platform's service images from static binaries, locally:
# nothing is pulled (every image is FROM scratch) and the classic builder is
# used (DOCKER_BUILDKIT=0), so this works on a machine without a registry.
#
#   deploy/build-images.sh                    # every service
#   deploy/build-images.sh broker gateway     # some
#   BUTTER_IMAGE_TAG=1.0 deploy/build-images.sh
#
# Images are butter-<service>:<tag> (tag default dev; butter-cli holds the
# butter command, for `butter principals`), the names that
# deploy/compose.yaml and deploy/k8s use. Rebuilding with unchanged sources
# reuses Go's build cache and Docker's layer cache (-trimpath binaries are
# byte-identical), so a second run takes seconds.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
tag=${BUTTER_IMAGE_TAG:-dev}
go=${GO:-go}
out=${BUTTER_STATIC_BIN:-$repo/bin/static}

# service → "module package" of its binaries; the deployer carries fnbox for
# its process runtime.
declare -A pkgs=(
	[broker]="broker-bridge/cmd/butter-broker"
	[deployer]="deployer/cmd/butter-deployer fnbox/cmd/fnbox"
	[gateway]="gateway/cmd/butter-gateway"
	[timer]="timer/cmd/butter-timer"
	[loadmon]="loadmon/cmd/butter-loadmon"
	[tracer]="tracer/cmd/butter-tracer"
	[bridge]="broker-bridge/cmd/butter-bridge"
	[cli]="cli/cmd/butter"
)
services=("$@")
[ ${#services[@]} -gt 0 ] || services=(broker deployer gateway timer loadmon tracer bridge cli)

command -v docker >/dev/null || { echo "build-images: docker is not installed" >&2; exit 1; }
mkdir -p "$out"
# One build at a time: test packages run this in parallel, and a binary
# copied while another build writes it would be torn.
exec 9>"$out/.lock"
flock 9
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp -r "$repo/deploy/docker/rootfs" "$ctx/rootfs"
cp -r "$repo/deploy/docker/data" "$ctx/data"
mkdir -p "$ctx/rootfs/tmp" "$ctx/rootfs/etc/ssl/certs" "$ctx/bin"
chmod 1777 "$ctx/rootfs/tmp"
# The host's CA bundle, for TLS to an existing Kafka cluster with a public
# CA (BUTTER_TLS_CA names a private one).
ca=/etc/ssl/certs/ca-certificates.crt
if [ -f "$ca" ]; then cp "$ca" "$ctx/rootfs/etc/ssl/certs/"; else : >"$ctx/rootfs/etc/ssl/certs/ca-certificates.crt"; fi

for s in "${services[@]}"; do
	[ -n "${pkgs[$s]:-}" ] || { echo "build-images: unknown service $s (want: ${!pkgs[*]})" >&2; exit 1; }
	skip=
	for p in ${pkgs[$s]}; do
		if [ ! -d "$repo/$p" ]; then
			echo "build-images: skip $s: $p does not exist yet" >&2
			skip=1
			break
		fi
		mod=${p%%/cmd/*}
		bin=$(basename "$p")
		(cd "$repo/$mod" && CGO_ENABLED=0 "$go" build -trimpath -ldflags='-s -w' -o "$out/$bin" "./cmd/$bin")
		cp "$out/$bin" "$ctx/bin/$bin"
	done
	[ -z "$skip" ] || continue
	if ! log=$(DOCKER_BUILDKIT=0 docker build -q --label butter.image="$s" -t "butter-$s:$tag" \
		-f "$repo/deploy/docker/$s.Dockerfile" "$ctx" 2>&1); then
		echo "$log" >&2
		exit 1
	fi
	echo "butter-$s:$tag"
done
