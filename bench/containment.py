"""What a hostile guest's attacks cost a tempo binary: its resident memory, whether it survives,
and a request's latency while other guests flood it with metric exports. For comparing two
builds (an old one and a new one) on the same attacks; the tests assert the bounds, this prints
the figures.

    cargo test -p tempo-test-fixtures      # builds the fixtures (sql_fixture, otel_compat)
    python3 bench/containment.py TEMPO_BINARY sql
    python3 bench/containment.py TEMPO_BINARY otel
"""
import json, os, re, subprocess, sys, tempfile, threading, time, urllib.request

TEMPO = sys.argv[1]
GUESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "tempo-guests",
                      "wasm32-wasip2", "release")

def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return None

def start(wasm, folder, env=None):
    e = dict(os.environ, **(env or {}))
    p = subprocess.Popen([TEMPO, "run", wasm, "--listen", "127.0.0.1:0"], cwd=folder, env=e,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    def pump():
        for line in p.stdout:
            lines.append(line)
    threading.Thread(target=pump, daemon=True).start()
    for _ in range(600):
        m = [re.search(r"(http://127\.0\.0\.1:\d+)", l) for l in lines if "Serving" in l]
        m = [x for x in m if x]
        if m:
            return p, m[0].group(1), lines
        time.sleep(0.05)
    raise SystemExit("never served: " + "".join(lines))

def post(url, body, timeout=60):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except Exception as e:
        return None, repr(e)

def get(url, timeout=60):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except Exception as e:
        return None, repr(e).encode()

which = sys.argv[2]
folder = tempfile.mkdtemp()
if which == "sql":
    open(f"{folder}/tempo.toml", "w").write('[sql.databases]\nmain = "embedded"\nother = "embedded"\n')
    p, url, lines = start(f"{GUESTS}/sql_fixture.wasm", folder)
    st = lambda sql, params=(): {"sql": sql, "params": list(params)}
    hoard = [st("PRAGMA temp_store = MEMORY"), st("CREATE TEMP TABLE IF NOT EXISTS hoard(x)"),
             st("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) INSERT INTO hoard SELECT randomblob(1000000) FROM n")]
    print("RSS at start:", rss(p.pid), "MiB")
    for i in range(5):
        s, b = post(f"{url}/script/main", hoard)
        print("hoard", i, s, b[:120], "RSS", rss(p.pid), "MiB")
    print("tokenizer pointer:", post(f"{url}/query/main", st("SELECT hex(fts3_tokenizer($1)) AS p", ["simple"])))
    s = post(f"{url}/query/main", st("SELECT fts3_tokenizer($1, $2) AS p", ["evil", "AAAAAAAA"]))
    print("register evil:", s)
    s = post(f"{url}/exec/main", st("CREATE VIRTUAL TABLE ft_evil USING fts3(body, tokenize=evil)"))
    print("use evil:", s)
    time.sleep(0.5)
    print("alive after:", p.poll() is None, "exit", p.returncode)
    p.kill()
elif which == "otel":
    p, url, lines = start(f"{GUESTS}/otel_compat.wasm", folder, {"TEMPO_ADMIN": "127.0.0.1:0"})
    time.sleep(0.3)
    admin = [re.search(r"(127\.0\.0\.1:\d+)/metrics", l) for l in lines]
    admin = [a.group(1) for a in admin if a]
    print("RSS at start:", rss(p.pid), "MiB")
    for i in range(5):
        s, b = get(f"{url}/hoard?{i}")
        print("hoard", i, s, b[:100], "RSS", rss(p.pid), "MiB")
    if admin:
        s, b = get(f"http://{admin[0]}/metrics")
        print("scrape bytes:", len(b))
    # A hello's latency alone, then while three clients flood.
    def hello_ms(n=50):
        times = []
        for _ in range(n):
            t = time.time(); get(f"{url}/"); times.append((time.time() - t) * 1000)
        times.sort(); return times[len(times)//2], times[-1]
    print("hello alone (median, max ms):", hello_ms())
    stop = time.time() + 6
    def flood(k):
        i = 0
        while time.time() < stop:
            get(f"{url}/flood?{k}-{i}"); i += 1
    ts = [threading.Thread(target=flood, args=(k,)) for k in range(3)]
    [t.start() for t in ts]; time.sleep(0.5)
    print("hello during floods (median, max ms):", hello_ms())
    print("flood answer:", get(f"{url}/flood?x")[1][:120])
    [t.join() for t in ts]
    p.kill()
