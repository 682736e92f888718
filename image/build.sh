#!/usr/bin/env bash
# The runtime image, end to end, on this machine: built from image/Containerfile, pushed to a
# local registry, pulled back, run with runc, serving a component it pulls by digest from the
# same registry. Prints the image's size and the time from `runc run` to the first 200, beside
# the same start outside the container.
#
#   image/build.sh            # TEMPO=path uses that binary instead of building one
#
# Needs, as root: podman (builds the image; `--ulimit` because this sandbox refuses its default
# limits), docker-registry, skopeo, umoci and runc (all Debian packages), curl. Too slow for
# .ci/run's budget; docs/kubernetes.md says when it was run and what it printed.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in podman docker-registry skopeo umoci runc curl; do
  command -v "$tool" >/dev/null || { echo "image/build.sh needs $tool" >&2; exit 1; }
done
if [ -z "${TEMPO:-}" ]; then
  cargo build --release --quiet -p cargo-tempo
  TEMPO=$PWD/target/release/cargo-tempo
fi
wasm=$(cd examples/hello-http \
  && "$TEMPO" build --release --quiet --target-dir "$PWD/../../target/bench-examples" | grep '\.wasm$')

work=$(mktemp -d)
registry_pid=
container=tempo-image-check-$$
cleanup() {
  runc delete --force "$container" >/dev/null 2>&1 || true
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null || true
  podman rmi --force localhost/tempo-runtime:check localhost/tempo-rootfs:check >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
# Waits for `curl URL` to answer 200; gives up after 60 s.
wait_200() {
  for _ in $(seq 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)" = 200 ] && return 0
    sleep 0.1
  done
  echo "no 200 from $1" >&2; return 1
}

echo "==> the file system (image/rootfs.sh), imported as localhost/tempo-rootfs"
mkdir -p "$work/stage" "$work/context"
image/rootfs.sh "$TEMPO" "$work/stage/rootfs"
tar -C "$work/stage" -c rootfs | podman import --quiet - localhost/tempo-rootfs:check >/dev/null

echo "==> podman build -f image/Containerfile --build-arg ROOTFS=localhost/tempo-rootfs:check"
podman build --quiet --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
  -f image/Containerfile --build-arg ROOTFS=localhost/tempo-rootfs:check \
  -t localhost/tempo-runtime:check "$work/context" >/dev/null

registry_port=$(free_port)
registry=127.0.0.1:$registry_port
cat > "$work/registry.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: $registry
YAML
docker-registry serve "$work/registry.yml" >/dev/null 2>&1 &
registry_pid=$!
wait_for_registry() { for _ in $(seq 100); do curl -sf "http://$registry/v2/" >/dev/null && return 0; sleep 0.1; done; return 1; }
wait_for_registry

echo "==> push the image and a component to $registry"
podman push --quiet --tls-verify=false localhost/tempo-runtime:check "docker://$registry/tempo/runtime:check"
pinned=$("$TEMPO" push --quiet "$registry/apps/hello:v1" "$wasm")
echo "    component: $pinned"

echo "==> pull the image back (skopeo), unpack it (umoci)"
skopeo copy --quiet --src-tls-verify=false "docker://$registry/tempo/runtime:check" "oci:$work/oci:runtime"
manifest=$(skopeo inspect --raw "oci:$work/oci:runtime")
compressed=$(python3 -c 'import json,sys; print(sum(l["size"] for l in json.loads(sys.argv[1])["layers"]))' "$manifest")
umoci unpack --image "$work/oci:runtime" "$work/bundle" >/dev/null
unpacked=$(du -sb "$work/bundle/rootfs" | cut -f1)

http_port=$(free_port)
admin_port=$(free_port)
# Host networking (the registry is on loopback), a read-only root, and the writable volume and
# /tmp as the pod has them: tmpfs owned by the image's user.
python3 - "$work/bundle/config.json" "$pinned" "$http_port" "$admin_port" <<'PY'
import json, sys
path, pinned, http_port, admin_port = sys.argv[1:]
config = json.load(open(path))
config["process"]["args"] = ["cargo-tempo", "run", "oci://" + pinned,
                             "--listen", "127.0.0.1:" + http_port, "--admin", "127.0.0.1:" + admin_port]
config["process"]["terminal"] = False
config["root"]["readonly"] = True
config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "network"]
for target in ("/var/lib/tempo", "/tmp"):
    config["mounts"].append({"destination": target, "type": "tmpfs", "source": "tmpfs",
                             "options": ["nosuid", "nodev", "mode=1777" if target == "/tmp" else "mode=0755",
                                         "uid=65532", "gid=65532"]})
json.dump(config, open(path, "w"))
PY

echo "==> runc run: the image serves oci://$pinned"
start=$(date +%s%N)
runc run --detach --bundle "$work/bundle" "$container" >"$work/container.log" 2>&1
wait_200 "http://127.0.0.1:$http_port/"
inside=$(ms_since "$start")
body=$(curl -s "http://127.0.0.1:$http_port/")
ready=$(curl -s "http://127.0.0.1:$admin_port/readyz")
pid=$(runc state "$container" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
runc kill "$container" TERM
for _ in $(seq 150); do [ "$(runc state "$container" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2>/dev/null)" = stopped ] && break; sleep 0.1; done

echo "==> the same start outside the container (empty caches)"
out_port=$(free_port)
start=$(date +%s%N)
TEMPO_CACHE_DIR="$work/outside/wasmtime" "$TEMPO" run --quiet "oci://$pinned" --listen "127.0.0.1:$out_port" >/dev/null 2>&1 &
outside_pid=$!
wait_200 "http://127.0.0.1:$out_port/"
outside=$(ms_since "$start")
kill "$outside_pid"; wait "$outside_pid" 2>/dev/null || true

echo
echo "image: $(( compressed / 1024 / 1024 )) MiB compressed, $(( unpacked / 1024 / 1024 )) MiB unpacked"
echo "answer: $body; /readyz: $ready; running as uid $uid"
echo "its first log line: $(head -n 1 "$work/container.log")"
echo "start to first 200, empty caches (pull by digest, compile, serve):"
echo "  inside runc    ${inside} ms"
echo "  outside        ${outside} ms"
