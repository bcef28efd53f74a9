# The butter command: the one-shot `butter principals` that makes each
# service's Kafka login in deploy/compose.yaml and deploy/k8s, and any other
# client command against the platform.
# Built by deploy/build-images.sh (make service-images) from a staged
# context: the static binary, rootfs/, data/ and the host's CA bundle.
# Nothing is pulled: FROM scratch, one static CGO_ENABLED=0 binary, non-root.
FROM scratch
COPY rootfs/ /
COPY --chown=65532:65532 data/ /data/
COPY bin/butter /butter
USER 65532:65532
WORKDIR /data
ENTRYPOINT ["/butter"]
