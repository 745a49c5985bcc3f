"""What the benchmark programs share (bench/run: HTTP/1.1; bench/tls: HTTPS and HTTP/2).

Setup (tools, file limit, docroot, ports, CPU pinning modes, the bench certificate from
wharf's local CA), the server processes (wharf and its configuration, nginx from the
bench/nginx.conf template, their access logs, bench/h1-floor's floors), the
load-generator plumbing (a timed client run with its CPU use; wrk with bench/report.lua;
the idle-connection clients' protocol), system calls per request (perf or strace), run
alternation, and the report helpers (medians, ratios, machine description, RESULTS.md
sections).

Python 3 standard library only. Everything sends traffic to 127.0.0.1 only, and every
subprocess has a time limit.
"""

import argparse
import collections
import datetime
import fcntl
import json
import os
import platform
import random
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
DOCROOT = OUT / "docroot"
HOST = "127.0.0.1"  # the only address the benchmarks ever send traffic to
# WHARF_BIN=PATH measures another build (bench/pgo-build's, say); with --no-build.
RELEASE_BIN = ROOT / "target" / "release" / "wharf"
WHARF_BIN = Path(os.environ.get("WHARF_BIN", RELEASE_BIN))
RESULTS_MD = BENCH / "RESULTS.md"
# A single-threaded client at this share of a CPU may be what limits a run.
CLIENT_BOUND_CPU = 0.95
# Requests per connection every server allows unless --requests-per-conn says otherwise
# (nginx keepalive_requests, wharf limits.max_requests_per_connection): far more than
# one connection gets through in a run, so no server closes connections during one.
# (wharf's own default is 1000, nginx's 1000 too since 1.19.10.) 100,000 was reached
# within 10 s by HTTP/2 at over 320k requests/s on 32 connections.
REQUESTS_PER_CONN = 10_000_000
CA_DIR = OUT / "ca"  # wharf's data dir (the local CA) and where the bench leaf is written


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- options

def parse_duration(text):
    m = re.fullmatch(r"(\d+)(s|m)?", text)
    if not m:
        raise argparse.ArgumentTypeError(f"duration like 10s or 1m, not {text!r}")
    return int(m.group(1)) * (60 if m.group(2) == "m" else 1)


def add_common_options(p, servers, scenarios):
    """The options both programs take (run length, selection, pinning, build, install)."""
    p.add_argument("--repeat", type=int, default=5, help="runs per server per scenario (5)")
    p.add_argument("--duration", type=parse_duration, default=10, help="per run, e.g. 10s (10s)")
    p.add_argument("--quick", action="store_true", help="3 repeats of 3s")
    p.add_argument("--write", action="store_true", help="put the results into bench/RESULTS.md")
    p.add_argument("--servers", default=",".join(servers), help=f"comma list ({','.join(servers)})")
    p.add_argument("--scenarios", default=",".join(scenarios), help="comma list (all)")
    p.add_argument("--access-log", action="store_true",
                   help="every server logs each request to a file in the combined format "
                        "(default: no access log for any server)")
    p.add_argument("--requests-per-conn", type=int, default=REQUESTS_PER_CONN, metavar="N",
                   help="requests per connection for every server: nginx keepalive_requests, "
                        f"wharf max_requests_per_connection ({REQUESTS_PER_CONN})")


PIN_MODES = ("split", "none")


def add_pin_build_options(p, client, default="both"):
    p.add_argument("--pin", choices=("both",) + PIN_MODES, default=default,
                   help=f"split: {client} on CPU 0, servers on the other CPUs; none: no "
                        f"pinning; both: every scenario in split mode, then in none ({default})")
    p.add_argument("--no-build", action="store_true", help="use target/release/wharf as is")
    p.add_argument("--no-install", action="store_true", help="don't apt-get missing tools")


def finish_common_options(p, args, servers, scenarios):
    if args.quick:
        args.repeat, args.duration = 3, 3
    args.servers = [s for s in args.servers.split(",") if s]
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    bad = set(args.servers) - set(servers) or set(args.scenarios) - set(scenarios)
    if bad:
        p.error(f"unknown: {', '.join(sorted(bad))}")
    return args


# ---------------------------------------------------------------- setup

def which(cmd):
    """Like shutil.which, but also looks in /usr/sbin (nginx), often not on PATH."""
    return shutil.which(cmd, path=os.environ.get("PATH", os.defpath) + ":/usr/sbin")


def ensure_tools(tools, no_install):
    """`tools` maps commands to the Debian packages that provide them; install only the
    packages whose command is missing."""
    missing = list(dict.fromkeys(pkg for cmd, pkg in tools.items() if not which(cmd)))
    if not missing:
        return
    if no_install:
        sys.exit(f"missing tools: {' '.join(missing)} (and --no-install given)")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    log(f"installing {' '.join(missing)} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # apt's and dpkg's progress to stderr: stdout carries the report.
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env, timeout=600,
                   stdout=sys.stderr)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq"] + missing,
                   check=True, env=env, timeout=900, stdout=sys.stderr)


def raise_fd_limit(need=16384, what="scenario f"):
    """Servers and clients inherit this: thousands of sockets need room."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < need:
        log(f"warning: RLIMIT_NOFILE hard limit is {hard}; {what} may fail")


def english_text(rng, words):
    """A paragraph of word salad: compresses like prose, not like a repeated string."""
    sentences = []
    for _ in range(rng.randint(3, 6)):
        s = " ".join(rng.choice(words) for _ in range(rng.randint(6, 16)))
        sentences.append(s.capitalize() + ".")
    return " ".join(sentences)


def realistic_text(size, seed=9110):
    """~`size` bytes mixing prose, HTML and JS-like lines (gzip -6 gets roughly 3-4x)."""
    rng = random.Random(seed)
    words = ("the server file request response header cache client connection body "
             "static content byte range time value page user data error status "
             "returns when with from that this into each every other about which "
             "should must would could after before because while where there").split()
    idents = ["fetchPage", "renderList", "userId", "cacheKey", "onLoad", "etag", "items"]
    chunks, total, n = [], 0, 0
    while total < size:
        n += 1
        kind = n % 3
        if kind == 0:
            chunk = f"<p class=\"note-{n % 7}\">{english_text(rng, words)}</p>\n"
        elif kind == 1:
            a, b = rng.sample(idents, 2)
            chunk = (f"function {a}{n}({b}) {{ if (!{b}) return null; "
                     f"return {b}.map(x => x.{rng.choice(idents)} + {rng.randint(0, 999)}); }}\n")
        else:
            chunk = english_text(rng, words) + "\n\n"
        chunks.append(chunk)
        total += len(chunk)
    return "".join(chunks).encode()[:size]


def make_docroot():
    """Deterministic files, rewritten every run (cheap, and the ETags are fetched fresh)."""
    DOCROOT.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1024)
    (DOCROOT / "1k.bin").write_bytes(rng.randbytes(1024))
    (DOCROOT / "1m.bin").write_bytes(rng.randbytes(1024 * 1024))
    (DOCROOT / "100k.txt").write_bytes(realistic_text(100 * 1024))
    (DOCROOT / "index.html").write_text(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>wharf bench</title>"
        "</head>\n<body><h1>wharf bench docroot</h1><ul>\n"
        "<li><a href=\"1k.bin\">1k.bin</a></li>\n<li><a href=\"1m.bin\">1m.bin</a></li>\n"
        "<li><a href=\"100k.txt\">100k.txt</a></li>\n</ul></body></html>\n")


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def pin_modes(pin):
    """The pinning modes a run measures, in order: --pin both is split, then none."""
    return list(PIN_MODES) if pin == "both" else [pin]


PIN_TITLES = {"split": "pinned", "none": "unpinned"}


def cpu_sets(pin):
    """(client CPUs, server CPUs) as taskset lists, or (None, None) for no pinning."""
    cpus = sorted(os.sched_getaffinity(0))
    if pin == "none" or len(cpus) < 2:
        return None, None
    return str(cpus[0]), ",".join(map(str, cpus[1:]))


def taskset(cpus):
    return ["taskset", "-c", cpus] if cpus else []


def take_lock():
    """Two runs at once would share bench/out (and nginx pid files), and compete for
    the CPUs: one lock for bench/run and bench/tls."""
    OUT.mkdir(parents=True, exist_ok=True)
    lock = open(OUT / ".lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit("another benchmark (bench/run or bench/tls) is running (bench/out/.lock)")
    return lock  # held until the process exits


def install_signal_handlers():
    """SIGTERM and SIGINT unwind through the `finally` that stops the servers. SIGINT is
    set explicitly because a shell starting us in the background would have ignored it."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    signal.signal(signal.SIGINT, signal.default_int_handler)


def run_main(main):
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted (servers stopped)")


# ---------------------------------------------------------------- processes

def proc_children(pid):
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def rss_bytes(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_split(pid):
    """(user, system) CPU seconds of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def busy_cpu_seconds():
    """CPU time the whole machine spent not idle (all CPUs, steal included), from
    /proc/stat: with the client's and the server's share subtracted, what other
    processes (or the hypervisor) took during a run."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def thread_count(pid):
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


class Server:
    """A server process started by this script; nginx's workers are its children.
    Its output and files are in `logdir`."""

    def __init__(self, name, port, proc, stop_signal, logdir, scheme="http"):
        self.name, self.port, self.proc, self.stop_signal = name, port, proc, stop_signal
        self.logdir, self.scheme = logdir, scheme
        self.notes = []
        self.access_log = None  # the file the server writes its access log to, if any
        self.tls_port = None  # a second, HTTPS listener (bench/run's scenario ft)
        self.h2c_port = None  # a second, cleartext HTTP/2 listener (bench/tls's g2)

    def url(self, path):
        return f"{self.scheme}://{HOST}:{self.port}{path}"

    def pids(self):
        return [self.proc.pid] + proc_children(self.proc.pid)

    def rss(self):
        return sum(rss_bytes(p) for p in self.pids())

    def cpu(self):
        return sum(self.cpu_split())

    def cpu_split(self):
        """(user, system) CPU seconds of the server's processes."""
        parts = [cpu_split(p) for p in self.pids()]
        return sum(u for u, _ in parts), sum(k for _, k in parts)

    def stop(self):
        if self.proc.poll() is not None:
            return
        children = proc_children(self.proc.pid)
        self.proc.send_signal(self.stop_signal)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            log(f"{self.name} did not stop in 15s; killing it")
            for pid in [self.proc.pid] + children:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait(timeout=5)


def wait_listening(server, timeout=15, port=None):
    port = port or server.port
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            sys.exit(f"{server.name} exited with {server.proc.returncode}; see {server.logdir}/")
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    server.stop()
    sys.exit(f"{server.name} not listening on {HOST}:{port} after {timeout}s")


def spawn(logdir, cmd, env=None):
    """Start a server in its own session, stdout and stderr to `logdir`. The files are
    emptied, then opened for appending: an access log written to stdout can then be
    truncated between runs (truncate_log) without the server writing past the end."""
    logdir.mkdir(parents=True, exist_ok=True)
    for name in ("stdout.log", "stderr.log"):
        (logdir / name).write_bytes(b"")
    with open(logdir / "stdout.log", "ab") as o, open(logdir / "stderr.log", "ab") as e:
        return subprocess.Popen(cmd, stdout=o, stderr=e, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)


def stop_stale(pidfile, conf, what):
    """A server left by an interrupted run still holds its pid file; stop it if its
    command line names our configuration file."""
    try:
        pid = int(pidfile.read_text())
        if str(conf) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
            log(f"stopping {what} {pid} left by an earlier run")
            os.kill(pid, signal.SIGTERM)
            time.sleep(1)
    except (OSError, ValueError):
        pass


# Lines between these markers of bench/nginx.conf are kept only for HTTPS.
NGINX_TLS_BEGIN, NGINX_TLS_END = "# @TLS-BEGIN@", "# @TLS-END@"


def nginx_config(out, port, tls, tls_port=None, access_log=False,
                 requests=REQUESTS_PER_CONN, h2c_port=None):
    """bench/nginx.conf with its placeholders filled in. `tls` is None (cleartext
    HTTP/1.1 on `port`) or dict(cert=..., key=...): then HTTPS with HTTP/2 on `port`
    (bench/tls; with `h2c_port`, also cleartext HTTP/2 there), or with `tls_port`
    cleartext on `port` and HTTPS/1.1 on `tls_port` (bench/run's scenario ft)."""
    lines, keep = [], True
    for line in (BENCH / "nginx.conf").read_text().splitlines(keepends=True):
        if line.strip() == NGINX_TLS_BEGIN:
            keep = tls is not None
        elif line.strip() == NGINX_TLS_END:
            keep = True
        elif keep:
            lines.append(line)
    text = "".join(lines)
    user = "user root root;" if os.geteuid() == 0 else ""
    if tls and tls_port is None:
        listens = [f"{HOST}:{port} ssl http2"] + ([f"{HOST}:{h2c_port} http2"] if h2c_port else [])
    else:
        listens = [f"{HOST}:{port}"] + ([f"{HOST}:{tls_port} ssl"] if tls else [])
    listen_lines = "\n        ".join(f"listen {l};" for l in listens)
    log = f"access_log {out / 'access.log'} combined;" if access_log else "access_log off;"
    for key, value in (("@USER_DIRECTIVE@", user), ("@ACCESS_LOG@", log),
                       ("@KEEPALIVE_REQUESTS@", str(requests)),
                       ("@LISTEN_LINES@", listen_lines), ("@OUT@", str(out)),
                       ("@CERT@", str(tls["cert"]) if tls else ""),
                       ("@KEY@", str(tls["key"]) if tls else ""),
                       ("@DOCROOT@", str(DOCROOT))):
        text = text.replace(key, value)
    return text


def start_nginx(port, cpus, out=OUT / "nginx", tls=None, tls_port=None, access_log=False,
                requests=REQUESTS_PER_CONN, h2c_port=None):
    """nginx from bench/nginx.conf, files in `out`; HTTPS + HTTP/2 if `tls` is given
    (and `tls_port` not: see nginx_config). With `access_log`, nginx logs every request
    to `out`/access.log in the combined format."""
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (out / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    conf = out / "nginx.conf"
    stop_stale(out / "nginx.pid", conf, "nginx")
    conf.write_text(nginx_config(out, port, tls, tls_port, access_log, requests, h2c_port))
    if access_log:
        (out / "access.log").write_bytes(b"")
    nginx = which("nginx")
    subprocess.run([nginx, "-t", "-q", "-c", str(conf), "-p", str(out)], check=True, timeout=30)
    server = Server("nginx", port,
                    spawn(out, taskset(cpus) + [nginx, "-c", str(conf), "-p", str(out)]),
                    signal.SIGQUIT, out, "https" if tls and tls_port is None else "http")
    server.tls_port, server.h2c_port = tls_port, h2c_port
    wait_listening(server)
    if h2c_port:
        wait_listening(server, port=h2c_port)
    time.sleep(0.5)  # let the workers come up before they are counted
    server.notes.append(f"{len(proc_children(server.proc.pid))} worker processes")
    if access_log:
        server.access_log = out / "access.log"
    return server


def nginx_workers(server):
    """How many workers nginx started (worker_processes auto): the other servers get as many."""
    return len(proc_children(server.proc.pid)) or os.cpu_count()


def build_wharf():
    log("cargo build --release")
    subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True, timeout=3600)


H1_FLOOR = BENCH / "h1-floor"
H1_FLOOR_BIN = H1_FLOOR / "target" / "release" / "h1-floor"


def build_standalone(project):
    """`cargo build --release` in one of bench's standalone Cargo projects."""
    log(f"cargo build --release (bench/{project.name})")
    subprocess.run(["cargo", "build", "--release"], cwd=project, check=True, timeout=3600)


def start_h1_floor(mode, port, cpus, workers, out, extra=()):
    """`h1-floor MODE 127.0.0.1:PORT EXTRA...` (bench/h1-floor) on as many tokio workers
    as the servers beside it, named floor-MODE."""
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, TOKIO_WORKER_THREADS=str(workers))
    cmd = taskset(cpus) + [str(H1_FLOOR_BIN), mode, f"{HOST}:{port}", *extra]
    server = Server(f"floor-{mode}", port, spawn(out, cmd, env), signal.SIGTERM, out)
    wait_listening(server)
    return server


def require_wharf():
    if not WHARF_BIN.exists():
        sys.exit(f"{WHARF_BIN} not found (build it, or run with --servers nginx)")


def issue_certificate():
    """A fresh leaf for localhost and 127.0.0.1 from wharf's local CA (created in
    bench/out/ca on first use); the same files for every server. Returns
    dict(cert=chain, key=key, root=root certificate)."""
    CA_DIR.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, WHARF_DATA_DIR=str(CA_DIR))
    subprocess.run([str(WHARF_BIN), "ca", "issue", "localhost", HOST, "--out", str(CA_DIR)],
                   env=env, check=True, timeout=60, stdout=subprocess.DEVNULL)
    root = subprocess.run([str(WHARF_BIN), "ca", "path"], env=env, check=True, timeout=30,
                          capture_output=True, text=True).stdout.strip()
    tls = dict(cert=CA_DIR / "localhost.pem", key=CA_DIR / "localhost-key.pem", root=Path(root))
    for f in tls.values():
        if not f.exists():
            sys.exit(f"`wharf ca issue` did not write {f}")
    return tls


def toml_str(value):
    return json.dumps(str(value))  # a JSON string is a TOML basic string


def wharf_supports(flag):
    help_text = subprocess.run([str(WHARF_BIN), "serve", "--help"], capture_output=True,
                               text=True, timeout=30)
    return flag in help_text.stdout + help_text.stderr


def wharf_config(path, writer, listen, requests_per_conn=REQUESTS_PER_CONN, access_log=False,
                 tls=None, tls_listen=None, http3=False):
    """Writes the wharf.toml the harnesses serve the docroot with: the default site on
    the cleartext address `listen`, the request limit and access log the other servers
    get and, with `tls`, an HTTPS listener on `tls_listen` with the bench certificate
    (and HTTP/3 on its UDP port when `http3`)."""
    text = f"""# Written by {writer}.
listen = [{toml_str(listen)}]

[limits]
# As the other servers' keep-alive request limit; wharf's default is 1000.
max_requests_per_connection = {requests_per_conn}
"""
    if tls:
        text += f"""
[tls]
listen = [{toml_str(tls_listen)}]

[http]
http3 = {'true' if http3 else 'false'}
"""
    text += f"""
[log]
# "combined" (one line per request on stdout, which the harness sends to stdout.log
# beside this file) when the servers log, else "off", as the others.
access = "{'combined' if access_log else 'off'}"

[[site]]
root = {toml_str(DOCROOT)}
default = true
"""
    if tls:
        text += f"""
[site.tls]
cert = {toml_str(tls["cert"])}
key = {toml_str(tls["key"])}
"""
    path.write_text(text)


def start_wharf(port, cpus, workers, serve_args, out=OUT / "wharf", scheme="http"):
    """`wharf serve SERVE_ARGS`. Tokio sizes its pool from the CPU affinity mask;
    TOKIO_WORKER_THREADS pins it to nginx's worker count so both servers run the same
    number of workers."""
    cmd = [str(WHARF_BIN), "serve"] + serve_args
    env = dict(os.environ, TOKIO_WORKER_THREADS=str(workers))
    server = Server("wharf", port, spawn(out, taskset(cpus) + cmd, env), signal.SIGTERM,
                    out, scheme)
    wait_listening(server)
    server.notes.append(f"TOKIO_WORKER_THREADS={workers}, "
                        f"{thread_count(server.proc.pid)} threads")
    return server


# ---------------------------------------------------------------- curl checks

Reply = collections.namedtuple("Reply", "status fields size version")


def curl(url, headers=(), extra=()):
    """Status, lower-cased headers, body size and HTTP version of one GET. `extra`:
    more curl options (e.g. --cacert FILE, --http2)."""
    cmd = ["curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-D", "-",
           "-w", "\n__SIZE__ %{size_download} %{http_version}\n", *extra, url]
    for h in headers:
        cmd += ["-H", h]
    # Bytes, not text=True: universal newlines would turn the CRLFs into LFs.
    out = subprocess.run(cmd, capture_output=True, timeout=15, check=True).stdout
    out = out.decode("latin-1")
    head, _, tail = out.partition("\r\n\r\n")
    lines = head.split("\r\n")
    fields = dict((k.strip().lower(), v.strip()) for k, _, v in
                  (line.partition(":") for line in lines[1:]))
    m = re.search(r"__SIZE__ (\d+) (\S+)", tail)
    return Reply(int(lines[0].split()[1]), fields, int(m.group(1)), m.group(2))


# ---------------------------------------------------------------- idle connections

def hold_idle(server, cmd):
    """RSS of all the server's processes before and after an idle-connection client
    (bench/idle_conns.py, or wharf-load --idle) has opened its connections, each after
    one request. The client prints "READY <opened> <failed> [notes]" once they are
    open, waits for a line on stdin, prints "OPEN <still open>" and exits. Returns
    before, after, opened, failed, still_open, per_conn (None with none opened) and
    rest, what the READY line says after the counts."""
    before = server.rss()
    client = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ready = read_line(client, "READY", timeout=300).split()
        opened, failed = int(ready[1]), int(ready[2])
        time.sleep(2)  # let the server finish any work the last requests started
        after = server.rss()
        client.stdin.write("done\n")
        client.stdin.flush()
        still_open = int(read_line(client, "OPEN", timeout=30).split()[1])
        client.wait(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    return dict(before=before, after=after, opened=opened, failed=failed,
                still_open=still_open, per_conn=(after - before) / opened if opened else None,
                rest=" ".join(ready[3:]))


def read_line(proc, prefix, timeout):
    """The client's next line starting with `prefix`, waiting at most `timeout` s.
    (It writes one line and then waits for us, so nothing sits in the pipe buffer.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([proc.stdout], [], [], deadline - time.monotonic())[0]:
            break
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line
        if not line and proc.poll() is not None:
            break
    raise RuntimeError(f"the idle client ({proc.args[0]}) gave no {prefix} line")


# ---------------------------------------------------------------- load generators

def run_timed(cmd, timeout, cwd=ROOT):
    """Run a load generator to completion: (CompletedProcess, CPU seconds it used,
    wall-clock seconds it ran)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return proc, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), wall


def run_wrk(url, args, spec, headers, cpus):
    """One wrk run; returns its totals, its error counts and the CPU it used.
    spec["depth"] > 1 pipelines with bench/pipeline.lua."""
    depth = spec.get("depth", 1)
    script = BENCH / ("pipeline.lua" if depth > 1 else "report.lua")
    cmd = taskset(cpus) + ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s",
                           "--timeout", "10s", "-s", str(script)]
    for h in headers:
        cmd += ["-H", h]
    cmd += [url] + (["--", str(depth)] if depth > 1 else [])
    proc, cpu, _ = run_timed(cmd, args.duration + 60)
    if proc.returncode != 0 or "WRK_RESULT" not in proc.stdout:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    result = json.loads(proc.stdout.split("WRK_RESULT", 1)[1].splitlines()[0])
    result["text_errors"] = wrk_text_errors(proc.stdout)
    result["wrk_cpu"] = cpu
    result["stdout"] = proc.stdout
    return result


def wrk_text_errors(text):
    """The error lines wrk prints: 'Non-2xx or 3xx responses: N' and
    'Socket errors: connect N, read N, write N, timeout N'."""
    errors = {}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors["status"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    for key, value in zip(("connect", "read", "write", "timeout"), m.groups() if m else (0,) * 4):
        errors[key] = int(value)
    return errors


def measure_wrk(server, url, args, spec, headers, cpus):
    """One wrk run with rates per second, the CPU each side used (and what the rest of
    the machine used meanwhile), requests per server CPU-second, all errors, and the
    lines the server's access log got (if it has one)."""
    truncate_log(server)
    (user0, sys0), busy0 = server.cpu_split(), busy_cpu_seconds()
    start = time.monotonic()
    r = run_wrk(url, args, spec, headers, cpus)
    wall = time.monotonic() - start
    user1, sys1 = server.cpu_split()
    server_seconds, busy = (user1 - user0) + (sys1 - sys0), busy_cpu_seconds() - busy0
    seconds = r["duration_us"] / 1e6
    r["server_cpu"] = server_seconds / seconds
    # Everything else that ran meanwhile (another build, the hypervisor): noise.
    r["other_cpu"] = max(0.0, (busy - server_seconds - r["wrk_cpu"]) / wall)
    r["wrk_cpu"] /= seconds
    r["rps"] = r["requests"] / seconds
    r["mbps"] = r["bytes"] / seconds / 1e6
    # Requests per second of server CPU: what the server does with a whole CPU,
    # whatever limited the run (the client may have).
    r["per_cpu"] = r["requests"] / server_seconds if server_seconds > 0 else None
    # The same CPU per request, split: the kernel's part (system calls, and on
    # loopback the peer's receive path, run on the sender's CPU) and the server's own.
    if r["requests"]:
        r["user_us"] = (user1 - user0) / r["requests"] * 1e6
        r["sys_us"] = (sys1 - sys0) / r["requests"] * 1e6
    if server.access_log:
        r["log_lines"] = count_lines(server.access_log)
    r["errors"] = sum(r["text_errors"].values())
    json_errors = sum(r[k] for k in ("connect", "read", "write", "timeout", "status"))
    if json_errors != r["errors"]:
        log(f"warning: wrk printed {r['errors']} errors but counted {json_errors}")
        r["errors"] = max(r["errors"], json_errors)
    return r


def truncate_log(server):
    """Empty the server's access log (both servers append to it), so it holds one run's
    lines and the disk does not fill up over a full run."""
    if server.access_log:
        os.truncate(server.access_log, 0)


def count_lines(path):
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            n += chunk.count(b"\n")
    return n


# ---------------------------------------------------------------- system calls

# What the syscall table reports, per request: each group is the sum of these calls
# (sendfile is sendfile64 to perf's tracepoints; pread64 and preadv are file reads,
# nginx's when it gzips); "other" is every other call, and "total" all of them.
SYSCALL_GROUPS = {
    "reads": ("read", "readv", "recvfrom", "recvmsg", "recvmmsg", "pread64", "preadv"),
    "writes": ("write", "writev", "sendto", "sendmsg", "sendmmsg", "sendfile64", "pwrite64",
               "pwritev", "splice"),
    "epoll_wait": ("epoll_wait", "epoll_pwait", "epoll_pwait2"),
    "futex": ("futex",),
}
# Counted one by one too with perf (strace counts every call by name anyway): what a web
# server may call per request or per connection. perf closes ~2 s after a run with these
# (~13 s with all 360 syscall tracepoints). Calls not listed are in "total" only.
SYSCALL_OTHERS = (
    "epoll_ctl", "accept", "accept4", "close", "shutdown", "openat", "openat2", "newfstatat",
    "statx", "newfstat", "lseek", "setsockopt", "getsockopt", "ioctl", "fcntl", "sched_yield",
    "mmap", "munmap", "mremap", "madvise", "mprotect", "brk", "io_uring_enter",
    "clock_nanosleep", "nanosleep", "getrandom", "timerfd_settime", "tgkill",
    "rt_sigprocmask", "getpid", "sched_getaffinity")


class SyscallCounter:
    """Counts a server's system calls over a window: `perf stat` on the syscall
    tracepoints (every thread of the server's processes, also threads started during the
    window; the counters are switched on and off through perf's control FIFO right before
    and after the client run), or else `strace -c -f` (ptrace: slows the server down a
    lot, the counts per request still hold). start(server) before the client run, stop()
    after it: a dict {syscall: count, "total": count}."""

    def __init__(self, tool="auto"):
        self.tool, self.events = None, []
        if tool in ("auto", "perf") and which("perf") and self._perf_ok("raw_syscalls:sys_enter"):
            names = [n for names in SYSCALL_GROUPS.values() for n in names] + list(SYSCALL_OTHERS)
            every = ",".join(f"syscalls:sys_enter_{n}" for n in names)
            # Kernels differ in their syscalls (no newfstat here, no recvmmsg there):
            # keep the tracepoints this one has.
            self.events = names if self._perf_ok(every) else \
                [n for n in names if self._perf_ok(f"syscalls:sys_enter_{n}")]
            if "read" in self.events:
                self.tool = "perf"
        if self.tool is None and tool in ("auto", "strace") and which("strace"):
            self.tool = "strace"
        self.proc = self.ctl_fd = self.ack_fd = None

    @staticmethod
    def _perf_ok(event):
        try:
            p = subprocess.run(["perf", "stat", "-x,", "-e", event, "--", "true"],
                               capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return False
        return p.returncode == 0 and "not supported" not in p.stderr \
            and "<not counted>" not in p.stderr

    def describe(self):
        if self.tool == "perf":
            return (f"`perf stat -e raw_syscalls:sys_enter,syscalls:sys_enter_… -p PIDS` "
                    f"({len(self.events)} system calls by name; "
                    f"{command_output(['perf', '--version'])})")
        return f"`strace -c -f -p PID …` ({command_output(['strace', '-V'])})"

    def start(self, server):
        """Attach to every process of the server; counting from when this returns."""
        pids = [str(p) for p in server.pids()]
        self.out = server.logdir / "syscalls.txt"
        if self.tool == "perf":
            self.ctl, self.ack = server.logdir / "perf.ctl", server.logdir / "perf.ack"
            for fifo in (self.ctl, self.ack):
                fifo.unlink(missing_ok=True)
                os.mkfifo(fifo)
            events = ",".join([f"syscalls:sys_enter_{n}" for n in self.events]
                              + ["raw_syscalls:sys_enter"])
            cmd = ["perf", "stat", "-x,", "-o", str(self.out), "-D", "-1",
                   "--control", f"fifo:{self.ctl},{self.ack}", "-e", events, "-p", ",".join(pids)]
        else:
            cmd = ["strace", "-c", "-f", "-q", "-o", str(self.out)]
            for pid in pids:
                cmd += ["-p", pid]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        try:
            if self.tool == "perf":
                self._perf_command("enable")
            else:
                time.sleep(1.0)  # strace has stopped and resumed every thread by then
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.tool} exited {self.proc.returncode}: "
                                   f"{self.proc.stderr.read()[-500:]}")
        except BaseException:
            self._close_fifos()
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.communicate()
            raise

    def _close_fifos(self):
        for fd in (self.ctl_fd, self.ack_fd):
            if fd is not None:
                os.close(fd)
        self.ctl_fd = self.ack_fd = None

    def _perf_command(self, command, timeout=60):
        """Send `command` on perf's control FIFO and wait for its "ack" (perf reads the
        FIFO once its counters are open)."""
        deadline = time.monotonic() + timeout
        while self.ctl_fd is None:
            try:  # fails with ENXIO until perf has opened the FIFO
                self.ctl_fd = os.open(self.ctl, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"perf exited {self.proc.returncode}: "
                                       f"{self.proc.stderr.read()[-500:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"perf did not open {self.ctl} in {timeout} s")
                time.sleep(0.05)
            self.ack_fd = os.open(self.ack, os.O_RDONLY | os.O_NONBLOCK)
        os.write(self.ctl_fd, f"{command}\n".encode())
        got = b""
        while b"ack" not in got:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise RuntimeError(f"perf did not acknowledge {command!r}")
            if select.select([self.ack_fd], [], [], min(left, 0.5))[0]:
                got += os.read(self.ack_fd, 64)

    def stop(self):
        if self.tool == "perf":
            try:
                self._perf_command("disable")
            finally:
                self._close_fifos()
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise RuntimeError(f"{self.tool} did not stop 60 s after SIGINT")
        text = self.out.read_text()
        counts = self._parse_perf(text) if self.tool == "perf" else self._parse_strace(text)
        if not counts.get("total"):
            raise RuntimeError(f"{self.tool} counted nothing: {(text or err)[-500:]!r}")
        return counts

    @staticmethod
    def _parse_perf(text):
        counts = {}
        for line in text.splitlines():
            fields = line.split(",")
            if len(fields) < 3 or not fields[0].strip().isdigit():
                continue
            event = fields[2]
            name = "total" if event == "raw_syscalls:sys_enter" else \
                event.removeprefix("syscalls:sys_enter_")
            if int(fields[0]):
                counts[name] = int(fields[0])
        return counts

    @staticmethod
    def _parse_strace(text):
        """strace -c's table: '% time seconds usecs/call calls [errors] syscall'."""
        counts, total = {}, 0
        for line in text.splitlines():
            fields = line.split()
            if len(fields) < 5 or fields[-1] == "total" or not fields[3].isdigit():
                continue
            name = "sendfile64" if fields[-1] == "sendfile" else fields[-1]
            counts[name] = counts.get(name, 0) + int(fields[3])
            total += int(fields[3])
        counts["total"] = total
        return counts


def per_request(counts, requests):
    """{group: calls per request} for the report: reads, writes, epoll_wait, futex,
    other (every call not in a group) and total."""
    out = {g: sum(counts.get(n, 0) for n in names) / requests
           for g, names in SYSCALL_GROUPS.items()}
    out["total"] = counts["total"] / requests
    out["other"] = out["total"] - sum(out[g] for g in SYSCALL_GROUPS)
    return out


def alternate(servers, repeat, run_one):
    """run_one(server, rep) for every server, `repeat` times, alternating the servers run
    by run with the order flipped every repeat (so drift over time hits all alike);
    {server name: [results in run order]}."""
    results = {s.name: [] for s in servers}
    results.update(alternate_restarted(lambda: servers, repeat, run_one, lambda _: None))
    return results


def alternate_restarted(start, repeat, run_one, stop):
    """alternate(), with the servers started anew by start() for every repeat and
    stopped by stop(servers) after it: the repeats are then independent draws of what a
    process settles into when it starts (such as how the workers of the origin behind a
    proxy split that proxy's connections), rather than one draw measured `repeat` times."""
    results = {}
    for rep in range(repeat):
        servers = start()
        try:
            for s in (servers if rep % 2 == 0 else servers[::-1]):
                results.setdefault(s.name, []).append(run_one(s, rep))
        finally:
            stop(servers)
    return results


# ---------------------------------------------------------------- report

def median(runs, key="rps"):
    return statistics.median(r[key] for r in runs) if runs else None


def fmt_ratio(ratio):
    return "—" if ratio is None else f"{ratio:.2f}"


def met_cell(ratio, target):
    """'yes', '**no**' (never hidden), or '—' when there is nothing to compare."""
    return "—" if ratio is None else ("yes" if ratio >= target else "**no**")


def command_output(cmd):
    """First line of a command's output (versions), or 'unknown'."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return (p.stdout + p.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown"


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def host_rows():
    """(key, value) rows describing the machine: date, nproc, CPU model, kernel."""
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                  if l.startswith("model name")), platform.processor() or "unknown")
    return [("date", utc_now()), ("nproc", str(os.cpu_count())), ("CPU", model),
            ("kernel", platform.release())]


def commit_row():
    commit = command_output(["git", "-C", str(ROOT), "describe", "--always", "--dirty"])
    if WHARF_BIN != RELEASE_BIN:
        commit += f" (binary: {WHARF_BIN})"
    return ("wharf commit", commit)


def pinning_text(pin, client):
    """How one pinning mode places the processes."""
    client_cpus, srv_cpus = cpu_sets(pin)
    return (f"{client} on CPU {client_cpus}, servers on CPU {srv_cpus}" if client_cpus
            else "none (the kernel places every process)")


def pinning_row(pin, client):
    return ("pinning", "; ".join(f"{PIN_TITLES[m]}: {pinning_text(m, client)}"
                                 for m in pin_modes(pin)))


def bullet_rows(rows):
    return "\n".join(f"- {k}: {v}" for k, v in rows)


def write_results(section, mark_start, mark_end):
    """Replace the section between the markers in RESULTS.md (or append one);
    the rest of the file, other sections included, is kept."""
    block = f"{mark_start}\n{section}{mark_end}\n"
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else "# wharf benchmark results\n\n"
    if mark_start in text and mark_end in text:
        head, rest = text.split(mark_start, 1)
        text = head + block + rest.split(mark_end, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    RESULTS_MD.write_text(text)
    log(f"wrote {RESULTS_MD}")
