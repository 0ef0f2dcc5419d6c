#!/usr/bin/env bash
# The init of one lab node: run as
#   nsenter --net=/run/netns/<node> unshare --mount --propagation slave bash node-init.sh NODE_DIR
# so that it is in the node's network namespace and a mount namespace of its
# own. It gives containerd, kubelet and kube-proxy a machine of their own:
#   - every cgroup hierarchy shows the node's subtree (<mount>/<CGROUP_REL>)
#     as its root, and the daemons run in <subtree>/system;
#   - the paths the daemons fix (/var/lib/kubelet, /run/containerd,
#     /etc/cni/net.d, /opt/cni/bin, ...) are the node's own directories;
#   - /sys/fs/bpf is a bpffs instance of its own;
#   - the host sysctls the kubelet would set read as already set, so the
#     host's are never written.
# It prints "ready" once the three daemons are started, stops them on
# SIGTERM, and exits when any of them does. Logs: NODE_DIR/log/*.log.
set -euo pipefail
dir=$1
# Everything below changes mounts: only ever in a mount namespace of its own.
if [ "$(readlink /proc/self/ns/mnt)" = "$(readlink /proc/1/ns/mnt)" ]; then
  echo "node-init: refusing to run in the host's mount namespace (start it under unshare --mount)" >&2
  exit 2
fi
# shellcheck source=/dev/null
source "$dir/node.env" # NODE_NAME NODE_IP CGROUP_REL BIN_DIR IMAGES

# cgroups: every hierarchy is mounted again with the node's subtree as its
# top (one mount per hierarchy, whose mountinfo root names the subtree: runc
# and the agent both read it), and the daemons join <subtree>/system.
mounts=$(awk '{ for (i = 7; $i != "-"; i++); if ($(i+1) == "cgroup" || $(i+1) == "cgroup2") print $5 }' /proc/self/mountinfo)
for m in $mounts; do echo $$ > "$m/$CGROUP_REL/system/cgroup.procs"; done
host="$dir/host-cgroup"
mkdir -p "$host"
mount --rbind /sys/fs/cgroup "$host"
umount -R /sys/fs/cgroup
if [ "$mounts" = /sys/fs/cgroup ]; then # pure cgroup v2
  mount --bind "$host/$CGROUP_REL" /sys/fs/cgroup
else # hybrid or v1: a tmpfs holding one directory (or link) per hierarchy, as the host has
  mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
  for e in "$host"/*; do
    name=${e##*/}
    if [ -L "$e" ]; then ln -s "$(readlink "$e")" "/sys/fs/cgroup/$name"; continue; fi
    mkdir "/sys/fs/cgroup/$name"
    mount --bind "$e/$CGROUP_REL" "/sys/fs/cgroup/$name"
  done
  mount -o remount,ro /sys/fs/cgroup
fi
umount -R -l "$host"

for p in /var/lib/kubelet /var/lib/containerd /run/containerd /var/lib/cni /var/log/pods /var/log/containers \
  /etc/cni/net.d /opt/cni/bin /run/netns /run/switchyard /etc/kubernetes; do
  mount --bind "$dir/fs$p" "$p"
done
mount -t bpf bpf /sys/fs/bpf

# The values the kubelet's container manager wants (setupKernelTunables).
for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \
  kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
  f=${kv%%=*}
  echo "${kv#*=}" > "$dir/sysctl/${f//\//.}"
  mount --bind "$dir/sysctl/${f//\//.}" "/proc/sys/$f"
done

# Volume mounts made by the kubelet reach containerd, and HostToContainer
# mounts work, as on a node whose root is shared (systemd's default).
mount --make-rshared /

pids=()
stop() {
  trap - TERM INT
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait
  exit 0
}
trap stop TERM INT

containerd --config /etc/kubernetes/containerd.toml >> "$dir/log/containerd.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do
  [ -S /run/containerd/containerd.sock ] && break
  kill -0 "${pids[0]}" 2>/dev/null || { echo "containerd exited: see $dir/log/containerd.log" >&2; exit 1; }
  sleep 0.1
done
[ -S /run/containerd/containerd.sock ] || { echo "containerd did not create its socket in 30 s" >&2; exit 1; }

# Images first: the sandbox image must be there before the first pod.
ctr -n k8s.io images import "$IMAGES" > "$dir/log/import.log" 2>&1 ||
  { echo "image import failed: see $dir/log/import.log" >&2; exit 1; }

"$BIN_DIR/kubelet" --config=/etc/kubernetes/kubelet.yaml --kubeconfig=/etc/kubernetes/kubelet.kubeconfig \
  --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=1 >> "$dir/log/kubelet.log" 2>&1 &
pids+=($!)
"$BIN_DIR/kube-proxy" --config=/etc/kubernetes/kube-proxy.yaml --v=1 >> "$dir/log/kube-proxy.log" 2>&1 &
pids+=($!)
echo ready
set +e
wait -n
status=$?
echo "a node daemon exited with $status: see $dir/log/" >&2
kill -TERM "${pids[@]}" 2>/dev/null
wait
exit 1
