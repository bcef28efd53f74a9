# The deployer: control-plane API and admin endpoints on :8081, data (the
# secret key, go build cache) on /data. It holds fnbox beside it so the
# process runtime works in the container too (exec, http and go-free
# functions; node and python need --runtime docker, which starts fnbox
# containers through the Docker socket).
# Built by deploy/build-images.sh (make service-images) from a staged
# context: the static binaries, rootfs/, data/ and the host's CA bundle. Nothing is
# pulled: FROM scratch, static CGO_ENABLED=0 binaries, non-root.
FROM scratch
COPY rootfs/ /
COPY --chown=65532:65532 data/ /data/
COPY bin/butter-deployer /butter-deployer
COPY bin/fnbox /fnbox
USER 65532:65532
WORKDIR /data
ENV BUTTER_DATA=/data BUTTER_DEPLOYER_ADDR=0.0.0.0:8081
EXPOSE 8081
ENTRYPOINT ["/butter-deployer"]
