// Runs the dev overlay's containers the way the kubelet would start them, on
// loopback, with the built binaries (ctest deploy_smoke_test):
//   * the exact command lines `kubectl kustomize deploy/k8s/overlays/dev`
//     renders, with $(VAR)s resolved from the rendered ConfigMap;
//   * each volume replaced by a directory: Secrets and the pinned-key
//     ConfigMap from deploy/scripts/dev-secrets.sh (files mode 0440, as a
//     Secret volume with fsGroup has them), ConfigMaps from the render, the
//     model claim holding models/ossgate-small.gguf, emptyDirs empty;
//   * 0.0.0.0 listen ports and Service addresses mapped to free loopback ports.
// Checks, in order: the init container installs the signing keys mode 0600;
// the provenance service opens its port (the tcpSocket probes); the
// registry-init Job registers the bundled model, and a second run changes
// nothing; the model-loader Job sees the file; the worker verifies and loads
// the model: the gRPC health probes (plaintext health port) report SERVING
// for the readiness service; /metrics answers; a chat streams over mTLS; the
// auditor finds the approval; SIGTERM drains and exits 0 within the grace
// period; the audit log verifies offline.
// Usage: node smoke_test.mjs --repo ROOT --provenance_service P --provctl P
//          --inference_worker P --ossgate_client P [--kubectl PATH]
import { execFile, execFileSync, spawn } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, connect } from "node:net";
import { get as httpGet } from "node:http";
import { request as httpsRequest } from "node:https";
import os from "node:os";
import path from "node:path";
import { parseAllDocuments } from "yaml";

const opts = {};
for (let i = 2; i < process.argv.length; i++) {
  const m = /^--([\w-]+)(?:=(.*))?$/.exec(process.argv[i]);
  if (!m) throw new Error(`unexpected argument ${process.argv[i]}`);
  opts[m[1]] = m[2] ?? process.argv[++i];
}
const repo = path.resolve(opts.repo);
const bins = {
  "/usr/local/bin/provenance_service": opts.provenance_service,
  "/usr/local/bin/inference_worker": opts.inference_worker,
};
const tmp = mkdtempSync(path.join(os.tmpdir(), "ossgate-deploy-smoke-"));
const children = [];
let passed = 0;

function fail(msg) {
  console.error(`FAIL ${msg}`);
  cleanup();
  console.log(`deploy smoke: ${passed} passed, 1 failed`);
  process.exit(1);
}
function ok(msg) {
  passed++;
  console.log(`ok   ${msg}`);
}
function cleanup() {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  if (!process.env.OSSGATE_KEEP_SMOKE) rmSync(tmp, { recursive: true, force: true });
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, timeoutMs, probe) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > end) fail(`${what}: not within ${timeoutMs / 1000}s`);
    await sleep(200);
  }
}
function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}
const tcpOpen = (port) => new Promise((resolve) => {
  const s = connect(port, "127.0.0.1");
  s.once("connect", () => { s.destroy(); resolve(true); });
  s.once("error", () => resolve(false));
});
// grpc.health.v1.Health/Check over plaintext, as the kubelet's gRPC probe does.
// Prints SERVING / NOT_SERVING / an error. Debian's python3-grpcio (tools/setup.sh).
function grpcHealth(port, service) {
  const script = `
import sys, grpc
def enc(s):
    b = s.encode()
    return (b"\\x0a" + bytes([len(b)]) + b) if b else b""
try:
    ch = grpc.insecure_channel("127.0.0.1:%s" % sys.argv[1])
    r = ch.unary_unary("/grpc.health.v1.Health/Check")(enc(sys.argv[2]), timeout=2)
    print({b"": "UNKNOWN", b"\\x08\\x01": "SERVING", b"\\x08\\x02": "NOT_SERVING"}.get(r, repr(r)))
except grpc.RpcError as e:
    print("ERROR", e.code())
`;
  return new Promise((resolve) => {
    execFile("/usr/bin/python3", ["-c", script, String(port), service ?? ""], { encoding: "utf8", timeout: 10000 },
      (err, stdout) => resolve(err ? `ERROR ${err.message}` : stdout.trim()));
  });
}
// An HTTPS request to the worker's HTTP API on loopback: status and JSON body.
function httpsJson(port, method, p, body, tls) {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: "127.0.0.1", port, path: p, method, timeout: 30000, ...tls,
      headers: body ? { "content-type": "application/json" } : {} }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d) => { text += d; });
      res.on("end", () => { let json = null; try { json = JSON.parse(text); } catch {} resolve({ status: res.statusCode, json, text }); });
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

function httpText(port, p) {
  return new Promise((resolve) => {
    httpGet({ host: "127.0.0.1", port, path: p, timeout: 3000 }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve(body));
    }).on("error", () => resolve(""));
  });
}
function run(cmd, args, env, what) {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", env, stdio: ["ignore", "pipe", "pipe"], timeout: 60000 });
  } catch (e) {
    fail(`${what}: exit ${e.status}\n${e.stdout ?? ""}${e.stderr ?? ""}`);
  }
}

// ---- render, secrets, volumes ----

const commandsFile = path.join(tmp, "commands.json");
run(process.execPath, [path.join(repo, "tests/deploy/validate.mjs"), "--repo", repo, "--emit-commands", commandsFile,
  ...(opts.kubectl ? ["--kubectl", opts.kubectl] : [])], process.env, "validate.mjs (render + checks)");
const containers = JSON.parse(readFileSync(commandsFile, "utf8"));
const kubectl = opts.kubectl ?? "kubectl";
const rendered = parseAllDocuments(execFileSync(kubectl, ["kustomize", path.join(repo, "deploy/k8s/overlays/dev")], { encoding: "utf8" }))
  .map((d) => d.toJS()).filter(Boolean);
run("bash", [path.join(repo, "deploy/scripts/dev-secrets.sh"), path.join(tmp, "dev-secrets")], process.env, "dev-secrets.sh");
const external = parseAllDocuments(readFileSync(path.join(tmp, "dev-secrets/secrets.yaml"), "utf8")).map((d) => d.toJS()).filter(Boolean);
ok("dev-secrets.sh made the Secrets and the pinned-key ConfigMap");

const byName = (kind, name) => [...rendered, ...external].find((o) => o.kind === kind && o.metadata.name === name);
// One directory per volume; claims are shared by name across pods (as a PVC is).
function volumeDir(owner, v) {
  if (v.persistentVolumeClaim) return path.join(tmp, "pvc", v.persistentVolumeClaim.claimName);
  const dir = path.join(tmp, "vol", owner.replace("/", "-"), v.name);
  mkdirSync(dir, { recursive: true });
  const fill = (data, decode, mode) => {
    const items = v.secret?.items ?? v.configMap?.items ?? Object.keys(data).map((k) => ({ key: k, path: k }));
    for (const it of items) {
      const f = path.join(dir, it.path);
      writeFileSync(f, decode ? Buffer.from(data[it.key], "base64") : data[it.key]);
      chmodSync(f, mode);
    }
  };
  if (v.secret) {
    const s = byName("Secret", v.secret.secretName);
    if (!s) fail(`Secret ${v.secret.secretName} is made by neither the render nor dev-secrets.sh`);
    fill(s.data, true, 0o440);  // a Secret volume with fsGroup: group-readable
  } else if (v.configMap) {
    const cm = byName("ConfigMap", v.configMap.name);
    if (cm) fill(cm.data, false, 0o444);
    else if (!v.configMap.optional) fail(`ConfigMap ${v.configMap.name} is made by neither the render nor dev-secrets.sh`);
  }
  return dir;
}
const ports = new Map();  // container/Service port -> loopback port
async function mapPort(p) {
  if (!ports.has(p)) ports.set(p, await freePort());
  return ports.get(p);
}
// Rewrites a container: mount paths -> volume directories, listen addresses and
// Service addresses -> loopback ports, /usr/local/bin binaries -> the built ones.
async function prepare(c) {
  const mounts = c.mounts.map((m) => ({ from: m.path, to: volumeDir(c.owner, m.volume) }))
    .sort((a, b) => b.from.length - a.from.length);
  for (const m of mounts) mkdirSync(m.to, { recursive: true });
  // One pass over all mount paths (longest first): a rewritten path must not
  // be rewritten again (the host's /tmp is also a mount path).
  const escape = (x) => x.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const mountRe = mounts.length ? new RegExp(`(^|[=,\\s])(${mounts.map((m) => escape(m.from)).join("|")})(?=/|$|,)`, "g") : null;
  const rewrite = async (s) => {
    if (mountRe) s = s.replace(mountRe, (_, pre, from) => pre + mounts.find((m) => m.from === from).to);
    for (const [, host, port] of [...s.matchAll(/(0\.0\.0\.0|ossgate-provenance|ossgate-worker):(\d+)/g)]) {
      s = s.replace(`${host}:${port}`, `127.0.0.1:${await mapPort(Number(port))}`);
    }
    return s;
  };
  const out = { ...c, command: [], args: [], env: {} };
  for (const a of c.command) out.command.push(bins[a] ?? await rewrite(a));
  for (const a of c.args) out.args.push(await rewrite(a));
  for (const [k, v] of Object.entries(c.env)) out.env[k] = await rewrite(v);
  out.dir = (mountPath) => mounts.find((m) => m.from === mountPath)?.to;
  return out;
}
const find = (owner, name) => containers.find((c) => c.owner === owner && c.name === name) ?? fail(`${owner} ${name} not rendered`);
// The images have provctl and coreutils on PATH; here provctl is the built one.
const binDir = path.join(tmp, "bin");
mkdirSync(binDir);
symlinkSync(path.resolve(opts.provctl), path.join(binDir, "provctl"));
const env = (extra) => ({ PATH: `${binDir}:${process.env.PATH}`, ...extra });
function start(c, what) {
  const child = spawn(c.command[0], [...c.command.slice(1), ...c.args], { env: env(c.env), stdio: ["ignore", "ignore", "pipe"] });
  child.log = "";
  child.stderr.on("data", (d) => (child.log += d));
  children.push(child);
  child.on("exit", (code) => { if (!child.expectExit) fail(`${what} exited (${code}):\n${child.log}`); });
  return child;
}
function probePort(c, probe) {
  const p = probe.grpc?.port ?? probe.tcpSocket?.port;
  return typeof p === "number" ? p : c.ports.find((cp) => cp.name === p).containerPort;
}

// ---- the provenance service ----

const provInit = await prepare(find("StatefulSet/ossgate-provenance", "install-signing-keys"));
run(provInit.command[0], [...provInit.command.slice(1), ...provInit.args], env(provInit.env), "init container install-signing-keys");
const prov = await prepare(find("StatefulSet/ossgate-provenance", "provenance"));
for (const k of ["token.pem", "checkpoint.pem"]) {
  const mode = statSync(path.join(prov.dir("/run/ossgate/keys"), k)).mode & 0o777;
  if (mode !== 0o600) fail(`init container left ${k} mode ${mode.toString(8)}`);
}
ok("init container installed the signing keys from the Secret, mode 0600");
mkdirSync(path.join(tmp, "pvc", "data"), { recursive: true });
const provChild = start(prov, "provenance_service");
const provPort = await mapPort(prov.ports.find((p) => p.name === "grpc-tls").containerPort);
await until("provenance TLS port open", 20000, () => tcpOpen(provPort));
const provProbe = prov.probes.startup;
if (provProbe.grpc) {
  // Native gRPC probes on the plaintext health-only port (--health_listen).
  const provHealthPort = await mapPort(probePort(prov, provProbe));
  await until("provenance startup probe SERVING", 20000, async () => (await grpcHealth(provHealthPort, provProbe.grpc.service)) === "SERVING");
  ok("provenance_service started with the rendered args; its gRPC health probe port answers SERVING");
} else {
  const provProbePort = await mapPort(probePort(prov, provProbe));
  await until("provenance probe port open (tcpSocket probes)", 20000, () => tcpOpen(provProbePort));
  ok("provenance_service started with the rendered args; its probe port answers");
}

// ---- registry-init Job, model-loader Job ----

const registry = await prepare(find("Job/ossgate-registry-init", "apply-registry"));
let out = run(registry.command[0], [...registry.command.slice(1), ...registry.args], env(registry.env), "registry-init Job");
if (!/applied: audit record/.test(out)) fail(`registry-init did not add the bundled model:\n${out}`);
ok("registry-init Job registered the bundled model's hash (admin role)");
out = run(registry.command[0], [...registry.command.slice(1), ...registry.args], env(registry.env), "registry-init Job, second run");
if (!/already registered/.test(out) || /applied:/.test(out)) fail(`registry-init is not idempotent:\n${out}`);
ok("registry-init Job is idempotent (second run adds nothing)");

const loader = await prepare(find("Job/ossgate-model-loader", "wait-for-model"));
copyFileSync(path.join(repo, "models/ossgate-small.gguf"), path.join(loader.dir("/models"), "ossgate-small.gguf"));  // kubectl cp + mv
run(loader.command[0], [...loader.command.slice(1), ...loader.args], env(loader.env), "model-loader Job");
ok("model-loader Job completes once the model is on the claim");

// ---- the worker ----

const worker = await prepare(find("Deployment/ossgate-worker", "worker"));
const workerChild = start(worker, "inference_worker");
const healthPort = await mapPort(probePort(worker, worker.probes.readiness));
const service = worker.probes.readiness.grpc.service;
await until("worker health answers (liveness probe, service \"\")", 20000, async () => (await grpcHealth(healthPort, "")) === "SERVING");
await until(`worker ready (readiness probe: ${service} SERVING)`, 60000, async () => (await grpcHealth(healthPort, service)) === "SERVING");
await sleep(100);  // let the last log lines arrive
for (const phase of ["phase=hashing", "phase=verifying", "phase=verified", "ready:"]) {
  if (!workerChild.log.includes(phase)) fail(`worker log lacks ${phase}:\n${workerChild.log}`);
}
ok("worker hashed, verified and loaded the model: startup/readiness probes SERVING on the plaintext health port");
const metricsPort = await mapPort(worker.ports.find((p) => p.name === "metrics").containerPort);
if (!/ossgate_worker_model_load_seconds/.test(await httpText(metricsPort, "/metrics"))) fail("no ossgate_worker_* series on /metrics");
ok("Prometheus /metrics served on the metrics port");

const pki = path.join(tmp, "dev-secrets/pki");
const tlsPort = await mapPort(worker.ports.find((p) => p.name === "grpc-tls").containerPort);
out = run(opts.ossgate_client, [`--server=127.0.0.1:${tlsPort}`, `--ca=${pki}/ca.pem`, `--cert=${pki}/client-smoke-test.pem`,
  `--key=${pki}/client-smoke-test.key`, "--chat=Hello", "--max_tokens=8", "--seed=1"], process.env, "ossgate-client chat over mTLS");
if (!out.trim()) fail("empty chat answer");
ok("a chat streams over mTLS with a client certificate from the dev PKI");

// The OpenAI-compatible HTTP API on the rendered --http_listen port, with the
// same client certificate (docs/http.md).
const httpsPort = await mapPort(worker.ports.find((p) => p.name === "https").containerPort);
const clientTls = { ca: readFileSync(`${pki}/ca.pem`), cert: readFileSync(`${pki}/client-smoke-test.pem`),
  key: readFileSync(`${pki}/client-smoke-test.key`) };
let h = await httpsJson(httpsPort, "GET", "/health", null, { ca: clientTls.ca });
if (h.status !== 200 || h.json?.status !== "ready") fail(`HTTP /health: ${h.status} ${h.text}`);
h = await httpsJson(httpsPort, "GET", "/v1/models", null, clientTls);
const modelId = h.json?.data?.[0]?.id;
if (h.status !== 200 || !modelId || !/^[0-9a-f]{64}$/.test(h.json.data[0].sha256 ?? "")) fail(`HTTP /v1/models: ${h.status} ${h.text}`);
h = await httpsJson(httpsPort, "POST", "/v1/chat/completions",
  { model: modelId, messages: [{ role: "user", content: "Hello" }], max_tokens: 8, seed: 1 }, clientTls);
if (h.status !== 200 || typeof h.json?.choices?.[0]?.message?.content !== "string") fail(`HTTP chat: ${h.status} ${h.text}`);
h = await httpsJson(httpsPort, "GET", "/v1/models", null, { ca: clientTls.ca });
if (h.status !== 401) fail(`HTTP /v1/models without credentials: ${h.status} (expected 401)`);
ok("the HTTP API answers /health, /v1/models (with provenance) and a chat to the client certificate, 401 without");

const auditor = [`--server=127.0.0.1:${provPort}`, `--ca=${pki}/ca.pem`, `--cert=${pki}/auditor-auditor-1.pem`, `--key=${pki}/auditor-auditor-1.key`];
out = run(opts.provctl, ["audit", "query", ...auditor, "--kind=verify_model", "--verdict=accepted"], process.env, "provctl audit query (auditor)");
if (!/spiffe:\/\/ossgate\/role\/worker\/inference-pool/.test(out)) fail(`the approval is not in the audit log:\n${out}`);
ok("the auditor sees the worker's accepted VerifyModel in the audit log");
const logKey = JSON.parse(run(opts.provctl, ["keys", "list", "--json", ...auditor], process.env, "provctl keys list")).log_verifier_key;

// ---- graceful shutdown ----

const grace = worker.terminationGracePeriodSeconds;
workerChild.expectExit = true;
const t0 = Date.now();
const exited = new Promise((r) => workerChild.once("exit", (code) => r(code)));
workerChild.kill("SIGTERM");
const code = await Promise.race([exited, sleep(grace * 1000).then(() => "timeout")]);
if (code !== 0) fail(`worker after SIGTERM: ${code} (grace ${grace}s)\n${workerChild.log}`);
if (!/NOT_SERVING, draining/.test(workerChild.log)) fail(`worker did not report draining:\n${workerChild.log}`);
ok(`SIGTERM: NOT_SERVING, drained, exit 0 in ${((Date.now() - t0) / 1000).toFixed(1)}s (grace ${grace}s)`);
provChild.expectExit = true;
const provExit = new Promise((r) => provChild.once("exit", (c) => r(c)));
provChild.kill("SIGTERM");
if (await Promise.race([provExit, sleep(prov.terminationGracePeriodSeconds * 1000).then(() => "timeout")]) !== 0) fail("provenance_service did not stop cleanly");
const db = prov.args.find((a) => a.startsWith("--db=")).slice(5);
out = run(opts.provctl, ["audit", "verify", `--db=${db}`, `--log_key=${logKey}`], process.env, "provctl audit verify");
ok("provenance_service stopped cleanly; the audit log on the claim verifies offline");

cleanup();
console.log(`deploy smoke: ${passed} passed, 0 failed`);
process.exit(0);  // the grace-period timers above would keep node waiting
