# The tracer: API, web UI and admin endpoints on :8082, its index (SQLite,
# pure Go) on /data/tracer; the index is rebuilt from the topics when lost.
# Built by deploy/build-images.sh (make service-images) from a staged
# context: the static binary, rootfs/, data/ and the host's CA bundle.
# Nothing is pulled: FROM scratch, one static CGO_ENABLED=0 binary, non-root.
FROM scratch
COPY rootfs/ /
COPY --chown=65532:65532 data/ /data/
COPY bin/butter-tracer /butter-tracer
USER 65532:65532
WORKDIR /data
ENV BUTTER_TRACER_ADDR=0.0.0.0:8082 BUTTER_TRACER_DATA=/data/tracer
EXPOSE 8082
VOLUME /data
ENTRYPOINT ["/butter-tracer"]
