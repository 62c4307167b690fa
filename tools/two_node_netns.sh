#!/usr/bin/env bash
# Two "machines" on this one: `torchrun --nnodes 2` with one node in each of two private network
# namespaces joined by a veth pair, c10d rendezvous and gloo over that link only (issue #26).
# It is the multi-node path of a cluster (no shared loopback, each node's own address, the
# rendezvous host found by address) without a second machine, so a test can run it.
#
#   bash tools/two_node_netns.sh [--nproc_per_node 1] [--port 29400] -- <funasr_lite.bin.train arguments>
#
# Both namespaces are new and private (unshare -n): the machine's own network is not touched, and
# they vanish with their processes. Node 0 runs in the first (10.77.0.1, veth0, the rendezvous
# host), node 1 in the second (10.77.0.2, veth1). The nodes share the file system as cluster nodes
# share one: rank 0 writes the experiment dir. Exit status: 0 when both nodes succeed, else the
# first failing node's (both logs are printed). Needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN for
# unshare -n and veth) and iproute2's `ip`; without them it stops at once with exit status 2 and
# says which is missing.
set -euo pipefail
nproc_per_node=1
port=29400
while [ $# -gt 0 ]; do
  case "$1" in
    --nproc_per_node) nproc_per_node=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "two_node_netns.sh: unknown option $1 (the trainer's arguments go after --)" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "two_node_netns.sh: no trainer arguments (after --)" >&2; exit 2; }
command -v ip > /dev/null || { echo "two_node_netns.sh: needs iproute2's ip (apt-get install iproute2)" >&2; exit 2; }
if ! unshare -n true 2> /dev/null; then
  echo "two_node_netns.sh: cannot make a network namespace (unshare -n): needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN)" >&2
  exit 2
fi
python=${PYTHON:-python}

# Everything below runs inside the first new namespace; the second is a child holding `sleep`.
export TWO_NODE_NPROC=$nproc_per_node TWO_NODE_PORT=$port TWO_NODE_PYTHON=$python
exec unshare -n bash -c '
set -euo pipefail
ip link set lo up
unshare -n sleep infinity &
holder=$!
logs=$(mktemp -d)
cleanup() { kill "$holder" 2> /dev/null || true; rm -rf "$logs"; }
trap cleanup EXIT
for _ in $(seq 50); do  # until the child has its own namespace
  [ "$(readlink /proc/$holder/ns/net)" != "$(readlink /proc/$$/ns/net)" ] && break
  sleep 0.05
done
ip link add veth0 type veth peer name veth1 netns "$holder"
ip addr add 10.77.0.1/24 dev veth0
ip link set veth0 up
nsenter -t "$holder" -n ip link set lo up
nsenter -t "$holder" -n ip addr add 10.77.0.2/24 dev veth1
nsenter -t "$holder" -n ip link set veth1 up

node() {  # node <rank> <address> <interface> <is_host> <trainer args...>
  local rank=$1 addr=$2 ifname=$3 is_host=$4
  shift 4
  GLOO_SOCKET_IFNAME=$ifname "$TWO_NODE_PYTHON" -m torch.distributed.run --nnodes 2 --node_rank "$rank" \
    --nproc_per_node "$TWO_NODE_NPROC" --rdzv_id two_node_netns --rdzv_backend c10d \
    --rdzv_endpoint "10.77.0.1:$TWO_NODE_PORT" --rdzv_conf "is_host=$is_host" --local_addr "$addr" \
    -m funasr_lite.bin.train "$@"
}
echo "two_node_netns.sh: node 0 at 10.77.0.1 (rendezvous host), node 1 at 10.77.0.2, $TWO_NODE_NPROC process(es) each" >&2
node 0 10.77.0.1 veth0 1 "$@" > "$logs/node0.log" 2>&1 &
pid0=$!
nsenter -t "$holder" -n bash -c "$(declare -f node); node 1 10.77.0.2 veth1 0 \"\$@\"" node1 "$@" \
  > "$logs/node1.log" 2>&1 &
pid1=$!
status0=0; status1=0
wait "$pid0" || status0=$?
wait "$pid1" || status1=$?
for n in 0 1; do echo "===== node $n =====" >&2; cat "$logs/node$n.log" >&2; done
[ "$status0" -ne 0 ] && { echo "two_node_netns.sh: node 0 failed ($status0)" >&2; exit "$status0"; }
[ "$status1" -ne 0 ] && { echo "two_node_netns.sh: node 1 failed ($status1)" >&2; exit "$status1"; }
echo "two_node_netns.sh: both nodes finished" >&2
' two_node_netns "$@"
