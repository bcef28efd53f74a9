# The HTTP gateway: routes and admin endpoints on :8080.
# Built by deploy/build-images.sh (make service-images) from a staged
# context: the static binary, rootfs/, data/ and the host's CA bundle. Nothing is
# pulled: FROM scratch, one static CGO_ENABLED=0 binary, non-root.
FROM scratch
COPY rootfs/ /
COPY --chown=65532:65532 data/ /data/
COPY bin/butter-gateway /butter-gateway
USER 65532:65532
WORKDIR /data
ENV BUTTER_GATEWAY_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/butter-gateway"]
