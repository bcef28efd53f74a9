# The embedded Kafka-protocol broker (kfake) with its data on /data.
# Listen on the name other containers reach it by (BUTTER_BROKER_ADDR,
# e.g. broker:9092 in compose, $(POD_IP):9092 in Kubernetes): the broker
# advertises the address it listens on.
# Built by deploy/build-images.sh (make service-images) from a staged
# context: the static binary, rootfs/, data/ and the host's CA bundle. Nothing is
# pulled: FROM scratch, one static CGO_ENABLED=0 binary, non-root.
FROM scratch
COPY rootfs/ /
COPY --chown=65532:65532 data/ /data/
COPY bin/butter-broker /butter-broker
USER 65532:65532
WORKDIR /data
ENV BUTTER_DATA=/data BUTTER_BRIDGE_ADMIN=0.0.0.0:8085
EXPOSE 9092 8085
VOLUME /data
ENTRYPOINT ["/butter-broker"]
