# The bridge: vCenter, webhook and Kafka sources, HTTP and Kafka sinks;
# webhooks and admin endpoints on :8085.
# Built by deploy/build-images.sh (make service-images) from a staged
# context: the static binary, rootfs/, data/ and the host's CA bundle. Nothing is
# pulled: FROM scratch, one static CGO_ENABLED=0 binary, non-root.
FROM scratch
COPY rootfs/ /
COPY --chown=65532:65532 data/ /data/
COPY bin/butter-bridge /butter-bridge
USER 65532:65532
WORKDIR /data
ENV BUTTER_BRIDGE_ADDR=0.0.0.0:8085
EXPOSE 8085
ENTRYPOINT ["/butter-bridge"]
