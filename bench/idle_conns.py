#!/usr/bin/env python3
"""Hold many idle keep-alive connections open against a loopback HTTP server.

Each connection sends one GET, reads the whole response (so the server has done a
full request on it and gone back to waiting), then stays open and silent. Used by
bench/run to measure a server's memory per idle keep-alive connection, over HTTP/1.1
(scenario f) or, with --tls, over HTTPS/1.1 (scenario ft: Python's ssl module, the
server's chain verified against --cafile, ALPN http/1.1 offered unless --no-alpn).
With --h2 the request goes over HTTP/2 instead (h2c with prior knowledge, or with
--tls ALPN h2): bench/tls scenario m.

Protocol with the caller (stdout/stdin, one line each):
  prints  "READY <opened> <failed> [<TLS version> <cipher> alpn=<protocol>]"
          once every connection is set up;
  waits   for a line on stdin (or --hold seconds), while the connections sit idle;
  prints  "OPEN <n>"                  the connections the server has not closed;
  then closes everything and exits.

Standard library only. Traffic goes to loopback addresses only.
"""

import argparse
import asyncio
import ipaddress
import resource
import ssl
import sys


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=5000)
    p.add_argument("--path", default="/1k.bin")
    # Connecting thousands at once would overflow the listen backlog (nginx's is
    # 511) and stall on SYN retransmits; a bounded number in flight avoids that.
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--timeout", type=float, default=10.0, help="per connection setup, seconds")
    p.add_argument("--hold", type=float, default=120.0, help="longest wait for stdin, seconds")
    p.add_argument("--tls", action="store_true", help="HTTPS: TLS with Python's ssl module")
    p.add_argument("--cafile", help="with --tls: verify the server's chain against this root")
    p.add_argument("--server-name", default="localhost",
                   help="with --tls: SNI and the name the certificate must carry (localhost)")
    p.add_argument("--no-alpn", action="store_true",
                   help="with --tls: offer no ALPN (default: offer http/1.1)")
    p.add_argument("--h2", action="store_true",
                   help="HTTP/2: h2c with prior knowledge, or with --tls ALPN h2")
    args = p.parse_args()
    if not ipaddress.ip_address(args.host).is_loopback:
        p.error("refusing a non-loopback host: this tool is for local benchmarks only")
    return args


def raise_fd_limit(needed):
    """One fd per connection plus headroom; the soft limit can go up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed + 256
    if hard != resource.RLIM_INFINITY and hard < want:
        sys.exit(f"RLIMIT_NOFILE hard limit {hard} < {want}: raise it (ulimit -Hn) first")
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


async def read_response(reader):
    """Read one response with a Content-Length body; return its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    await reader.readexactly(length)
    return status


def tls_context(args):
    """TLS 1.2 or 1.3, the chain verified against --cafile, the name --server-name."""
    ctx = ssl.create_default_context(cafile=args.cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if args.h2:
        ctx.set_alpn_protocols(["h2"])
    elif not args.no_alpn:
        ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def h2_frame(kind, flags, stream, payload=b""):
    return (len(payload).to_bytes(3, "big") + bytes([kind, flags])
            + stream.to_bytes(4, "big") + payload)


def h2_request(host, path, tls):
    """The client preface, an empty SETTINGS, and GET `path` on stream 1: HPACK
    static-table entries and literals without indexing, no Huffman (RFC 7541)."""
    def literal(index, value):  # literal without indexing, indexed name (4-bit prefix)
        v = value.encode()
        name = bytes([index]) if index < 15 else bytes([15, index - 15])
        return name + bytes([len(v)]) + v
    block = (b"\x82" + (b"\x87" if tls else b"\x86") + literal(4, path) + literal(1, host)
             + literal(58, "wharf-bench-idle"))
    return (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(4, 0, 0)
            + h2_frame(1, 0x5, 1, block))


async def read_h2_response(reader, writer):
    """Reads frames until stream 1 ends, acknowledging the server's SETTINGS; the
    status (200 when the head's first field is the static :status 200)."""
    status = None
    while True:
        head = await reader.readexactly(9)
        length, kind, flags = int.from_bytes(head[:3], "big"), head[3], head[4]
        stream = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
        payload = await reader.readexactly(length)
        if kind == 4 and not flags & 0x1:
            writer.write(h2_frame(4, 0x1, 0))
        elif kind == 7:
            raise ValueError("GOAWAY")
        if stream == 1 and kind == 1 and status is None:
            status = 200 if payload[:1] == b"\x88" else 0
        if stream == 1 and kind in (0, 1) and flags & 0x1:
            return status


async def open_one(args, sem, ctx):
    """Open one connection and complete one request on it; None on failure."""
    host = args.server_name if ctx else args.host
    request = (f"GET {args.path} HTTP/1.1\r\nHost: {host}\r\n"
               "User-Agent: wharf-bench-idle\r\n\r\n").encode()
    tls = dict(ssl=ctx, server_hostname=args.server_name,
               ssl_handshake_timeout=args.timeout) if ctx else {}
    async with sem:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(args.host, args.port, **tls), args.timeout)
            if args.h2:
                writer.write(h2_request(host, args.path, ctx is not None))
                status = await asyncio.wait_for(read_h2_response(reader, writer), args.timeout)
            else:
                writer.write(request)
                status = await asyncio.wait_for(read_response(reader), args.timeout)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError,
                ssl.SSLError) as e:
            global FIRST_ERROR
            FIRST_ERROR = FIRST_ERROR or repr(e)
            return None
    if status != 200:
        writer.close()
        return None
    return reader, writer


async def wait_for_caller(hold):
    """Return when the caller writes a line or closes stdin, or after `hold` seconds.

    The event loop keeps running meanwhile, so server-side closes are noticed."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    try:
        loop.add_reader(sys.stdin.fileno(), lambda: ready.done() or ready.set_result(None))
    except (OSError, ValueError):  # stdin not pollable (e.g. /dev/null)
        await asyncio.sleep(hold)
        return
    try:
        await asyncio.wait_for(ready, hold)
    except asyncio.TimeoutError:
        pass
    finally:
        loop.remove_reader(sys.stdin.fileno())


FIRST_ERROR = None


def session_text(conns):
    """What the first TLS connection negotiated: version, cipher, ALPN."""
    obj = conns[0][1].get_extra_info("ssl_object") if conns else None
    if obj is None:
        return ""
    return f" {obj.version()} {obj.cipher()[0]} alpn={obj.selected_alpn_protocol() or 'none'}"


async def main():
    args = parse_args()
    raise_fd_limit(args.count)
    sem = asyncio.Semaphore(args.concurrency)
    ctx = tls_context(args) if args.tls else None
    results = await asyncio.gather(*(open_one(args, sem, ctx) for _ in range(args.count)))
    conns = [c for c in results if c is not None]
    if FIRST_ERROR:
        print(f"first failure: {FIRST_ERROR}", file=sys.stderr, flush=True)
    print(f"READY {len(conns)} {args.count - len(conns)}{session_text(conns)}", flush=True)

    await wait_for_caller(args.hold)
    # A server that closed an idle connection has delivered EOF by now.
    still_open = sum(1 for reader, _ in conns if not reader.at_eof())
    print(f"OPEN {still_open}", flush=True)

    for _, writer in conns:
        writer.close()


if __name__ == "__main__":
    asyncio.run(main())
