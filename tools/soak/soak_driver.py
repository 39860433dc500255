#!/usr/bin/python3
"""Soak load for a running ossgate inference worker (tools/soak.sh starts it).

N concurrent loops (default 64), each sending Generate requests over mutual TLS
one after another until the duration ends, with a random mix of kinds:

  greedy    temperature 0, read to the end
  sampled   temperature 1.0 (sometimes top_p 0.9), a seed from a small pool
  cancel    the client cancels the call after k messages (k = 0: after a short
            delay, often while the request is still queued)
  abort     after k messages the same identity calls Abort(request_id); the
            stream must end with finish_reason CANCELLED
  stall     a channel with a 16 KiB HTTP/2 window and no BDP probing; the
            client reads at most a few messages, then stops reading; the
            worker must cancel the call after --stall_timeout_s

Expected outcomes are counted per kind; anything else is an unexpected error.
Completed greedy and sampled requests with the same prompt, parameters and
seed must produce the same tokens (the API promises it whatever else runs).
Alongside, provenance-service commands (--prov_cmd, e.g. provctl audit query)
run one after another, and every --sample_s the resident memory, open file
descriptors and threads of the watched processes (--watch NAME=PID) and the
worker's /metrics gauges are recorded. At the end: the worker must be idle
(no running, waiting or paused sequence, no KV block in use), its stalled
stream counter must match the stalls the clients saw, and the resource bounds
must hold. Prints the tables, writes a markdown report, exits 1 on failure.
"""

import argparse
import asyncio
import collections
import gc
import json
import math
import os
import random
import statistics
import sys
import time
import urllib.request

import grpc
from grpc import aio

try:
    from ossgate.inference.v1 import inference_pb2 as pb
    from ossgate.inference.v1 import inference_pb2_grpc as pb_grpc
except ImportError as e:  # a setup problem, said plainly
    sys.stderr.write("soak_driver: cannot import the generated stubs (%s); build the CMake target "
                     "ossgate_python_stubs and put <build>/tests/worker/python on PYTHONPATH\n" % e)
    sys.exit(2)

KINDS = ("greedy", "sampled", "cancel", "abort", "stall")
DEFAULT_MIX = "greedy:30,sampled:30,cancel:15,abort:15,stall:10"

# Prompts in the style of the bundled model's training text (1961 American
# prose), short and long, so prefill chunks of different sizes join the batch.
TEXT_PROMPTS = [
    "The old man walked down to the harbor",
    "In the spring of that year the committee",
    "She said that she had never seen",
    "It was late in the afternoon when",
    "The first thing to understand about the new plan is that",
    "Mr. Jones told the reporters that the city",
    "The church stood at the end of the road, and",
    "According to the report, the costs of the program",
]
LONG_PARAGRAPH = (
    "The town lay in a valley between two ridges, and in the mornings the fog came down from the hills and "
    "filled the streets so that a man could not see the church from the post office. The farmers came in on "
    "Saturdays with their wagons and their children, and the stores stayed open until the last of them had "
    "gone home. ")
CHAT_PROMPTS = [
    "Tell me a short story about a lighthouse keeper.",
    "What did the committee decide about the new school?",
    "Describe the harbor in the morning.",
]


def percentile(values, p):
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))]


def fmt_ms(seconds):
    return "—" if seconds is None else "%.1f" % (seconds * 1000.0)


def parse_mix(text):
    mix = {}
    for part in text.split(","):
        name, _, weight = part.partition(":")
        if name not in KINDS or not weight.isdigit():
            raise argparse.ArgumentTypeError("want kind:weight,... with kinds %s, got %r" % (KINDS, part))
        mix[name] = int(weight)
    if sum(mix.values()) == 0:
        raise argparse.ArgumentTypeError("the weights sum to 0")
    return mix


def parse_watch(text):
    name, _, pid = text.partition("=")
    if not name or not pid.isdigit():
        raise argparse.ArgumentTypeError("want NAME=PID, got %r" % text)
    return name, int(pid)


def parse_args(argv):
    p = argparse.ArgumentParser(description="Soak load for a running ossgate inference worker.")
    p.add_argument("--server", required=True, help="worker address host:port")
    p.add_argument("--ca", required=True, help="PEM CA of the worker's certificate")
    p.add_argument("--cert", required=True, help="PEM client certificate (role client)")
    p.add_argument("--key", required=True, help="PEM private key of --cert")
    p.add_argument("--metrics_url", default="", help="the worker's /metrics URL (checks at the end)")
    p.add_argument("--streams", type=int, default=64, help="concurrent request loops")
    p.add_argument("--duration_s", type=float, default=600, help="seconds of load")
    p.add_argument("--stall_timeout_s", type=float, required=True, help="the worker's --stall_timeout_s")
    p.add_argument("--ramp_s", type=float, default=5, help="the loops start evenly over this many seconds")
    p.add_argument("--stall_fill_s", type=float, default=20,
                   help="a stalled reader stops reading for --stall_timeout_s plus this (time to fill the window)")
    p.add_argument("--max_context", type=int, default=2048, help="the worker's --max_context")
    p.add_argument("--mix", type=parse_mix, default=parse_mix(DEFAULT_MIX), help="kind:weight,... of " +
                   ", ".join(KINDS) + " (default %s)" % DEFAULT_MIX)
    p.add_argument("--seed", type=int, default=1, help="seed of the request mix")
    p.add_argument("--request_timeout_s", type=float, default=300, help="deadline of each Generate call")
    p.add_argument("--watch", type=parse_watch, action="append", default=[],
                   help="NAME=PID of a process whose RSS, fds and threads are sampled (repeatable)")
    p.add_argument("--sample_s", type=float, default=10, help="seconds between resource samples")
    p.add_argument("--prov_cmd", action="append", default=[],
                   help="JSON argv of a command run in turn against the provenance service (repeatable); "
                   "a non-zero exit is an error")
    p.add_argument("--prov_interval_s", type=float, default=2, help="pause between provenance commands")
    p.add_argument("--rss_growth_limit", type=float, default=0.20,
                   help="fail if a process's median RSS in the last minute exceeds the first minute's by more")
    p.add_argument("--fd_growth_limit", type=int, default=10,
                   help="fail if a process's open fds grow by more (last vs first minute medians; idle after "
                   "vs idle before)")
    p.add_argument("--thread_growth_limit", type=int, default=4,
                   help="fail if a process's threads grow by more (last vs first minute medians)")
    p.add_argument("--report", default="", help="write the markdown report here")
    p.add_argument("--describe", action="append", default=[],
                   help="KEY=VALUE line for the report's setup table (repeatable)")
    args = p.parse_args(argv)
    if args.streams < 1:
        p.error("--streams must be >= 1")
    if args.duration_s <= 0:
        p.error("--duration_s must be > 0")
    return args


# ---- Measurements ----------------------------------------------------------


class Stats:
    """Everything the run measures; times are seconds since t0 (monotonic)."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.outcomes = collections.Counter()        # (kind, outcome) -> count
        self.errors = []                             # (t, kind, text), all of them
        self.minutes = collections.defaultdict(lambda: {
            "ttft": [], "itl": [], "done": 0, "tokens": 0, "errors": 0, "load": []})
        self.stall_messages = []                     # messages a stalled stream got before the cancel
        self.stall_drained = []                      # of them, buffered while the client did not read
        self.samples = []                            # dicts, see sample_resources
        self.reference = {}                          # determinism key -> (tokens, finish)
        self.determinism_checked = 0
        self.prov_runs = collections.Counter()       # command name -> runs
        self.prov_seconds = []

    def now(self):
        return time.monotonic() - self.t0

    def minute(self, t=None):
        return self.minutes[int((self.now() if t is None else t) // 60)]

    def outcome(self, kind, outcome):
        self.outcomes[(kind, outcome)] += 1
        self.minute()["done"] += 1

    def error(self, kind, text):
        t = self.now()
        self.errors.append((t, kind, text))
        self.outcomes[(kind, "ERROR")] += 1
        self.minute(t)["errors"] += 1
        if len(self.errors) <= 20:
            sys.stderr.write("soak: unexpected [%s] at %.1f s: %s\n" % (kind, t, text))


# ---- Requests ---------------------------------------------------------------


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def make_channel(args, creds, stalled=False):
    # Each channel gets its own connection (local subchannel pool), so the
    # loops spread over many connections and closing one closes its socket.
    options = [("grpc.use_local_subchannel_pool", 1)]
    if stalled:
        # A small HTTP/2 window that does not grow: a client that stops
        # reading blocks the worker's writes after a few dozen messages.
        options += [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 16 * 1024)]
    return aio.secure_channel(args.server, creds, options=options)


class RequestFactory:
    def __init__(self, args, token_prompt):
        self.args = args
        self.token_prompt = token_prompt

    def prompt(self, rng, req):
        """Fills the prompt; returns a short name for the determinism key."""
        r = rng.random()
        if r < 0.6:
            i = rng.randrange(len(TEXT_PROMPTS))
            req.text = TEXT_PROMPTS[i]
            return "text%d" % i
        if r < 0.75:
            n = rng.choice((2, 6))  # about 120 or 360 prompt tokens
            req.text = LONG_PARAGRAPH * n + "Then"
            return "long%d" % n
        if r < 0.9:
            i = rng.randrange(len(CHAT_PROMPTS))
            msg = req.conversation.messages.add()
            msg.role = pb.ROLE_USER
            msg.content = CHAT_PROMPTS[i]
            req.conversation.reasoning_effort = pb.REASONING_EFFORT_LOW
            return "chat%d" % i
        req.token_ids.ids.extend(self.token_prompt)
        return "ids"

    def normal(self, rng, kind, request_id):
        """A greedy or sampled request that runs to its end; and its determinism key."""
        req = pb.GenerateRequest(request_id=request_id)
        name = self.prompt(rng, req)
        req.max_tokens = rng.choice((8, 32, 96, 200))
        if kind == "greedy":
            req.sampling.temperature = 0.0
        else:
            req.sampling.temperature = 1.0
            if rng.random() < 0.3:
                req.sampling.top_p = 0.9
            req.sampling.seed = rng.randrange(8)
        if rng.random() < 0.3:
            req.ignore_eos = True
        if rng.random() < 0.1:
            req.stop.append(".")
        if rng.random() < 0.1:
            req.logprobs = rng.choice((0, 5))
        key = (name, kind, req.sampling.temperature, req.sampling.top_p, req.sampling.seed, req.max_tokens,
               req.ignore_eos, tuple(req.stop))
        return req, key

    def long(self, rng, request_id, logprobs=None):
        """A request that cannot end on its own within the test's action."""
        req = pb.GenerateRequest(request_id=request_id)
        req.text = rng.choice(TEXT_PROMPTS)
        req.max_tokens = min(1500, self.args.max_context - 64)
        req.ignore_eos = True
        req.sampling.temperature = rng.choice((0.0, 1.0))
        if logprobs is not None:
            req.logprobs = logprobs
        return req


class StreamReader:
    """Reads a Generate call, recording TTFT and inter-token gaps."""

    def __init__(self, stats, t_sent):
        self.stats = stats
        self.t_sent = t_sent
        self.last = None
        self.tokens = []
        self.messages = 0
        self.final = None

    def take(self, resp):
        t = self.stats.now()
        self.messages += 1
        if resp.token_ids:
            m = self.stats.minute(t)
            if self.last is None:
                m["ttft"].append(t - self.t_sent)
            else:
                m["itl"].append(t - self.last)
            m["tokens"] += len(resp.token_ids)
            self.last = t
            self.tokens.extend(resp.token_ids)
        if resp.HasField("final"):
            self.final = resp.final


def describe_final(final):
    if final is None:
        return "no final message"
    return "finish %s%s" % (pb.FinishReason.Name(final.finish_reason),
                             (" (%s)" % final.error) if final.error else "")


async def run_normal(args, stats, factory, stub, rng, kind, request_id):
    req, key = factory.normal(rng, kind, request_id)
    reader = StreamReader(stats, stats.now())
    call = stub.Generate(req, timeout=args.request_timeout_s)
    try:
        async for resp in call:
            reader.take(resp)
    except aio.AioRpcError as e:
        stats.error(kind, "%s: %s (after %d messages)" % (e.code().name, e.details(), reader.messages))
        return
    f = reader.final
    if f is None or f.finish_reason not in (pb.FINISH_REASON_STOP, pb.FINISH_REASON_LENGTH):
        stats.error(kind, "status OK but %s" % describe_final(f))
        return
    if f.usage.generated_tokens != len(reader.tokens) or len(reader.tokens) > req.max_tokens:
        stats.error(kind, "usage.generated_tokens %d, received %d tokens, max_tokens %d" %
                    (f.usage.generated_tokens, len(reader.tokens), req.max_tokens))
        return
    got = (tuple(reader.tokens), f.finish_reason)
    want = stats.reference.setdefault(key, got)
    if want is not got:
        stats.determinism_checked += 1
        if want != got:
            stats.error(kind, "not deterministic: %s gave %d tokens (%s), earlier %d tokens (%s), first difference "
                        "at token %d" % (key, len(got[0]), pb.FinishReason.Name(got[1]), len(want[0]),
                                         pb.FinishReason.Name(want[1]),
                                         next((i for i, (a, b) in enumerate(zip(got[0], want[0])) if a != b),
                                              min(len(got[0]), len(want[0])))))
            return
    stats.outcome(kind, pb.FinishReason.Name(f.finish_reason).replace("FINISH_REASON_", "").lower())


async def run_cancel(args, stats, factory, stub, rng, request_id):
    k = rng.choice((0, 0, 1, 4, 16, 48))
    req, _ = factory.normal(rng, "sampled" if rng.random() < 0.5 else "greedy", request_id)
    req.max_tokens = 200
    req.ignore_eos = True
    reader = StreamReader(stats, stats.now())
    call = stub.Generate(req, timeout=args.request_timeout_s)
    try:
        if k == 0:
            # Often still queued or prefilling: cancellation before any token.
            await asyncio.sleep(rng.uniform(0, 0.5))
        else:
            while reader.messages < k:
                resp = await call.read()
                if resp is aio.EOF:
                    break
                reader.take(resp)
        call.cancel()
        code = await call.code()
    except aio.AioRpcError as e:
        stats.error("cancel", "%s: %s (before the client cancelled, after %d messages)" %
                    (e.code().name, e.details(), reader.messages))
        return
    if code == grpc.StatusCode.CANCELLED:
        stats.outcome("cancel", "cancelled by client" if k else "cancelled by client before reading")
    elif code == grpc.StatusCode.OK and (reader.final is not None or k == 0):
        stats.outcome("cancel", "completed before the cancel")
    else:
        stats.error("cancel", "ended with %s (%s)" % (code.name, describe_final(reader.final)))


async def run_abort(args, stats, factory, stub, rng, request_id):
    k = rng.choice((1, 2, 8, 32))
    req = factory.long(rng, request_id)
    reader = StreamReader(stats, stats.now())
    call = stub.Generate(req, timeout=args.request_timeout_s)
    abort_code = None
    try:
        async for resp in call:
            reader.take(resp)
            if abort_code is None and reader.messages >= k:
                try:
                    await stub.Abort(pb.AbortRequest(request_id=request_id), timeout=30)
                    abort_code = grpc.StatusCode.OK
                except aio.AioRpcError as e:
                    abort_code = e.code()
                    if abort_code != grpc.StatusCode.NOT_FOUND:
                        stats.error("abort", "Abort: %s: %s" % (e.code().name, e.details()))
                        call.cancel()
                        return
    except aio.AioRpcError as e:
        stats.error("abort", "%s: %s (after %d messages, abort %s)" %
                    (e.code().name, e.details(), reader.messages, abort_code and abort_code.name))
        return
    f = reader.final
    if abort_code == grpc.StatusCode.OK and f is not None and f.finish_reason == pb.FINISH_REASON_CANCELLED:
        stats.outcome("abort", "aborted")
    elif abort_code == grpc.StatusCode.NOT_FOUND and f is not None and f.finish_reason in (
            pb.FINISH_REASON_STOP, pb.FINISH_REASON_LENGTH):
        stats.outcome("abort", "finished before the abort")  # a race the request's length makes rare
    else:
        stats.error("abort", "Abort %s, stream %s after %d tokens" %
                    (abort_code and abort_code.name, describe_final(f), len(reader.tokens)))


async def run_stall(args, stats, factory, creds, rng, request_id):
    channel = make_channel(args, creds, stalled=True)
    try:
        stub = pb_grpc.InferenceServiceStub(channel)
        # Log-probabilities make the messages large, as a slow client's are,
        # so the window fills after a few dozen tokens.
        req = factory.long(rng, request_id, logprobs=20)
        reader = StreamReader(stats, stats.now())
        call = stub.Generate(req, timeout=args.request_timeout_s)
        outcome = None
        before = 0
        try:
            # The first messages show the request runs (it is no longer
            # queued); then the client stops reading for long enough that the
            # window fills and the worker's stall timeout passes.
            for _ in range(rng.choice((1, 3))):
                resp = await call.read()
                if resp is aio.EOF:
                    break
                reader.take(resp)
            await asyncio.sleep(args.stall_timeout_s + args.stall_fill_s)
            # gRPC delivers a call's status only after the messages it holds,
            # so the client reads again: what was buffered, then CANCELLED.
            before = reader.messages
            resumed = time.monotonic()
            while True:
                resp = await call.read()
                if resp is aio.EOF:
                    break
                reader.messages += 1
                if resp.HasField("final"):
                    reader.final = resp.final
                if time.monotonic() - resumed > 10:
                    # Still producing 10 s after the client came back: the
                    # window never filled, so there was no stall to detect.
                    outcome = "window never filled (client cancelled)"
                    call.cancel()
                    break
            code = await call.code()
            details = await call.details()
        except aio.AioRpcError as e:
            code, details = e.code(), e.details()
        if outcome:
            stats.outcome("stall", outcome)
        elif code == grpc.StatusCode.CANCELLED and reader.final is None:
            stats.stall_messages.append(reader.messages)
            stats.stall_drained.append(reader.messages - before)
            stats.outcome("stall", "cancelled by the worker")
        else:
            stats.error("stall", "the stalled stream ended with %s: %s (%s, %d messages)" %
                        (code.name, details, describe_final(reader.final), reader.messages))
    finally:
        await channel.close()


async def stream_loop(args, stats, factory, creds, index, end):
    rng = random.Random(args.seed * 100003 + index)
    # The loops start over the first seconds, not all at once: requests
    # cancelled while queued keep their place until the engine's next step,
    # and when every loop starts in the same instant the first steps are slow
    # enough for cancel-and-resend to overflow --max_waiting (docs/testing.md).
    await asyncio.sleep(args.ramp_s * index / args.streams)
    kinds = list(args.mix)
    weights = [args.mix[k] for k in kinds]
    channel = make_channel(args, creds)
    stub = pb_grpc.InferenceServiceStub(channel)
    n = 0
    try:
        while stats.now() < end:
            if n and rng.random() < 1 / 32:
                # New connections now and then: the worker must close the old
                # ones' sockets.
                await channel.close()
                channel = make_channel(args, creds)
                stub = pb_grpc.InferenceServiceStub(channel)
            kind = rng.choices(kinds, weights)[0]
            request_id = "soak-%d-%d" % (index, n)
            n += 1
            try:
                if kind in ("greedy", "sampled"):
                    await run_normal(args, stats, factory, stub, rng, kind, request_id)
                elif kind == "cancel":
                    await run_cancel(args, stats, factory, stub, rng, request_id)
                elif kind == "abort":
                    await run_abort(args, stats, factory, stub, rng, request_id)
                else:
                    await run_stall(args, stats, factory, creds, rng, request_id)
            except Exception as e:  # a driver bug or an unforeseen gRPC error: counted, never hidden
                stats.error(kind, "%s: %s" % (type(e).__name__, e))
    finally:
        await channel.close()


# ---- Provenance service load --------------------------------------------------


async def prov_loop(args, stats, end):
    cmds = [json.loads(c) for c in args.prov_cmd]
    i = 0
    while cmds and stats.now() < end:
        argv = cmds[i % len(cmds)]
        i += 1
        name = " ".join(a for a in argv[1:3] if not a.startswith("--"))
        t = stats.now()
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        stats.prov_seconds.append(stats.now() - t)
        stats.prov_runs[name] += 1
        if proc.returncode != 0:
            stats.error("provenance", "provctl %s exited %d: %s" % (name, proc.returncode,
                                                                    err.decode(errors="replace").strip()[-300:]))
        await asyncio.sleep(args.prov_interval_s)


# ---- Resources ----------------------------------------------------------------


def rss_by_kind(pid):
    """Resident KiB of a process's mappings: heap (brk), anonymous (malloc's mmaps, arenas), file, other."""
    kinds = collections.Counter()
    name = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            first = line.split(None, 1)[0]
            if "-" in first and not first.endswith(":"):  # a mapping's header line
                cols = line.split()
                path = cols[5] if len(cols) > 5 else ""
                name = ("heap" if path == "[heap]" else "anonymous" if not path else
                        "file" if path.startswith("/") else "other")
            elif first == "Rss:":
                kinds[name] += int(line.split()[1])
    return kinds


def proc_usage(pid):
    """(VmRSS KiB, open fds, threads, RSS by kind) of a process, or None when it is gone."""
    try:
        rss = threads = None
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
        fds = len(os.listdir("/proc/%d/fd" % pid))
        return rss, fds, threads, rss_by_kind(pid)
    except (FileNotFoundError, ProcessLookupError):
        return None


def fd_kinds(pid):
    """What a process's open fds are: {"socket": n, "pipe": n, "anon_inode:[eventfd]": n, path: n}."""
    kinds = collections.Counter()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if target.startswith(("socket:", "pipe:")):
                target = target.split(":[", 1)[0]
            elif target.startswith("/"):
                target = os.path.basename(target)
            kinds[target] += 1
    except OSError:
        pass
    return kinds


TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT",
              7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING"}


def socket_inodes(pid):
    inodes = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def tcp_table():
    """[(local port, remote port, state name, inode)] of every TCP socket on the machine."""
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    state = int(cols[3], 16)
                    rows.append((int(cols[1].rsplit(":", 1)[1], 16), int(cols[2].rsplit(":", 1)[1], 16),
                                 TCP_STATES.get(state, str(state)), cols[9]))
        except OSError:
            pass
    return rows


def socket_states(pid, table):
    """TCP states of a process's sockets, e.g. {"ESTABLISHED": 3, "LISTEN": 2}; "other" = not TCP."""
    inodes = socket_inodes(pid)
    states = collections.Counter()
    for _, _, state, inode in table:
        if inode in inodes:
            inodes.discard(inode)
            states[state] += 1
    if inodes:
        states["other"] += len(inodes)
    return states


def client_connections(pid, table, mine):
    """How many of this driver's sockets (inodes `mine`) are connected to a port `pid` listens on."""
    theirs = socket_inodes(pid)
    ports = {local for local, _, state, inode in table if state == "LISTEN" and inode in theirs}
    return sum(1 for _, remote, state, inode in table if inode in mine and remote in ports and state == "ESTABLISHED")


def scrape_metrics(url):
    """The worker's Prometheus text as {name{labels}: value}; {} without a URL."""
    if not url:
        return {}
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


GAUGES = {
    "running": 'ossgate_worker_sequences{state="running"}',
    "waiting": 'ossgate_worker_sequences{state="waiting"}',
    "paused": 'ossgate_worker_sequences{state="paused"}',
    "kv_used": 'ossgate_worker_kv_blocks{kind="used"}',
}


def load_average():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def sample_resources(args, stats, phase):
    # A call that ended in an exception sits in a reference cycle (exception,
    # traceback, call, channel), and its closed channel's socket stays open
    # until Python's cycle collector runs: without this, the worker's fds
    # would count connections the client still holds.
    gc.collect()
    s = {"t": stats.now(), "phase": phase, "load": load_average()}
    table = tcp_table()
    mine = socket_inodes(os.getpid())
    for name, pid in args.watch:
        usage = proc_usage(pid)
        if usage is None:
            stats.error("process", "%s (pid %d) is gone" % (name, pid))
            continue
        # Open fds less the connections this driver holds to the process:
        # what the process keeps open for itself.
        s[name] = usage[:3] + (usage[1] - client_connections(pid, table, mine), usage[3])
        if phase != "load":
            s[name + " fd kinds"] = fd_kinds(pid)
            s[name + " sockets"] = socket_states(pid, table)
    try:
        m = scrape_metrics(args.metrics_url)
        s.update({k: m.get(v) for k, v in GAUGES.items()})
    except OSError as e:
        stats.error("metrics", "GET %s: %s" % (args.metrics_url, e))
    stats.samples.append(s)
    if phase == "load":
        stats.minute(s["t"])["load"].append(s["load"])
    return s


async def sampler_loop(args, stats, end):
    next_t = args.sample_s
    while stats.now() < end:
        await asyncio.sleep(max(0, min(next_t, end) - stats.now()))
        if stats.now() >= end:
            break
        sample_resources(args, stats, "load")
        next_t += args.sample_s


# ---- The run -------------------------------------------------------------------


async def wait_idle(args, stats, timeout):
    """Waits until the worker has no sequence and no KV block in use."""
    deadline = time.monotonic() + timeout
    while True:
        m = scrape_metrics(args.metrics_url)
        busy = {k: m.get(v) for k, v in GAUGES.items() if m.get(v)}
        if not busy or time.monotonic() > deadline:
            return busy
        await asyncio.sleep(0.5)


async def run(args):
    stats = Stats()
    creds = grpc.ssl_channel_credentials(root_certificates=read_file(args.ca), private_key=read_file(args.key),
                                         certificate_chain=read_file(args.cert))
    async with make_channel(args, creds) as channel:
        stub = pb_grpc.InferenceServiceStub(channel)
        info = await stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=30)
        tok = await stub.Tokenize(pb.TokenizeRequest(text=TEXT_PROMPTS[0]), timeout=30)
    factory = RequestFactory(args, list(tok.token_ids))
    metrics_before = scrape_metrics(args.metrics_url)
    stats.t0 = time.monotonic()
    before = sample_resources(args, stats, "idle before")
    end = args.duration_s
    loops = [asyncio.create_task(stream_loop(args, stats, factory, creds, i, end)) for i in range(args.streams)]
    side = [asyncio.create_task(prov_loop(args, stats, end)), asyncio.create_task(sampler_loop(args, stats, end))]
    await asyncio.gather(*side)
    load_end = stats.now()
    # Every call has a deadline, so the loops end on their own.
    await asyncio.gather(*loops)
    drained = stats.now()
    busy = await wait_idle(args, stats, timeout=30)
    if busy:
        stats.error("worker", "not idle 30 s after the last request ended: %s" % busy)
    # The services close the last connections' sockets when they see them
    # closed; give them up to 30 s before the leak check.
    closed = time.monotonic()
    while True:
        await asyncio.sleep(1)
        after = sample_resources(args, stats, "idle after")
        if time.monotonic() - closed > 30 or all(
                name not in before or name not in after or after[name][1] <= before[name][1]
                for name, _ in args.watch):
            break
        stats.samples.pop()
    metrics_after = scrape_metrics(args.metrics_url)
    return stats, info, before, after, metrics_before, metrics_after, load_end, drained


def medians(samples, name, lo, hi):
    rows = [s[name] for s in samples if s["phase"] == "load" and lo <= s["t"] < hi and name in s]
    if not rows:
        return None
    return tuple(statistics.median(r[i] for r in rows) for i in range(4))


def rss_slope(samples, name, lo, hi):
    """Least-squares slope of a process's RSS in MiB per minute over load samples in [lo, hi)."""
    pts = [(s["t"] / 60, s[name][0] / 1024) for s in samples
           if s["phase"] == "load" and lo <= s["t"] < hi and name in s]
    if len(pts) < 3:
        return None
    mx = statistics.mean(x for x, _ in pts)
    my = statistics.mean(y for _, y in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)


def checks(args, stats, before, after, metrics_before, metrics_after, load_end):
    """[(what, value, bound, ok)]"""
    out = []
    out.append(("unexpected errors", str(len(stats.errors)), "0", not stats.errors))
    last_lo = max(0.0, load_end - 60)  # the last minute of load (overlaps the first in short runs)
    for name, _ in args.watch:
        first = medians(stats.samples, name, 0, 60)
        last = medians(stats.samples, name, last_lo, load_end + 1)
        if first and last:
            growth = last[0] / first[0] - 1
            out.append(("%s RSS, median last minute vs first" % name,
                        "%.1f → %.1f MiB (%+.1f%%)" % (first[0] / 1024, last[0] / 1024, growth * 100),
                        "≤ +%d%%" % round(args.rss_growth_limit * 100), growth <= args.rss_growth_limit))
            # Raw fds go up and down with the connections the loops happen to
            # hold; those the process keeps for itself must stay flat.
            out.append(("%s fds less the driver's connections to it, median last minute vs first" % name,
                        "%d → %d (with them: %d → %d)" % (first[3], last[3], first[1], last[1]),
                        "≤ +%d" % args.fd_growth_limit, last[3] - first[3] <= args.fd_growth_limit))
            # gRPC starts threads on demand and keeps some; a steady climb is the leak.
            out.append(("%s threads, median last minute vs first" % name, "%d → %d" % (first[2], last[2]),
                        "≤ +%d" % args.thread_growth_limit, last[2] - first[2] <= args.thread_growth_limit))
        if name in before and name in after:
            out.append(("%s fds, idle after vs idle before" % name, "%d → %d" % (before[name][1], after[name][1]),
                        "≤ +%d" % args.fd_growth_limit, after[name][1] - before[name][1] <= args.fd_growth_limit))
    if args.metrics_url:
        key = "ossgate_worker_stalled_streams_total"
        worker_stalls = metrics_after.get(key, 0) - metrics_before.get(key, 0)
        client_stalls = stats.outcomes[("stall", "cancelled by the worker")]
        out.append(("stalled streams: worker's counter vs the clients'", "%d vs %d" % (worker_stalls, client_stalls),
                    "equal", worker_stalls == client_stalls))
        busy = {k: after.get(k) for k in GAUGES if after.get(k)}
        out.append(("worker idle at the end (sequences, KV blocks used)", json.dumps(busy) if busy else "all 0",
                    "all 0", not busy))
    return out


def tables(args, stats, info, before, after, metrics_before, metrics_after, load_end, drained):
    lines = []
    w = lines.append
    w("### Outcomes\n")
    w("| kind | outcome | requests |")
    w("|---|---|---:|")
    for (kind, outcome), n in sorted(stats.outcomes.items()):
        w("| %s | %s | %d |" % (kind, outcome, n))
    total = sum(stats.outcomes.values())
    w("| all | | %d |" % total)
    w("")
    w("Determinism: %d completed greedy/sampled requests repeated an earlier one's prompt, parameters and seed "
      "(%d distinct); every repeat is compared token for token." % (stats.determinism_checked,
                                                                   len(stats.reference)))
    if stats.stall_messages:
        w("Stalled streams: the client stopped reading for %g s (stall timeout + %g s), then found %d messages "
          "buffered at the median (%d–%d) before the worker's CANCELLED; %d messages in all at the median." % (
              args.stall_timeout_s + args.stall_fill_s, args.stall_fill_s, statistics.median(stats.stall_drained),
              min(stats.stall_drained), max(stats.stall_drained), statistics.median(stats.stall_messages)))
    if stats.prov_runs:
        w("Provenance service: %s (%.0f ms median each, one at a time with %g s pauses)." % (
            ", ".join("%d × `provctl %s`" % (n, c) for c, n in sorted(stats.prov_runs.items())),
            statistics.median(stats.prov_seconds) * 1000, args.prov_interval_s))
    if args.metrics_url:
        deltas = {k: metrics_after[k] - metrics_before.get(k, 0) for k in metrics_after
                  if k.startswith("ossgate_worker_requests_total") and metrics_after[k] - metrics_before.get(k, 0)}
        w("Worker's counters over the run: %s." % ", ".join(
            "%s %d" % (k.split("{", 1)[1].rstrip("}"), v) for k, v in sorted(deltas.items())))
    w("")
    w("### Checks\n")
    w("| check | value | bound | result |")
    w("|---|---|---|---|")
    results = checks(args, stats, before, after, metrics_before, metrics_after, load_end)
    for what, value, bound, ok in results:
        w("| %s | %s | %s | %s |" % (what, value, bound, "pass" if ok else "**FAIL**"))
    w("")
    if stats.errors:
        w("### Unexpected errors (%d; the first 30)\n" % len(stats.errors))
        for t, kind, text in stats.errors[:30]:
            w("- %.1f s [%s] %s" % (t, kind, text.replace("|", "\\|")))
        w("")
    for name, _ in args.watch:
        half = 60 + (load_end - 60) / 2
        early, late = rss_slope(stats.samples, name, 60, half), rss_slope(stats.samples, name, half, load_end + 1)
        if early is not None and late is not None:
            w("RSS trend of %s (least squares over the samples): %+.2f MiB/min from minute 2 to %.1f, %+.2f MiB/min "
              "from there to the end." % (name, early, half / 60, late))
        firsts = [s[name][4] for s in stats.samples if s["phase"] == "load" and s["t"] < 60 and name in s]
        if firsts and name in after:
            b, a = firsts[0], after[name][4]
            w("RSS of %s by mapping, first sample under load → idle after: %s." % (name, ", ".join(
                "%s %.1f → %.1f MiB" % (k, b.get(k, 0) / 1024, a.get(k, 0) / 1024)
                for k in ("heap", "anonymous", "file", "other") if b.get(k) or a.get(k))))
        b, a = before.get(name + " fd kinds"), after.get(name + " fd kinds")
        if b is not None and a is not None:
            w("Open fds of %s, idle before → idle after: %s." % (name, ", ".join(
                "%s %d → %d" % (k, b.get(k, 0), a.get(k, 0)) for k in sorted(set(b) | set(a)))))
            b, a = before[name + " sockets"], after[name + " sockets"]
            w("Their TCP sockets by state: %s." % ", ".join(
                "%s %d → %d" % (k, b.get(k, 0), a.get(k, 0)) for k in sorted(set(b) | set(a))))
    w("")
    w("### Latency per minute (client side)\n")
    w("TTFT: request sent → first token message (includes queueing). ITL: gap between consecutive token messages "
      "of a stream that is being read; both in the minute the token arrived. Requests are counted in the minute "
      "they ended; 'drain': after the load, the last requests finishing.\n")
    w("| minute | requests | tokens | tok/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms | errors | "
      "load avg |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for i in sorted(stats.minutes):
        m = stats.minutes[i]
        span = min(60.0, max(1e-9, drained - 60 * i))
        w("| %s | %d | %d | %.0f | %s | %s | %s | %s | %d | %s |" % (
            "%d%s" % (i + 1, " (drain)" if 60 * i >= load_end else ""), m["done"], m["tokens"], m["tokens"] / span,
            fmt_ms(percentile(m["ttft"], 50)), fmt_ms(percentile(m["ttft"], 99)),
            fmt_ms(percentile(m["itl"], 50)), fmt_ms(percentile(m["itl"], 99)),
            m["errors"], "%.1f" % statistics.mean(m["load"]) if m["load"] else "—"))
    w("")
    w("### Resources every %g s\n" % args.sample_s)
    names = [n for n, _ in args.watch]
    w("fds: all open; own: less the driver's connections to the process.\n")
    head = "| t s | phase | " + " | ".join("%s RSS MiB | %s fds | own | %s threads" % (n, n, n) for n in names)
    head += " | running | waiting | paused | KV used | load avg |"
    w(head)
    w("|" + "---:|---|" + "---:|" * (4 * len(names) + 5))
    for s in stats.samples:
        cells = ["%.0f" % s["t"], s["phase"]]
        for n in names:
            u = s.get(n)
            cells += ["%.1f" % (u[0] / 1024), str(u[1]), str(u[3]), str(u[2])] if u else ["—"] * 4
        for k in GAUGES:
            v = s.get(k)
            cells.append("—" if v is None else "%d" % v)
        cells.append("%.2f" % s["load"])
        w("| " + " | ".join(cells) + " |")
    w("")
    return lines, all(ok for _, _, _, ok in results)


def main(argv):
    args = parse_args(argv)
    stats, info, before, after, mb, ma, load_end, drained = asyncio.run(run(args))
    lines, ok = tables(args, stats, info, before, after, mb, ma, load_end, drained)
    head = ["## Soak run\n", "| | |", "|---|---|"]
    for d in args.describe:
        k, _, v = d.partition("=")
        head.append("| %s | %s |" % (k, v))
    head.append("| model | %s (%s, %s, max_sequences %d, context %d) |" % (
        info.name, info.backend, info.device, info.max_sequences, info.context_length))
    head.append("| load | %d streams for %.0f s (last requests ended at %.0f s); mix %s; stall timeout %g s |" % (
        args.streams, args.duration_s, drained,
        ", ".join("%s %d" % kv for kv in args.mix.items()), args.stall_timeout_s))
    head.append("")
    text = "\n".join(head + lines) + "\n"
    sys.stdout.write(text)
    if args.report:
        with open(args.report, "w") as f:
            f.write(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
