// Package containers holds end-to-end tests of the platform as containers,
// run with testcontainers-go on a private Docker network: the service
// images of deploy/ (built once by TestMain with deploy/build-images.sh),
// the broker on a named volume, its container killed and replaced
// mid-traffic. The tests fail, not skip, without a Docker engine. It has no
// code of its own.
package containers
