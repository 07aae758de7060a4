# tuxscope's image: the static binary alone. Build it with `make image`
# (podman build, or IMAGE_TOOL=docker), which first runs `make static`
# and uses build/image as the context:
#
#   make image IMAGE=registry.example.com/tuxscope:v1
#
# FROM scratch needs no base image, so the build works offline; the
# binary needs no libc (CGO_ENABLED=0), no shell and no files of its own:
# the kernel side is compiled in. What it reads of the host (/proc,
# /sys/fs/cgroup, /sys/kernel/btf, tracefs, the CRI socket) is mounted by
# deploy/kubernetes/daemonset.yaml.
FROM scratch
COPY tuxscope /usr/bin/tuxscope
# The agent serves Prometheus metrics on this port (--listen).
EXPOSE 9464
ENTRYPOINT ["/usr/bin/tuxscope"]
CMD ["serve", "--listen", "0.0.0.0:9464"]
