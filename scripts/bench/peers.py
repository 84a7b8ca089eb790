"""etcd and PostgreSQL servers for side-by-side benchmarks (stdlib only).

`Etcd(3)` starts a 3-member etcd cluster on loopback (fsync on every commit, etcd's default);
`Postgres()` starts a single PostgreSQL server in a temporary data directory with
`synchronous_commit=on` and `fsync=on` (durable, like the others). Both install their Debian
packages when missing and stop everything they started on exit.
"""
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

from cluster import free_port


def ensure_packages(*pkgs):
    missing = [p for p in pkgs if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0]
    if missing:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True)
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq"] + missing, check=True, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def post(url, body, timeout=3):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


class Etcd:
    def __init__(self, n=3):
        ensure_packages("etcd-server")
        self.dir = tempfile.mkdtemp(prefix="etcd-bench-")
        self.members = [{"name": f"e{i + 1}", "client": f"http://127.0.0.1:{free_port()}", "peer": f"http://127.0.0.1:{free_port()}", "proc": None} for i in range(n)]

    def __enter__(self):
        for i in range(len(self.members)):
            self.start(i)
        deadline = time.time() + 30
        while self.leader() is None:
            if time.time() > deadline:
                raise SystemExit("etcd did not elect a leader")
            time.sleep(0.2)
        return self

    def __exit__(self, *a):
        for i in range(len(self.members)):
            self.kill(i)
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self, i, state="new"):
        m = self.members[i]
        cluster = ",".join(f"{x['name']}={x['peer']}" for x in self.members)
        log = open(os.path.join(self.dir, f"{m['name']}.log"), "ab")
        m["proc"] = subprocess.Popen(["etcd", "--name", m["name"], "--data-dir", os.path.join(self.dir, m["name"]), "--listen-client-urls", m["client"],
                                      "--advertise-client-urls", m["client"], "--listen-peer-urls", m["peer"], "--initial-advertise-peer-urls", m["peer"],
                                      "--initial-cluster", cluster, "--initial-cluster-state", state, "--logger", "zap"], stdout=log, stderr=log)

    def kill(self, i):
        p = self.members[i]["proc"]
        if p is not None:
            p.kill()
            p.wait()
            self.members[i]["proc"] = None

    def urls(self):
        return [m["client"] for m in self.members]

    def leader(self):
        """Index of the leader, asking any live member."""
        for i, m in enumerate(self.members):
            if m["proc"] is None:
                continue
            try:
                st = post(m["client"] + "/v3/maintenance/status", {}, timeout=1)
            except OSError:
                continue
            lead = st.get("leader")
            for j, x in enumerate(self.members):
                if x["proc"] is None:
                    continue
                try:
                    if post(x["client"] + "/v3/maintenance/status", {}, timeout=1)["header"]["member_id"] == lead:
                        return j
                except (OSError, KeyError):
                    continue
        return None


class Postgres:
    def __init__(self):
        ensure_packages("postgresql")
        bindirs = sorted(d for d in os.listdir("/usr/lib/postgresql"))
        self.bin = os.path.join("/usr/lib/postgresql", bindirs[-1], "bin")
        self.dir = tempfile.mkdtemp(prefix="pg-bench-")
        self.port = free_port()
        self.user = "postgres"
        self.proc = None

    def _as_pg(self, args):
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--"] + args
        return args

    def __enter__(self):
        data = os.path.join(self.dir, "data")
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        subprocess.run(self._as_pg([os.path.join(self.bin, "initdb"), "-D", data, "-U", self.user, "--auth", "trust"]), check=True, capture_output=True)
        log = open(os.path.join(self.dir, "pg.log"), "ab")
        self.proc = subprocess.Popen(self._as_pg([os.path.join(self.bin, "postgres"), "-D", data, "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
                                                  "-c", f"unix_socket_directories={self.dir}", "-c", "synchronous_commit=on", "-c", "fsync=on",
                                                  "-c", "max_connections=300", "-c", "shared_buffers=512MB"]), stdout=log, stderr=log)
        deadline = time.time() + 30
        while subprocess.run([os.path.join(self.bin, "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)], capture_output=True).returncode != 0:
            if time.time() > deadline:
                raise SystemExit("postgres did not start")
            time.sleep(0.2)
        return self

    def __exit__(self, *a):
        if self.proc:
            self.proc.terminate()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self):
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres"
