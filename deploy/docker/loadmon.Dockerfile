# The load monitor: admin endpoints on :8084.
# Built by deploy/build-images.sh (make service-images) from a staged
# context: the static binary, rootfs/, data/ and the host's CA bundle. Nothing is
# pulled: FROM scratch, one static CGO_ENABLED=0 binary, non-root.
FROM scratch
COPY rootfs/ /
COPY --chown=65532:65532 data/ /data/
COPY bin/butter-loadmon /butter-loadmon
USER 65532:65532
WORKDIR /data
ENV BUTTER_LOADMON_ADDR=0.0.0.0:8084
EXPOSE 8084
ENTRYPOINT ["/butter-loadmon"]
