#!/usr/bin/env bash
# build.sh builds the images the docker runtime runs fnbox instances in,
# locally; nothing is pulled from a registry (docs/docker.md):
#
#   butter-fnbox:latest   FROM scratch + static fnbox     (go, http, exec)
#   butter-node:latest    Debian bookworm + nodejs + fnbox (node)
#   butter-python:latest  Debian bookworm + python3 + fnbox (python)
#
# The Debian bases (butter-base-node:bookworm, butter-base-python:bookworm)
# are made with mmdebstrap | docker import only when their tag is missing:
# once per machine, a minute or two each. The fnbox images are rebuilt only
# when the fnbox binary changed (its sha256 is the image label
# butter.fnbox.sha256), so a rerun with nothing changed takes seconds.
#
# Usage: deploy/images/build.sh [fnbox|node|python ...]   (default: all)
# Env:   DEBIAN_MIRROR (default http://deb.debian.org/debian),
#        DEBIAN_SUITE (default bookworm), GO (default go).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
suite="${DEBIAN_SUITE:-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
go="${GO:-go}"
export DOCKER_BUILDKIT=0

command -v docker >/dev/null || { echo "build.sh: docker is not installed" >&2; exit 1; }

# One build at a time: test packages run in parallel and each makes sure
# of its images; the second waits, then finds them up to date.
exec 9>"${TMPDIR:-/tmp}/butter-build-images.lock"
flock 9

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT

# One static fnbox for every image.
(cd "$root/fnbox" && CGO_ENABLED=0 "$go" build -trimpath -ldflags '-s -w' -o "$ctx/fnbox" ./cmd/fnbox)
sum="$(sha256sum "$ctx/fnbox" | cut -d' ' -f1)"

have() { docker image inspect "$1" >/dev/null 2>&1; }
label() { docker image inspect --format '{{index .Config.Labels "butter.fnbox.sha256"}}' "$1" 2>/dev/null || true; }

# base NAME PACKAGE: butter-base-NAME:SUITE, a minbase Debian with PACKAGE.
base() {
	local tag="butter-base-$1:$suite"
	if have "$tag"; then return; fi
	command -v mmdebstrap >/dev/null || { echo "build.sh: $tag is missing and mmdebstrap is not installed (apt-get install mmdebstrap)" >&2; exit 1; }
	echo "build.sh: making $tag with mmdebstrap (once)" >&2
	mmdebstrap --quiet --variant=minbase --include="$2" \
		--customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
		"$suite" - "$mirror" | docker import - "$tag"
}

# image NAME DOCKERFILE [BASE]: butter-NAME:latest, unless its fnbox is this one.
image() {
	local tag="butter-$1:latest"
	if [ "$(label "$tag")" = "$sum" ]; then
		echo "build.sh: $tag is up to date" >&2
		return
	fi
	cp "$here/$2" "$ctx/Dockerfile"
	local args=(--quiet --label "butter.fnbox.sha256=$sum" --label "butter.image=$1" -t "$tag")
	[ -n "${3:-}" ] && args+=(--build-arg "BASE=$3")
	# The legacy builder (no BuildKit, nothing pulled) warns on stderr;
	# show its output only when the build fails.
	if ! docker build "${args[@]}" "$ctx" >"$ctx/build.log" 2>&1; then
		cat "$ctx/build.log" >&2
		exit 1
	fi
	echo "build.sh: built $tag" >&2
}

want=("$@")
[ ${#want[@]} -eq 0 ] && want=(fnbox node python)
for w in "${want[@]}"; do
	case "$w" in
	fnbox) image fnbox Dockerfile.fnbox ;;
	node) base node nodejs && image node Dockerfile.runtime "butter-base-node:$suite" ;;
	python) base python python3 && image python Dockerfile.runtime "butter-base-python:$suite" ;;
	*) echo "build.sh: unknown image $w (fnbox, node, python)" >&2; exit 2 ;;
	esac
done
