"""Helpers of scripts/text-order: a mock relay, a load, and the list from callgrind's output.

    text-order.py relay PORT         answers /v1/responses, as JSON or as an event stream
    text-order.py load PORT          waits for the proxy, sends 200 JSON and 200 SSE requests
    text-order.py list OUT BINARY    the functions of BINARY that callgrind saw run
    text-order.py port               a free loopback port
"""
import asyncio, json, re, socket, subprocess, sys, time

EVENTS = [
    {"type": "response.output_text.delta", "sequence_number": i, "delta": f"word {i} "}
    for i in range(9)
] + [{"type": "response.completed", "response": {"id": "resp_t", "usage": {
    "input_tokens": 5000, "input_tokens_details": {"cached_tokens": 4000},
    "output_tokens": 20, "total_tokens": 5020}}}]


def reply(stream):
    if stream:
        body = b"".join(
            b"%x\r\n%s\r\n" % (len(e), e)
            for e in (f"event: {ev['type']}\ndata: {json.dumps(ev)}\n\n".encode() for ev in EVENTS)
        ) + b"0\r\n\r\n"
        head = b"content-type: text/event-stream\r\ntransfer-encoding: chunked"
    else:
        body = json.dumps({"id": "resp_t", "object": "response", "status": "completed",
                           "output": [], "usage": EVENTS[-1]["response"]["usage"]}).encode()
        head = b"content-type: application/json\r\ncontent-length: %d" % len(body)
    return b"HTTP/1.1 200 OK\r\n" + head + b"\r\n\r\n" + body


async def serve_relay(port):
    async def handle(r, w):
        try:
            while True:
                head = (await r.readuntil(b"\r\n\r\n")).lower()
                length = re.search(rb"content-length: *(\d+)", head)
                await r.readexactly(int(length.group(1)) if length else 0)
                w.write(reply(b"accept: text/event-stream" in head))
        except (asyncio.IncompleteReadError, ConnectionError):
            w.close()
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    await server.serve_forever()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(port):
    deadline = time.time() + 120  # start-up under valgrind is slow
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=60)
            break
        except OSError:
            if time.time() > deadline:
                sys.exit("text-order: the proxy did not start")
            time.sleep(0.2)
    text = "Lorem ipsum dolor sit amet. " * 700
    f = s.makefile("rb")
    for stream in [False] * 200 + [True] * 200:
        body = json.dumps({"model": "gpt-5.1", "stream": stream, "store": False,
                           "input": [{"type": "message", "role": "user",
                                      "content": [{"type": "input_text", "text": text}]}],
                           "prompt_cache_key": "019a0000-0000-7000-8000-000000000000"}).encode()
        accept = b"text/event-stream" if stream else b"application/json"
        s.sendall(b"POST /v1/responses HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: "
                  b"application/json\r\naccept: %s\r\ncontent-length: %d\r\n\r\n%s"
                  % (accept, len(body), body))
        status = f.readline()
        if b" 200 " not in status:
            sys.exit(f"text-order: the proxy answered {status!r}")
        length, chunked = 0, False
        while (line := f.readline().lower()) != b"\r\n":
            if line.startswith(b"content-length:"):
                length = int(line.split(b":")[1])
            chunked |= line.startswith(b"transfer-encoding:") and b"chunked" in line
        if not chunked:
            f.read(length)
            continue
        while (size := int(f.readline().strip(), 16)) != 0:
            f.read(size + 2)
        f.readline()


def glob(symbol):
    """The symbol as a linker-script glob that still matches it after a rebuild.

    Rust's symbols carry hashes of the crate's build (the version, the dependencies, the
    toolchain): legacy ones end in `17h<16 hex digits>E`, v0 ones (the standard library's) name
    each crate as `Cs<base-62 hash>_`. C symbols (SQLite's) are kept as they are.
    """
    # LTO numbers the copies it makes (`….llvm.123`, `….4387`), differently in every build.
    symbol = re.sub(r"17h[0-9a-f]{16}E(\.[.0-9a-z]*)?$", "17h*", symbol)
    symbol = re.sub(r"\.[0-9]+$", ".*", symbol)
    if symbol.startswith("_R"):
        # Back-references (`B<offset>_`) count bytes, so they move with the hashes' lengths.
        symbol = re.sub(r"Cs[0-9A-Za-z]+_", "Cs*_", symbol)
        symbol = re.sub(r"B[0-9A-Za-z]*_", "B*_", symbol)
    return symbol


def listing(out, binary):
    ran = set()
    for line in open(out, errors="replace"):
        m = re.match(r"c?fn=\(\d+\) (\S+)$", line.rstrip("\n"))
        if m:
            ran.add(m.group(1))
    nm = subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True,
                        check=True).stdout
    defined = {p[2] for p in (l.split() for l in nm.splitlines())
               if len(p) == 3 and p[1] in "tTwW"}
    names = sorted({glob(n) for n in ran & defined if re.fullmatch(r"[A-Za-z0-9_.$]+", n)})
    if len(names) < 500:  # start-up alone runs more: the run or the binary went wrong
        sys.exit(f"text-order: only {len(names)} functions ran; the list is left as it was")
    print("# Functions a serving proxy runs, as globs over their symbols: release builds on Linux")
    print("# pack them together. Written by scripts/text-order; build/text_order.rs says why.")
    print("\n".join(names))


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "relay":
        asyncio.run(serve_relay(int(sys.argv[2])))
    elif command == "load":
        load(int(sys.argv[2]))
    elif command == "port":
        print(free_port())
    elif command == "list":
        listing(sys.argv[2], sys.argv[3])
