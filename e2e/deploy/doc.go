// Package deploy tests the platform's container deployment files in
// deploy/: the service images (deploy/docker, make service-images), the
// compose file (checked by docker-compose and brought up on a private
// network) and the Kubernetes manifests (decoded strictly into the
// k8s.io/api types and cross-checked). It has no code of its own.
package deploy
