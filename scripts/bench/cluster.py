"""A local Meridian cluster of real processes for benchmark scripts (stdlib only).

Starts N `meridian start` processes on loopback with stores in a temporary directory, runs
`meridian init`, waits for readiness, and can SIGKILL and restart nodes. Everything it starts is
stopped when the context manager exits.
"""
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def find_binary():
    # MERIDIAN_BIN relative to where the script was started from (the scripts cd into scripts/bench).
    given = os.environ.get("MERIDIAN_BIN", "")
    if given and not os.path.isabs(given):
        given = os.path.join(os.environ.get("MERIDIAN_CWD", os.getcwd()), given)
    if given and not os.path.exists(given):
        raise SystemExit(f"MERIDIAN_BIN={given} does not exist")
    cands = [given]
    for d in [os.environ.get("CARGO_TARGET_DIR", ""), "/var/tmp/meridian-target-release", "/var/tmp/meridian-target", os.path.join(ROOT, "target")]:
        if d:
            cands += [os.path.join(d, "release", "meridian"), os.path.join(d, "debug", "meridian")]
    for c in cands:
        if c and os.path.exists(c):
            return c
    raise SystemExit("no meridian binary: build with `cargo build --release` or set MERIDIAN_BIN")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def sql(http_addr, body, timeout=10):
    host, port = http_addr.split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        c.request("POST", "/v1/sql", json.dumps(body), {"content-type": "application/json"})
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")
    except (OSError, http.client.HTTPException) as e:
        return 0, {"error": str(e)}
    finally:
        c.close()


def get(http_addr, path, timeout=3):
    host, port = http_addr.split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")
    except (OSError, http.client.HTTPException, ValueError):
        return 0, None
    finally:
        c.close()


class Cluster:
    def __init__(self, n=3, extra=()):
        self.bin = find_binary()
        self.dir = tempfile.mkdtemp(prefix="meridian-bench-")
        self.nodes = [{"listen": f"127.0.0.1:{free_port()}", "http": f"127.0.0.1:{free_port()}", "store": os.path.join(self.dir, f"n{i + 1}"), "proc": None} for i in range(n)]
        self.extra = list(extra)

    def __enter__(self):
        for i in range(len(self.nodes)):
            self.start(i)
        deadline = time.time() + 30
        while subprocess.run([self.bin, "init", "--host", self.nodes[0]["listen"]], capture_output=True).returncode != 0:
            if time.time() > deadline:
                raise SystemExit("init failed")
            time.sleep(0.2)
        for i in range(len(self.nodes)):
            self.wait_ready(i)
        return self

    def __exit__(self, *a):
        for i in range(len(self.nodes)):
            self.kill(i)
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self, i):
        n = self.nodes[i]
        join = ",".join(x["listen"] for x in self.nodes)
        log = open(os.path.join(self.dir, f"n{i + 1}.log"), "ab")
        n["proc"] = subprocess.Popen([self.bin, "start", "--store", n["store"], "--listen-addr", n["listen"], "--http-addr", n["http"], "--join", join,
                                      "--locality", f"region=local,zone=z{i + 1}"] + self.extra, stdout=subprocess.DEVNULL, stderr=log)

    def kill(self, i):
        p = self.nodes[i]["proc"]
        if p is not None:
            p.kill()
            p.wait()
            self.nodes[i]["proc"] = None

    def wait_ready(self, i, timeout=60):
        deadline = time.time() + timeout
        while get(self.nodes[i]["http"], "/health/ready")[0] != 200:
            if time.time() > deadline:
                raise SystemExit(f"node {i + 1} not ready")
            time.sleep(0.1)

    def http(self, i):
        return self.nodes[i]["http"]

    def table_range(self, table_id):
        """(leaseholder index, number of voters) of a table's range, from the nodes' status."""
        lh, voters = None, 0
        for i, n in enumerate(self.nodes):
            if n["proc"] is None:
                continue
            st, s = get(n["http"], "/v1/status")
            if st != 200:
                continue
            for r in s["ranges"]:
                if r.get("table_id") == table_id:
                    voters = max(voters, sum(1 for x in r["replicas"] if x["type"] == "VOTER"))
                    if r["is_leaseholder"]:
                        lh = i
        return lh, voters
