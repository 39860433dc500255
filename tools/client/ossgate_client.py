#!/usr/bin/python3
"""Python client of the ossgate inference worker (InferenceService).

Streams a completion (--prompt) or a harmony chat answer (--chat), prints the
model info (--info) or waits until the worker is SERVING (--wait_ready_s).
Flags and output match the C++ ossgate-client, so the two can be compared:
the streamed text goes to stdout, the finish line to stderr.

The gRPC stubs are generated at build time (CMake target ossgate_python_stubs)
into <build>/tests/worker/python; put that directory on PYTHONPATH:

  PYTHONPATH=build/tests/worker/python python3 tools/client/ossgate_client.py \\
      --server=127.0.0.1:50061 --ca=pki/ca.pem --cert=pki/client-me.pem --key=pki/client-me.key \\
      --prompt="Once upon a time" --temperature=0.8 --seed=7

Uses Debian's python3-grpcio and python3-protobuf only.
"""

import argparse
import sys
import time

import grpc

try:
    from ossgate.inference.v1 import inference_pb2 as pb
    from ossgate.inference.v1 import inference_pb2_grpc as pb_grpc
except ImportError as e:  # pragma: no cover - a setup problem, said plainly
    sys.stderr.write(
        "error: cannot import the generated stubs (%s); build the CMake target "
        "ossgate_python_stubs and put <build>/tests/worker/python on PYTHONPATH\n" % e)
    sys.exit(2)

SERVICE = "ossgate.inference.v1.InferenceService"
HEALTH_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def absl_bool(text):
    """Parses an absl-style boolean flag value."""
    value = text.strip().lower()
    if value in ("1", "true", "t", "yes", "y"):
        return True
    if value in ("0", "false", "f", "no", "n"):
        return False
    raise argparse.ArgumentTypeError("not a boolean: %r" % text)


def parse_args(argv):
    p = argparse.ArgumentParser(description="Client of the ossgate inference worker.")
    p.add_argument("--server", default="127.0.0.1:50061", help="worker address")
    p.add_argument("--ca", default="", help="PEM CA of the worker's certificate")
    p.add_argument("--cert", default="", help="PEM client certificate (when the worker requires mTLS)")
    p.add_argument("--key", default="", help="PEM private key of --cert")
    p.add_argument("--server_name", default="", help="expected TLS name of the worker (default: host of --server)")
    p.add_argument("--insecure_dev_loopback", type=absl_bool, nargs="?", const=True, default=False,
                   help="development only: plaintext to a loopback worker")
    p.add_argument("--chat", default="", help="user message (rendered in the loaded model's chat format)")
    p.add_argument("--instructions", default="",
                   help="developer instructions for --chat (the system message of ChatML / Phi-3)")
    p.add_argument("--reasoning", default="", choices=["", "low", "medium", "high"],
                   help="reasoning effort for --chat (gpt-oss's harmony format only); empty: low for a gpt-oss "
                        "model, none for other families (which refuse one)")
    p.add_argument("--prompt", default="", help="raw text prompt (completion)")
    p.add_argument("--max_tokens", type=int, default=128, help="maximum generated tokens")
    p.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (0 = greedy)")
    p.add_argument("--top_p", type=float, default=1.0, help="top-p")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--show_analysis", type=absl_bool, nargs="?", const=True, default=True,
                   help="print the analysis channel of chat answers")
    p.add_argument("--info", type=absl_bool, nargs="?", const=True, default=False,
                   help="print GetModelInfo and exit")
    p.add_argument("--wait_ready_s", type=int, default=0,
                   help="wait up to this many seconds for the worker's model to be SERVING, then exit")
    p.add_argument("--timeout_s", type=float, default=0, help="deadline of the call; 0 = none")
    return p.parse_args(argv)


def read_file(path):
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def make_channel(args):
    if args.insecure_dev_loopback:
        host = args.server.rsplit(":", 1)[0]
        if host not in ("127.0.0.1", "localhost", "[::1]"):
            sys.stderr.write("error: --insecure_dev_loopback allows only loopback servers\n")
            sys.exit(2)
        return grpc.insecure_channel(args.server)
    creds = grpc.ssl_channel_credentials(root_certificates=read_file(args.ca),
                                         private_key=read_file(args.key),
                                         certificate_chain=read_file(args.cert))
    options = []
    if args.server_name:
        options.append(("grpc.ssl_target_name_override", args.server_name))
    return grpc.secure_channel(args.server, creds, options=options)


def check_health(channel, service, timeout):
    """grpc.health.v1.Health/Check with hand-encoded messages (Debian ships no
    health stubs): request {1: service}, response {1: status enum}."""
    encoded = service.encode()
    request = (b"\x0a" + bytes([len(encoded)]) + encoded) if encoded else b""
    check = channel.unary_unary("/grpc.health.v1.Health/Check")
    response = check(request, timeout=timeout)
    if not response:
        return 0
    if len(response) != 2 or response[0] != 0x08:
        raise ValueError("malformed health response")
    return response[1]


def wait_ready(channel, seconds):
    end = time.monotonic() + seconds
    last = "no answer"
    while time.monotonic() < end:
        try:
            status = check_health(channel, SERVICE, timeout=2)
            if status == 1:
                return 0
            last = HEALTH_STATUS.get(status, str(status))
        except grpc.RpcError as e:
            last = e.details() or str(e.code())
        time.sleep(0.1)
    sys.stderr.write("worker not ready: '%s' not SERVING after %ds (last: %s)\n" % (SERVICE, seconds, last))
    return 1


def build_request(args, architecture):
    """The request; `architecture` (GetModelInfo's) picks the default reasoning effort of a chat."""
    req = pb.GenerateRequest()
    if args.chat:
        conv = req.conversation
        msg = conv.messages.add()
        msg.role = pb.ROLE_USER
        msg.content = args.chat
        conv.developer_instructions = args.instructions
        reasoning = args.reasoning or ("low" if architecture == "gpt-oss" else "")
        if reasoning:
            conv.reasoning_effort = {
                "low": pb.REASONING_EFFORT_LOW,
                "medium": pb.REASONING_EFFORT_MEDIUM,
                "high": pb.REASONING_EFFORT_HIGH,
            }[reasoning]
    else:
        req.text = args.prompt
    req.max_tokens = args.max_tokens
    req.sampling.temperature = args.temperature
    req.sampling.top_p = args.top_p
    req.sampling.seed = args.seed
    return req


def stream(stub, args):
    out = sys.stdout
    channel_shown = ""
    final = None
    architecture = ""
    if args.chat and not args.reasoning:
        # Harmony's reasoning effort exists only for gpt-oss; ask which family the worker serves.
        try:
            architecture = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=args.timeout_s or None).architecture
        except grpc.RpcError as e:
            sys.stderr.write("error: GetModelInfo (to pick the reasoning effort; pass --reasoning to skip it): %s\n" %
                             e.details())
            return 1
    call = stub.Generate(build_request(args, architecture), timeout=args.timeout_s or None)
    try:
        for resp in call:
            if resp.text and (resp.channel != "analysis" or args.show_analysis):
                if resp.channel and resp.channel != channel_shown:
                    out.write("%s[%s] " % ("\n" if channel_shown else "", resp.channel))
                    channel_shown = resp.channel
                out.write(resp.text)
                out.flush()
            if resp.HasField("final"):
                final = resp.final
    except grpc.RpcError as e:
        out.write("\n")
        out.flush()
        sys.stderr.write("error: %d: %s\n" % (e.code().value[0], e.details()))
        return 1
    out.write("\n")
    out.flush()
    if final is None:
        sys.stderr.write("error: the stream ended without a final message\n")
        return 1
    u = final.usage
    sys.stderr.write(
        "finish: %s; prompt %d tokens, generated %d tokens, time to first token %.3f s, total %.3f s\n" %
        (pb.FinishReason.Name(final.finish_reason), u.prompt_tokens, u.generated_tokens,
         u.time_to_first_token_seconds, u.total_seconds))
    return 0


def main(argv):
    args = parse_args(argv)
    channel = make_channel(args)
    if args.wait_ready_s > 0:
        return wait_ready(channel, args.wait_ready_s)
    stub = pb_grpc.InferenceServiceStub(channel)
    if args.info:
        try:
            info = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=args.timeout_s or None)
        except grpc.RpcError as e:
            sys.stderr.write("error: %s\n" % e.details())
            return 1
        del info.tensors[:]  # hundreds of lines; the rest is the summary
        print(info)
        return 0
    return stream(stub, args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
