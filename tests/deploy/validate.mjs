// Validates deploy/ offline (ctest deploy_manifests_test):
//   1. `kubectl kustomize` renders every overlay (and every optional component);
//   2. every rendered object passes the Kubernetes API schema of its kind
//      (npm kubernetes-models; cert-manager and Prometheus Operator CRDs from
//      @kubernetes-models/*);
//   3. the security and serving properties docs/deploy.md promises hold on the
//      rendered output (restricted security context, probes, mTLS flags, GPU
//      resources, no secret material in ConfigMaps, network policies, ...);
//   4. every Dockerfile parses (dockerfile-ast), lints clean (dockerfile-utils),
//      and every file it COPYs and script it RUNs exists in the repository.
// Usage: node validate.mjs --repo ROOT [--kubectl PATH] [--emit-commands FILE]
// --emit-commands writes the dev overlay's containers with resolved commands
// and mounts as JSON (for smoke_test.mjs) after the checks pass.
// Exit status: 0 when every check passes, 1 otherwise (each failure printed).
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseAllDocuments } from "yaml";
import { DockerfileParser } from "dockerfile-ast";
import { validate as lintDockerfile } from "dockerfile-utils";

// ---- configuration: what the manifests must satisfy ----

const NAMESPACE = "ossgate";
const INFERENCE_SERVICE = "ossgate.inference.v1.InferenceService";
const MIN_STARTUP_BUDGET_S = 1200; // hashing + loading a 13 GB model
// Renders: overlays as shipped, and each overlay with every optional component.
const RENDERS = [
  { name: "dev", dir: "deploy/k8s/overlays/dev", overlay: "dev" },
  { name: "gpu", dir: "deploy/k8s/overlays/gpu", overlay: "gpu" },
  { name: "gpu-multi", dir: "deploy/k8s/overlays/gpu-multi", overlay: "gpu", gpus: 2 },
  { name: "dev+components", dir: "tests/deploy/kustomize/dev-all", overlay: "dev", components: true },
  { name: "gpu+components", dir: "tests/deploy/kustomize/gpu-all", overlay: "gpu", components: true },
];
// Flags a component may use before the binary declares them (allowed only in
// component renders). None are pending today.
const PENDING_FLAGS = {};
// Binaries and the sources that declare their flags (ABSL_FLAG).
const BINARIES = {
  "/usr/local/bin/provenance_service": { name: "provenance_service", flags: "provenance_service/server/main.cc" },
  "/usr/local/bin/inference_worker": { name: "inference_worker", flags: "inference_worker/worker/worker_main.cc" },
};
// Made by the operator (cert-manager component or deploy/scripts/dev-secrets.sh),
// never rendered: each must be documented in docs/deploy.md and made by the dev script.
const EXTERNAL_SECRETS = [
  "ossgate-provenance-tls", "ossgate-provenance-signing", "ossgate-worker-tls",
  "ossgate-worker-identity", "ossgate-admin-identity",
];
const EXTERNAL_CONFIGMAPS = ["ossgate-token-pubkeys", "ossgate-registry-pointers"];
const DOCKERFILES = ["provenance.Dockerfile", "worker-cpu.Dockerfile", "worker-cuda.Dockerfile"];
const RUNTIME_FORBIDDEN_PACKAGES = /\b(build-essential|gcc|g\+\+|clang|cmake|ninja-build|cuda-nvcc[\w-]*|[\w.+-]+-dev)\b/;

// ---- tiny helpers ----

// check() records into the current sink; the self-test swaps it to see that
// each family of checks fails on a broken input.
const failures = [];
let sink = failures;
let checks = 0;
function check(cond, where, msg) {
  checks++;
  if (!cond) sink.push(`${where}: ${msg}`);
  return Boolean(cond);
}
function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([\w-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m) throw new Error(`unexpected argument ${argv[i]}`);
    out[m[1]] = m[2] ?? argv[++i];
  }
  return out;
}
const objName = (o) => `${o.kind}/${o.metadata?.name}`;
const podSpecOf = (o) =>
  o.kind === "CronJob" ? o.spec.jobTemplate.spec.template.spec
  : o.kind === "Pod" ? o.spec
  : ["Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet"].includes(o.kind) ? o.spec.template.spec
  : null;
const podLabelsOf = (o) =>
  o.kind === "CronJob" ? o.spec.jobTemplate.spec.template.metadata?.labels ?? {}
  : o.kind === "Pod" ? o.metadata.labels ?? {}
  : o.spec.template.metadata?.labels ?? {};
function flagsOf(args) {  // ["--a=b", "--c"] -> Map(a -> "b", c -> "")
  const m = new Map();
  for (const a of args ?? []) {
    const r = /^--([\w-]+)(?:=(.*))?$/s.exec(a);
    if (r) m.set(r[1].replaceAll("-", "_"), r[2] ?? "");
  }
  return m;
}
function portOf(address) {
  const m = /:(\d+)$/.exec(address ?? "");
  return m ? Number(m[1]) : NaN;
}
function matchesSelector(selector, labels) {  // LabelSelector semantics
  for (const [k, v] of Object.entries(selector?.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector?.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    if (e.operator === "In" && !(has && e.values.includes(labels[e.key]))) return false;
    if (e.operator === "NotIn" && has && e.values.includes(labels[e.key])) return false;
    if (e.operator === "Exists" && !has) return false;
    if (e.operator === "DoesNotExist" && has) return false;
  }
  return true;
}

// ---- 1. render ----

function findKubectl(explicit) {
  const candidates = explicit ? [explicit] : (process.env.PATH ?? "").split(":").map((d) => path.join(d, "kubectl"));
  const found = candidates.find((c) => c && existsSync(c));
  if (!found) {
    console.error(
      "deploy test: kubectl not found (looked for " + (explicit ?? "kubectl on PATH") + ").\n" +
      "  The manifests are rendered with `kubectl kustomize` (offline, kubectl >= 1.27).\n" +
      "  Install kubectl (the cpp CI image ships v1.32); this test does not skip without it.");
    process.exit(1);
  }
  return found;
}

function renderOverlay(kubectl, repo, dir) {
  const text = execFileSync(kubectl, ["kustomize", path.join(repo, dir)], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const objects = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length) throw new Error(`${dir}: YAML: ${doc.errors[0].message}`);
    const o = doc.toJS();
    if (o) objects.push(o);
  }
  return objects;
}

// ---- 2. schemas ----

const SCHEMA_MODULES = {
  "cert-manager.io": "@kubernetes-models/cert-manager/cert-manager.io",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator/monitoring.coreos.com",
};
async function validateSchema(o, where) {
  const [group, version] = o.apiVersion.includes("/") ? o.apiVersion.split("/") : ["", o.apiVersion];
  const base = SCHEMA_MODULES[group] ?? (group ? `kubernetes-models/${group}` : "kubernetes-models");
  const spec = `${base}/${version}/${o.kind}`;
  let Model;
  try {
    Model = (await import(spec))[o.kind];
  } catch {
    return check(false, where, `no schema for ${o.apiVersion} ${o.kind} (${spec})`);
  }
  try {
    new Model(o).validate();
    return check(true, where, "");
  } catch (e) {
    return check(false, where, `schema: ${e.message.split("\n").slice(0, 6).join(" | ")}`);
  }
}

// ---- 3. properties of the rendered objects ----

function declaredFlags(repo, file) {
  const text = readFileSync(path.join(repo, file), "utf8");
  return new Set([...text.matchAll(/ABSL_FLAG\([^,]+,\s*(\w+)\s*,/g)].map((m) => m[1]));
}

// Resolves $(VAR) in args from the container's env (value / configMapKeyRef
// into a rendered ConfigMap / fieldRef). Returns the resolved args.
function resolveArgs(c, configMaps, where) {
  const env = new Map();
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env.set(e.name, e.value);
    else if (e.valueFrom?.configMapKeyRef) {
      const ref = e.valueFrom.configMapKeyRef;
      const cm = configMaps.get(ref.name);
      if (check(cm && Object.hasOwn(cm.data ?? {}, ref.key), where, `env ${e.name}: ConfigMap ${ref.name} key ${ref.key} is not rendered`)) {
        env.set(e.name, cm.data[ref.key]);
      }
    } else if (e.valueFrom?.fieldRef) env.set(e.name, `<${e.valueFrom.fieldRef.fieldPath}>`);
  }
  return (c.args ?? []).map((a) =>
    a.replace(/\$\((\w+)\)/g, (_, v) => {
      check(env.has(v), where, `arg ${a} uses $(${v}), which is not in env`);
      return env.get(v) ?? "";
    }));
}

// The pod's volumes plus a StatefulSet's volumeClaimTemplates (as PVC volumes).
function volumesOf(o) {
  const pod = podSpecOf(o);
  return [...(pod.volumes ?? []), ...(o.spec?.volumeClaimTemplates ?? []).map((t) => ({ name: t.metadata.name, persistentVolumeClaim: { claimName: t.metadata.name } }))];
}

function checkContainerSecurity(c, pod, volumeList, where) {
  const sc = c.securityContext ?? {};
  const psc = pod.securityContext ?? {};
  check((sc.runAsNonRoot ?? psc.runAsNonRoot) === true, where, "runAsNonRoot must be true");
  const uid = sc.runAsUser ?? psc.runAsUser;
  check(uid === undefined || uid !== 0, where, "runAsUser must not be 0");
  check(sc.readOnlyRootFilesystem === true, where, "readOnlyRootFilesystem must be true");
  check(sc.allowPrivilegeEscalation === false, where, "allowPrivilegeEscalation must be false");
  check(sc.privileged !== true, where, "privileged");
  check((sc.capabilities?.drop ?? []).includes("ALL"), where, "capabilities.drop must include ALL");
  check(!(sc.capabilities?.add ?? []).length, where, "capabilities.add must be empty");
  const seccomp = (sc.seccompProfile ?? psc.seccompProfile)?.type;
  check(seccomp === "RuntimeDefault" || seccomp === "Localhost", where, "seccompProfile must be RuntimeDefault");
  for (const kind of ["requests", "limits"]) {
    for (const r of ["cpu", "memory"]) check(c.resources?.[kind]?.[r] !== undefined, where, `resources.${kind}.${r} missing`);
  }
  check(/:[\w.-]+$|@sha256:/.test(c.image ?? "") && !/:latest$/.test(c.image), where, `image ${c.image} needs a tag other than latest`);
  const volumes = new Map(volumeList.map((v) => [v.name, v]));
  for (const m of c.volumeMounts ?? []) {
    const v = volumes.get(m.name);
    if (!check(v, where, `volumeMount ${m.name} has no volume`)) continue;
    if (v.secret || v.configMap || v.projected) check(m.readOnly === true, where, `${m.mountPath}: mount Secret/ConfigMap volumes readOnly`);
  }
}

function checkPodSpec(o, pod, where) {
  check(!pod.hostNetwork && !pod.hostPID && !pod.hostIPC, where, "host namespaces");
  check(!(pod.volumes ?? []).some((v) => v.hostPath), where, "hostPath volumes are not allowed (restricted PSS)");
  check(pod.automountServiceAccountToken === false, where, "automountServiceAccountToken must be false (no API access needed)");
  check(pod.securityContext?.runAsNonRoot === true, where, "pod securityContext.runAsNonRoot must be true");
  check(pod.securityContext?.seccompProfile?.type === "RuntimeDefault", where, "pod seccompProfile must be RuntimeDefault");
  for (const c of pod.initContainers ?? []) checkContainerSecurity(c, pod, volumesOf(o), `${where} initContainer ${c.name}`);
  for (const c of pod.containers ?? []) checkContainerSecurity(c, pod, volumesOf(o), `${where} container ${c.name}`);
  const longRunning = ["Deployment", "StatefulSet", "DaemonSet"].includes(o.kind);
  if (longRunning) {
    for (const c of pod.containers) {
      for (const p of ["startupProbe", "readinessProbe", "livenessProbe"]) {
        check(c[p] && (c[p].grpc || c[p].tcpSocket || c[p].httpGet || c[p].exec), `${where} container ${c.name}`, `${p} missing`);
      }
    }
  }
}

function checkBinaryFlags(c, args, binFlags, render, where) {
  const bin = BINARIES[c.command?.[0]];
  if (!bin) return;
  const declared = binFlags.get(bin.name);
  for (const [flag] of flagsOf(args)) {
    if (declared.has(flag)) continue;
    const pending = (PENDING_FLAGS[bin.name] ?? []).includes(flag);
    if (pending && render.components) {
      console.log(`note: ${render.name}: ${where}: --${flag} is not in ${bin.flags} yet (component waiting for it)`);
      continue;
    }
    check(false, where, `--${flag} is not a flag of ${bin.name} (${bin.flags})`);
  }
}

// A path flag must point into a mounted volume of the expected kind.
function mountFor(c, pod, file) {
  const m = (c.volumeMounts ?? []).filter((vm) => file.startsWith(vm.mountPath.replace(/\/?$/, "/")))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  return m ? { mount: m, volume: (pod.volumes ?? []).find((v) => v.name === m.name) } : null;
}

function checkWorker(o, pod, c, args, render, objects, where) {
  const f = flagsOf(args);
  for (const flag of ["tls_cert", "tls_key", "tls_client_ca", "provenance_ca", "provenance_cert", "provenance_key", "pinned_keys"]) {
    check(f.get(flag), where, `mTLS: --${flag} missing`);
  }
  check(!f.has("insecure_dev_loopback"), where, "--insecure_dev_loopback must not be set");
  for (const flag of ["tls_cert", "tls_key", "tls_client_ca", "provenance_ca", "provenance_cert", "provenance_key"]) {
    const m = f.get(flag) && mountFor(c, pod, f.get(flag));
    check(m?.volume?.secret, where, `--${flag}=${f.get(flag)} must be a file of a mounted Secret`);
  }
  for (const key of (f.get("pinned_keys") ?? "").split(",").filter(Boolean)) {
    const m = mountFor(c, pod, key);
    check(m?.volume?.configMap || m?.volume?.secret, where, `pinned key ${key} must come from a mounted ConfigMap/Secret`);
  }
  const model = mountFor(c, pod, f.get("model") ?? "");
  check(model?.volume?.persistentVolumeClaim && model.mount.readOnly === true && model.volume.persistentVolumeClaim.readOnly === true,
    where, `--model=${f.get("model")} must be on a PersistentVolumeClaim mounted read-only`);
  // Probes: gRPC on the plaintext health port, not on the TLS port.
  const tlsPort = portOf(f.get("listen"));
  const healthPort = portOf(f.get("health_listen"));
  check(Number.isInteger(healthPort) && healthPort !== tlsPort, where, "--health_listen must be a port separate from --listen");
  for (const p of ["startupProbe", "readinessProbe", "livenessProbe"]) {
    check(c[p]?.grpc?.port === healthPort, where, `${p} must be a gRPC probe on the health port ${healthPort}`);
  }
  check(c.readinessProbe?.grpc?.service === INFERENCE_SERVICE, where, `readinessProbe must ask for service ${INFERENCE_SERVICE}`);
  check(c.startupProbe?.grpc?.service === INFERENCE_SERVICE, where, `startupProbe must ask for service ${INFERENCE_SERVICE}`);
  const budget = (c.startupProbe?.periodSeconds ?? 10) * (c.startupProbe?.failureThreshold ?? 3);
  check(budget >= MIN_STARTUP_BUDGET_S, where, `startupProbe allows ${budget}s; loading 13 GB needs >= ${MIN_STARTUP_BUDGET_S}s`);
  check(f.has("metrics_listen"), where, "--metrics_listen missing");
  const drain = Number(f.get("drain_timeout_s") ?? 30);
  const preStop = Number(c.lifecycle?.preStop?.exec?.command?.at(-1) ?? c.lifecycle?.preStop?.sleep?.seconds ?? 0);
  check((pod.terminationGracePeriodSeconds ?? 30) > drain + preStop + 5, where,
    `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} must exceed preStop ${preStop}s + drain ${drain}s + 5s shutdown`);
  // Overlay specifics.
  const gpuLimit = c.resources?.limits?.["nvidia.com/gpu"];
  if (render.overlay === "gpu") {
    // One worker process drives all GPUs of its pod: as many tensor-parallel
    // ranks as GPUs (docs/parallel.md).
    const gpus = String(render.gpus ?? 1);
    check(String(gpuLimit) === gpus && String(c.resources?.requests?.["nvidia.com/gpu"]) === gpus, where,
      `nvidia.com/gpu: ${gpus} in requests and limits`);
    check(String(f.get("tensor_parallel") ?? 1) === gpus, where,
      `--tensor_parallel=${f.get("tensor_parallel") ?? 1} must equal the pod's ${gpus} GPU(s)`);
    check(f.get("backend") === "cuda", where, `--backend must be cuda, is ${f.get("backend")}`);
    check(/cuda/.test(c.image), where, `image ${c.image} must be the CUDA worker`);
    check(pod.nodeSelector?.["nvidia.com/gpu.present"] === "true" || pod.affinity?.nodeAffinity, where, "GPU node selector or affinity missing");
    check((pod.tolerations ?? []).some((t) => t.key === "nvidia.com/gpu"), where, "toleration for nvidia.com/gpu missing");
    const shm = (c.volumeMounts ?? []).find((m) => m.mountPath === "/dev/shm");
    const shmVol = shm && pod.volumes.find((v) => v.name === shm.name);
    check(shmVol?.emptyDir?.medium === "Memory", where, "/dev/shm must be an emptyDir with medium Memory");
    const claim = objects.find((x) => x.kind === "PersistentVolumeClaim" && x.metadata.name === model?.volume?.persistentVolumeClaim?.claimName);
    check(claim?.spec?.accessModes?.length === 1 && claim.spec.accessModes[0] === "ReadOnlyMany", where, "the model claim must be ReadOnlyMany");
  } else {
    check(gpuLimit === undefined, where, "no GPU in the dev overlay");
    check(f.get("backend") === "cpu", where, `--backend must be cpu, is ${f.get("backend")}`);
    check(/cpu/.test(c.image), where, `image ${c.image} must be the CPU worker`);
    check(o.spec.replicas === 1, where, "dev runs one replica");
  }
  return f;
}

function checkProvenance(o, pod, c, args, render, where) {
  const f = flagsOf(args);
  for (const flag of ["tls_cert", "tls_key", "client_ca", "token_signing_key", "checkpoint_signing_key", "db"]) {
    check(f.get(flag), where, `--${flag} missing`);
  }
  check(!f.has("insecure_dev_loopback"), where, "--insecure_dev_loopback must not be set");
  for (const flag of ["tls_cert", "tls_key", "client_ca"]) {
    check(mountFor(c, pod, f.get(flag) ?? "")?.volume?.secret, where, `--${flag} must be a file of a mounted Secret`);
  }
  check(o.kind === "StatefulSet" && o.spec.replicas === 1, where, "one StatefulSet replica (single writer of the log)");
  const db = mountFor(c, pod, f.get("db") ?? "");
  check(db && (o.spec.volumeClaimTemplates ?? []).some((t) => t.metadata.name === db.mount.name), where,
    `--db=${f.get("db")} must be on a volumeClaimTemplate`);
  // Signing keys: from a Secret, through the init container into a memory emptyDir.
  for (const flag of ["token_signing_key", "checkpoint_signing_key"]) {
    const m = mountFor(c, pod, f.get(flag) ?? "");
    check(m?.volume?.emptyDir?.medium === "Memory", where, `--${flag} must be on the memory emptyDir the init container fills`);
  }
  const init = (pod.initContainers ?? []).find((i) => (i.volumeMounts ?? []).some((m) => pod.volumes.find((v) => v.name === m.name)?.secret?.secretName === "ossgate-provenance-signing"));
  check(init && /install -m 0600/.test(init.command.join(" ")), where, "an init container must install the signing keys from Secret ossgate-provenance-signing with mode 0600");
  const tlsPort = portOf(f.get("listen"));
  for (const p of ["startupProbe", "readinessProbe", "livenessProbe"]) {
    const probe = c[p];
    if (probe?.grpc) {
      check(probe.grpc.port === portOf(f.get("health_listen")) && probe.grpc.port !== tlsPort, where,
        `${p}: a gRPC probe needs the plaintext --health_listen port, not the TLS port ${tlsPort}`);
    } else {
      const port = probe?.tcpSocket?.port;
      const named = (c.ports ?? []).find((cp) => cp.name === port)?.containerPort;
      check((named ?? port) === tlsPort, where, `${p}: tcpSocket probe must check the service port ${tlsPort}`);
    }
  }
}

function checkNetworkPolicies(objects, where) {
  const policies = objects.filter((o) => o.kind === "NetworkPolicy");
  check(policies.some((p) => Object.keys(p.spec.podSelector ?? {}).length === 0 && !p.spec.ingress && !p.spec.egress &&
    ["Ingress", "Egress"].every((t) => p.spec.policyTypes?.includes(t))), where, "a default-deny NetworkPolicy (ingress and egress) is required");
  const podsOf = (name) => objects.filter((o) => podSpecOf(o) && o.metadata.name === name).map(podLabelsOf)[0];
  const worker = podsOf("ossgate-worker");
  const provenance = podsOf("ossgate-provenance");
  const registryInit = podsOf("ossgate-registry-init");
  // Ingress rules that apply to the provenance pods.
  const rules = policies.filter((p) => matchesSelector(p.spec.podSelector, provenance))
    .flatMap((p) => p.spec.ingress ?? []);
  const allows = (labels, port) => rules.some((r) =>
    (r.ports ?? []).some((p) => p.port === port) &&
    (r.from ?? []).some((peer) => peer.podSelector && !peer.namespaceSelector && !peer.ipBlock && matchesSelector(peer.podSelector, labels)));
  check(allows(worker, 7443), where, "workers must reach the provenance port 7443");
  check(allows(registryInit, 7443), where, "the registry-init Job (admin role) must reach the provenance port");
  check(allows({ "ossgate.io/role": "auditor" }, 7443), where, "auditor tooling must reach the provenance port");
  check(!allows({ "app.kubernetes.io/name": "something-else" }, 7443), where, "an unlabelled pod must not reach the provenance port");
  check(!allows({ "ossgate.io/inference-client": "true" }, 7443), where, "inference clients must not reach the provenance port");
  check(rules.every((r) => (r.ports ?? []).length > 0 && r.ports.every((p) => p.port === 7443)), where, "provenance ingress only on port 7443");
  check(rules.every((r) => (r.from ?? []).length > 0 && r.from.every((peer) => !peer.ipBlock && !peer.namespaceSelector)),
    where, "provenance ingress only from pods of this namespace");
  // Prometheus may scrape the worker metrics port.
  const workerRules = policies.filter((p) => matchesSelector(p.spec.podSelector, worker)).flatMap((p) => p.spec.ingress ?? []);
  check(workerRules.some((r) => (r.ports ?? []).some((p) => p.port === 9091) && (r.from ?? []).some((peer) => peer.namespaceSelector)),
    where, "Prometheus (monitoring namespace) must be allowed to scrape the worker metrics port 9091");
  // Workers may call out to the provenance port.
  const egress = policies.filter((p) => matchesSelector(p.spec.podSelector, worker)).flatMap((p) => p.spec.egress ?? []);
  check(egress.some((r) => (r.ports ?? []).some((p) => p.port === 7443) && (r.to ?? []).some((peer) => matchesSelector(peer.podSelector, provenance))),
    where, "workers need an egress rule to the provenance port");
}

function checkConfigMaps(repo, objects, render, where) {
  const secretish = /-----BEGIN [A-Z ]*PRIVATE KEY-----|k4\.secret\.|\b(password|passwd|secret_?key|api_?key|token)\s*[:=]\s*\S{8,}/i;
  for (const cm of objects.filter((o) => o.kind === "ConfigMap")) {
    for (const [k, v] of Object.entries(cm.data ?? {})) {
      check(!secretish.test(v), `${where} ${objName(cm)}`, `key ${k} looks like secret material`);
    }
    check(!cm.binaryData, `${where} ${objName(cm)}`, "binaryData in a ConfigMap");
  }
  check(!objects.some((o) => o.kind === "Secret"), where, "no Secret is rendered (they are made by cert-manager or the dev script)");
  // Registry entries: each names an LFS pointer; shipped pointers must be valid,
  // and the dev one must be the hash of the bundled model file.
  const reg = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === "ossgate-registry");
  if (!check(reg?.data?.["apply-registry.sh"], where, "ConfigMap ossgate-registry with apply-registry.sh")) return;
  const entries = Object.entries(reg.data).filter(([k]) => k.endsWith(".entry"));
  check(entries.length > 0, where, "the overlay ships no registry entry");
  for (const [k, text] of entries) {
    const value = (key) => new RegExp(`^${key}=(.*)$`, "m").exec(text)?.[1];
    check(value("source") && value("pointer"), `${where} registry ${k}`, "source= and pointer= required");
    for (const key of ["family", "source_family"]) {
      const family = value(key);
      check(family === undefined || /^[a-z0-9][a-z0-9._-]{0,63}$/.test(family), `${where} registry ${k}`,
        `${key}=${family} is not a model family (a GGUF general.architecture such as gpt-oss, qwen2, phi3)`);
    }
    const pointer = reg.data[value("pointer")];
    if (pointer === undefined) {
      console.log(`note: ${render.name}: registry ${k}: pointer ${value("pointer")} comes from ConfigMap ossgate-registry-pointers (operator)`);
      continue;
    }
    const m = /^version https:\/\/git-lfs\.github\.com\/spec\/v1\noid sha256:([0-9a-f]{64})\nsize ([1-9]\d*)\n$/.exec(pointer);
    if (!check(m, `${where} registry ${k}`, "pointer is not a git-lfs v1 pointer")) continue;
    if (value("source") === "ossgate://bundled") {
      const file = path.join(repo, "models", value("path"));
      if (check(existsSync(file), `${where} registry ${k}`, `${file} missing`)) {
        const bytes = readFileSync(file);
        check(createHash("sha256").update(bytes).digest("hex") === m[1] && bytes.length === Number(m[2]),
          `${where} registry ${k}`, `pointer does not match models/${value("path")} (sha256/size); regenerate it`);
      }
    }
  }
}

function checkExternalReferences(repo, objects, render, where) {
  const rendered = (kind) => new Set(objects.filter((o) => o.kind === kind).map((o) => o.metadata.name));
  const cms = rendered("ConfigMap");
  const docs = readFileSync(path.join(repo, "docs/deploy.md"), "utf8");
  const devScript = readFileSync(path.join(repo, "deploy/scripts/dev-secrets.sh"), "utf8");
  for (const o of objects.filter(podSpecOf)) {
    for (const v of podSpecOf(o).volumes ?? []) {
      if (v.secret) {
        check(EXTERNAL_SECRETS.includes(v.secret.secretName), `${where} ${objName(o)}`, `Secret ${v.secret.secretName} is not in the documented list`);
      }
      if (v.configMap && !cms.has(v.configMap.name)) {
        check(EXTERNAL_CONFIGMAPS.includes(v.configMap.name), `${where} ${objName(o)}`, `ConfigMap ${v.configMap.name} is neither rendered nor documented`);
      }
    }
  }
  for (const name of [...EXTERNAL_SECRETS, ...EXTERNAL_CONFIGMAPS]) check(docs.includes(name), where, `docs/deploy.md does not mention ${name}`);
  for (const name of [...EXTERNAL_SECRETS, "ossgate-token-pubkeys"]) check(devScript.includes(name), where, `deploy/scripts/dev-secrets.sh does not make ${name}`);
  if (render.components) {
    const certs = objects.filter((o) => o.kind === "Certificate");
    for (const s of EXTERNAL_SECRETS.filter((s) => s !== "ossgate-provenance-signing")) {
      check(certs.some((c) => c.spec.secretName === s), where, `no cert-manager Certificate writes Secret ${s}`);
    }
    const workerCfg = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name.startsWith("ossgate-worker-config"));
    const id = certs.find((c) => c.spec.secretName === "ossgate-worker-identity");
    check(JSON.stringify(id?.spec?.uris) === JSON.stringify([`spiffe://ossgate/role/worker/${workerCfg?.data?.worker_id}`]),
      where, "the worker identity certificate must carry exactly the URI SAN of worker_id");
    for (const c of certs.filter((c) => c.spec.usages?.includes("client auth"))) {
      check(c.spec.uris?.length === 1 && /^spiffe:\/\/ossgate\/role\/[a-z]+\/[A-Za-z0-9._-]+$/.test(c.spec.uris[0]) && !c.spec.dnsNames,
        `${where} ${objName(c)}`, "a client identity has exactly one URI SAN spiffe://ossgate/role/<role>/<id>");
    }
    const prov = certs.find((c) => c.spec.secretName === "ossgate-provenance-tls");
    check(prov?.spec?.dnsNames?.includes("ossgate-provenance"), where, "the provenance certificate must name the host workers dial");
    check(objects.some((o) => o.kind === "ServiceMonitor" && matchesSelector(o.spec.selector, objects.find((s) => s.kind === "Service" && s.metadata.name === "ossgate-worker")?.metadata?.labels ?? {})),
      where, "a ServiceMonitor must select the worker Service");
  }
}

function checkDisruptionBudgets(objects, where) {
  for (const o of objects.filter((x) => ["Deployment", "StatefulSet"].includes(x.kind))) {
    check(objects.some((p) => p.kind === "PodDisruptionBudget" && matchesSelector(p.spec.selector, podLabelsOf(o))),
      where, `${objName(o)} has no PodDisruptionBudget`);
  }
  for (const s of objects.filter((x) => x.kind === "Service")) {
    const pods = objects.filter((o) => podSpecOf(o) && matchesSelector({ matchLabels: s.spec.selector }, podLabelsOf(o)));
    check(pods.length > 0, `${where} ${objName(s)}`, "selects no pods");
    for (const p of s.spec.ports) {
      if (typeof p.targetPort !== "string") continue;
      check(pods.some((o) => podSpecOf(o).containers.some((c) => (c.ports ?? []).some((cp) => cp.name === p.targetPort))),
        `${where} ${objName(s)}`, `targetPort ${p.targetPort} names no container port`);
    }
  }
}

async function checkRender(repo, kubectl, render, binFlags) {
  let objects;
  try {
    objects = renderOverlay(kubectl, repo, render.dir);
  } catch (e) {
    check(false, render.name, `kubectl kustomize ${render.dir} failed: ${String(e.stderr ?? e.message).trim()}`);
    return null;
  }
  return { objects, resolved: await checkObjects(repo, render, objects, binFlags) };
}

// Every check of one render; returns the containers with resolved args.
async function checkObjects(repo, render, objects, binFlags) {
  const where = render.name;
  check(objects.length > 0, where, "rendered nothing");
  for (const o of objects) {
    await validateSchema(o, `${where} ${objName(o)}`);
    if (o.kind !== "Namespace") check(o.metadata.namespace === NAMESPACE, `${where} ${objName(o)}`, `namespace must be ${NAMESPACE}`);
  }
  check(objects.some((o) => o.kind === "Namespace" && o.metadata.labels?.["pod-security.kubernetes.io/enforce"] === "restricted"),
    where, "the namespace must enforce the restricted Pod Security Standard");
  const configMaps = new Map(objects.filter((o) => o.kind === "ConfigMap").map((o) => [o.metadata.name, o]));
  const resolved = [];
  let sawWorker = false, sawProvenance = false;
  for (const o of objects.filter(podSpecOf)) {
    const pod = podSpecOf(o);
    const w = `${where} ${objName(o)}`;
    checkPodSpec(o, pod, w);
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      const cw = `${w} container ${c.name}`;
      const args = resolveArgs(c, configMaps, cw);
      checkBinaryFlags(c, args, binFlags, render, cw);
      resolved.push({ owner: objName(o), name: c.name, init: (pod.initContainers ?? []).includes(c), command: c.command ?? [],
        args, env: Object.fromEntries((c.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value])),
        mounts: (c.volumeMounts ?? []).map((m) => ({ path: m.mountPath, readOnly: m.readOnly === true, volume: volumesOf(o).find((v) => v.name === m.name) })),
        ports: c.ports ?? [], probes: { startup: c.startupProbe, readiness: c.readinessProbe, liveness: c.livenessProbe },
        terminationGracePeriodSeconds: pod.terminationGracePeriodSeconds });
      if (c.command?.[0] === "/usr/local/bin/inference_worker") { sawWorker = true; checkWorker(o, pod, c, args, render, objects, cw); }
      if (c.command?.[0] === "/usr/local/bin/provenance_service") { sawProvenance = true; checkProvenance(o, pod, c, args, render, cw); }
    }
  }
  check(sawWorker && sawProvenance, where, "both services must be rendered");
  checkNetworkPolicies(objects, where);
  checkConfigMaps(repo, objects, render, where);
  checkExternalReferences(repo, objects, render, where);
  checkDisruptionBudgets(objects, where);
  return resolved;
}

// ---- 4. Dockerfiles ----

// .dockerignore patterns (Go filepath.Match with **): is repo-relative `file` excluded?
function dockerignored(patterns, file) {
  let excluded = false;
  for (let p of patterns) {
    const negate = p.startsWith("!");
    if (negate) p = p.slice(1);
    let re = "^";
    for (let i = 0; i < p.length; i++) {
      if (p.startsWith("**/", i)) { re += "(.*/)?"; i += 2; }
      else if (p.startsWith("**", i)) { re += ".*"; i += 1; }
      else if (p[i] === "*") re += "[^/]*";
      else if (p[i] === "?") re += "[^/]";
      else re += p[i].replace(/[.+^${}()|[\]\\]/g, "\\$&");
    }
    re = new RegExp(re + "(/.*)?$");
    if (re.test(file)) excluded = !negate;
  }
  return excluded;
}

function dockerignorePatterns(repo) {
  return readFileSync(path.join(repo, "deploy/docker", `${DOCKERFILES[0]}.dockerignore`), "utf8")
    .split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
}

function checkDockerfiles(repo, images) {
  const dir = path.join(repo, "deploy/docker");
  const ignores = DOCKERFILES.map((d) => readFileSync(path.join(dir, `${d}.dockerignore`), "utf8"));
  check(ignores.every((t) => t === ignores[0]), "dockerignore", "the three <Dockerfile>.dockerignore files must be identical");
  const patterns = dockerignorePatterns(repo);
  check(dockerignored(patterns, "models/ossgate-small.gguf") && dockerignored(patterns, "tests/fixtures/x.gguf"), "dockerignore", "models must be excluded");
  check(dockerignored(patterns, "build/x") && dockerignored(patterns, ".git/HEAD") && dockerignored(patterns, "tests/deploy/node_modules/yaml/x"),
    "dockerignore", "build trees, .git and node_modules must be excluded");
  for (const name of DOCKERFILES) checkDockerfile(repo, name, readFileSync(path.join(dir, name), "utf8"), patterns, images);
  // tools/build.sh is the one build script the Dockerfiles add to tools/.
  check(existsSync(path.join(repo, "tools/build.sh")), "tools", "tools/build.sh missing");
}

function checkDockerfile(repo, name, text, patterns, images) {
  const where = `deploy/docker/${name}`;
  for (const d of lintDockerfile(text)) {
    check(d.severity > 2, where, `lint line ${d.range.start.line + 1}: ${d.message}`);  // 1 = error, 2 = warning
  }
  const df = DockerfileParser.parse(text);
  const froms = df.getFROMs();
  const stages = froms.map((f) => f.getBuildStage()).filter(Boolean);
  check(froms.length >= 2, where, "multi-stage: a build stage and a runtime stage");
  const argDefaults = new Map(df.getInitialARGs().flatMap((a) => a.getProperties()).map((p) => [p.getName(), p.getValue() ?? ""]));
  const expand = (s) => s.replace(/\$\{(\w+)\}/g, (_, k) => argDefaults.get(k) ?? `\${${k}}`);
  const lastFrom = froms.at(-1);
  const runtimeImage = expand(lastFrom.getImage() ?? lastFrom.getArgumentsContent());
  check(!/devel/.test(runtimeImage), where, `runtime stage must not use a devel image (${runtimeImage})`);
  if (/cuda/.test(name)) {
    check(/^nvidia\/cuda:13\.0\.\d+-runtime-ubuntu24\.04$/.test(runtimeImage), where, `runtime stage must be nvidia/cuda:13.0.x-runtime-ubuntu24.04, is ${runtimeImage}`);
    check(/^nvidia\/cuda:13\.0\.\d+-devel-ubuntu24\.04$/.test(expand(froms[0].getImage())), where, "build stage must be the CUDA 13.0 devel image");
  }
  let stage = -1;
  const runtime = { copies: [], user: null, entrypoint: null, title: null };
  for (const ins of df.getInstructions()) {
    const kw = ins.getKeyword();
    if (kw === "FROM") { stage++; continue; }
    const last = stage === froms.length - 1;
    const content = ins.getArgumentsContent() ?? "";
    check(kw !== "ADD", `${where} line ${ins.getRange().start.line + 1}`, "use COPY, not ADD");
    if (kw === "COPY") {
      const from = ins.getFromFlag?.()?.getValue();
      const args = ins.getArguments().map((a) => a.getValue()).filter((a) => !a.startsWith("--"));
      const sources = args.slice(0, -1);
      if (from) {
        check(stages.includes(from), where, `COPY --from=${from}: no such stage`);
        if (last) runtime.copies.push(...sources.map((s) => path.posix.join(args.at(-1), path.posix.basename(s))));
      } else {
        for (const s of sources) {
          check(s === "." || existsSync(path.join(repo, s)), where, `COPY source ${s} does not exist in the repository`);
          check(s === "." || !dockerignored(patterns, s), where, `COPY source ${s} is excluded by the .dockerignore`);
          check(!/\.(pem|key|gguf)$/.test(s), where, `COPY ${s}: no keys or models in images`);
        }
        check(!last, where, "the runtime stage copies only from the build stage");
      }
    }
    if (kw === "RUN") {
      for (const m of content.matchAll(/(?:^|[\s;&|])(?:bash|sh)\s+((?:tools|deploy)\/[\w./-]+)/g)) {
        check(existsSync(path.join(repo, m[1])), where, `RUN script ${m[1]} does not exist in the repository`);
      }
      if (last) {
        check(!RUNTIME_FORBIDDEN_PACKAGES.test(content), where, `runtime stage installs build tools: ${content.slice(0, 80)}`);
        check(/runtime-packages\.txt/.test(content) && /--no-install-recommends/.test(content), where, "runtime stage installs exactly the library packages found in the build stage");
      } else {
        check(/tools\/setup\.sh|tools\/build\.sh/.test(content) || /runtime-packages/.test(content), where, `build stage RUN should call the project's scripts: ${content.slice(0, 60)}`);
      }
    }
    if (kw === "ENV") check(!/(KEY|TOKEN|PASSWORD|SECRET)\w*=/i.test(content), where, `ENV ${content}: no secrets in images`);
    if (last && kw === "USER") runtime.user = content;
    if (last && kw === "ENTRYPOINT") runtime.entrypoint = JSON.parse(content)[0];
    if (last && kw === "LABEL") runtime.title = /org\.opencontainers\.image\.title="([^"]+)"/.exec(content)?.[1] ?? runtime.title;
  }
  check(runtime.user && !/^(0|root)(:|$)/.test(runtime.user), where, `runtime stage must switch to a non-root USER (is ${runtime.user})`);
  check(runtime.copies.includes(runtime.entrypoint), where, `ENTRYPOINT ${runtime.entrypoint} is not copied into the runtime stage`);
  check(runtime.title, where, "org.opencontainers.image.title label missing");
  images.set(runtime.title, runtime);
}

// Every container command of the renders must exist in the image it runs.
function checkImagesMatchManifests(renders, images) {
  for (const r of renders.filter(Boolean)) {
    for (const o of r.objects.filter(podSpecOf)) {
      const pod = podSpecOf(o);
      for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
        const title = c.image.replace(/:.*$/, "").split("/").at(-1);
        const img = images.get(title);
        if (!check(img, `${objName(o)} container ${c.name}`, `image ${c.image} is built by no Dockerfile (title ${title})`)) continue;
        const cmd = c.command?.[0];
        if (cmd?.startsWith("/usr/local/bin/")) check(img.copies.includes(cmd), `${objName(o)} container ${c.name}`, `${cmd} is not in image ${title}`);
        else check(["/bin/sh", "/bin/sleep"].includes(cmd), `${objName(o)} container ${c.name}`, `command ${cmd} is not known to be in ${title}`);
      }
    }
  }
}

// ---- self-test: every family of checks must fail on a broken input ----

// Mutates copies of the dev render (or of the render a case names: the gpu
// one) and of a Dockerfile; each mutation must be reported (a check that
// cannot fail checks nothing).
async function selfTest(repo, results, binFlags, patterns) {
  const container = (objs, bin) => objs.filter(podSpecOf).flatMap((o) => podSpecOf(o).containers)
    .find((c) => c.command?.[0] === bin);
  const worker = (objs) => container(objs, "/usr/local/bin/inference_worker");
  const provenance = (objs) => container(objs, "/usr/local/bin/provenance_service");
  const cases = [
    ["schema: probe port not a number", (objs) => { worker(objs).readinessProbe.grpc.port = "health"; }, /schema/],
    ["read-only root removed", (objs) => { delete worker(objs).securityContext.readOnlyRootFilesystem; }, /readOnlyRootFilesystem/],
    ["capabilities kept", (objs) => { provenance(objs).securityContext.capabilities.drop = []; }, /drop must include ALL/],
    ["liveness probe removed", (objs) => { delete worker(objs).livenessProbe; }, /livenessProbe/],
    ["readiness on the TLS port", (objs) => { worker(objs).readinessProbe.grpc.port = 50061; }, /health port/],
    ["flag the binary lacks", (objs) => { provenance(objs).args.push("--no_such_flag=1"); }, /not a flag of provenance_service/],
    ["plaintext provenance", (objs) => { provenance(objs).args.push("--insecure_dev_loopback"); }, /insecure_dev_loopback/],
    ["worker without client CA", (objs) => { worker(objs).args = worker(objs).args.filter((a) => !a.startsWith("--tls_client_ca")); }, /tls_client_ca/],
    ["private key in a ConfigMap", (objs) => { objs.find((o) => o.kind === "ConfigMap").data.leak = "-----BEGIN PRIVATE KEY-----\nMC4C"; }, /secret material/],
    ["provenance port open to all", (objs) => { objs.find((o) => o.metadata.name === "provenance-ingress").spec.ingress[0].from.push({ podSelector: {} }); }, /unlabelled pod/],
    ["grace period below the drain", (objs) => { podSpecOf(objs.find((o) => o.kind === "Deployment")).terminationGracePeriodSeconds = 30; }, /terminationGracePeriodSeconds/],
    ["GPU in the dev overlay", (objs) => { worker(objs).resources.limits["nvidia.com/gpu"] = 1; }, /no GPU in the dev overlay/],
    ["tensor-parallel ranks without their GPUs", (objs) => { worker(objs).args.push("--tensor_parallel=2"); },
      /must equal the pod's 1 GPU/, 1],
    ["short startup budget", (objs) => { worker(objs).startupProbe.failureThreshold = 30; }, /startupProbe allows/],
    ["hostPath volume", (objs) => { podSpecOf(objs.find((o) => o.kind === "Deployment")).volumes.push({ name: "h", hostPath: { path: "/" } }); }, /hostPath/],
    ["wrong namespace", (objs) => { objs.find((o) => o.kind === "Service").metadata.namespace = "default"; }, /namespace must be/],
    ["stale bundled-model pointer", (objs) => {
      const reg = objs.find((o) => o.metadata.name === "ossgate-registry");
      reg.data["ossgate-small.gguf.pointer"] = reg.data["ossgate-small.gguf.pointer"].replace(/size \d+/, "size 12");
    }, /does not match models/],
    ["registry entry with a malformed family", (objs) => {
      const reg = objs.find((o) => o.metadata.name === "ossgate-registry");
      reg.data["ossgate-small.entry"] = reg.data["ossgate-small.entry"].replace(/^family=.*$/m, "family=GPT OSS");
    }, /is not a model family/],
  ];
  const quiet = console.log;
  for (const [name, mutate, expected, r = 0] of cases) {
    const render = RENDERS[r];
    const copy = structuredClone(results[r].objects);
    mutate(copy);
    const got = [];
    const counted = checks;
    sink = got;
    console.log = () => {};
    try {
      await checkObjects(repo, render, copy, binFlags);
    } finally {
      console.log = quiet;
      sink = failures;
      checks = counted;  // only the verdict on each mutation counts
    }
    check(got.some((f) => expected.test(f)), "self-test", `${name}: not caught (${got.length} other failures: ${got.slice(0, 2).join("; ")})`);
  }
  const text = readFileSync(path.join(repo, "deploy/docker/provenance.Dockerfile"), "utf8");
  const dockerCases = [
    ["COPY of a missing file", text.replace("COPY . .", "COPY tools/no-such-file.sh tools/\nCOPY . ."), /does not exist in the repository/],
    ["RUN of a missing script", text.replace("bash tools/setup.sh", "bash tools/no-such-setup.sh"), /RUN script tools\/no-such-setup\.sh/],
    ["runtime as root", text.replace("USER 10001:10001", "USER root"), /non-root USER/],
    ["compiler in the runtime stage", text.replace("--no-install-recommends \\\n", "--no-install-recommends build-essential \\\n"), /installs build tools/],
    ["lint error", text.replace("EXPOSE 7443", "EXPOSE port"), /lint line/],
  ];
  for (const [name, mutated, expected] of dockerCases) {
    check(mutated !== text, "self-test", `${name}: mutation did not apply`);
    const got = [];
    const counted = checks;
    sink = got;
    try {
      checkDockerfile(repo, "provenance.Dockerfile", mutated, patterns, new Map());
    } finally {
      sink = failures;
      checks = counted;
    }
    check(got.some((f) => expected.test(f)), "self-test", `${name}: not caught (${got.slice(0, 2).join("; ")})`);
  }
  return cases.length + dockerCases.length;
}

// ---- main ----

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const repo = path.resolve(opts.repo ?? path.join(import.meta.dirname, "../.."));
  const kubectl = findKubectl(opts.kubectl);
  const binFlags = new Map(Object.values(BINARIES).map((b) => [b.name, declaredFlags(repo, b.flags)]));
  for (const [bin, pending] of Object.entries(PENDING_FLAGS)) {
    const landed = pending.filter((f) => binFlags.get(bin).has(f));
    if (landed.length) console.log(`note: ${bin} now declares --${landed.join(", --")}: enable components/provenance-health-port in the overlays`);
  }
  const results = [];
  for (const r of RENDERS) results.push(await checkRender(repo, kubectl, r, binFlags));
  const images = new Map();
  checkDockerfiles(repo, images);
  checkImagesMatchManifests(results, images);
  const mutations = results[0] && results[1] ? await selfTest(repo, results, binFlags, dockerignorePatterns(repo)) : 0;
  for (const f of failures) console.error(`FAIL ${f}`);
  const objects = results.filter(Boolean).reduce((n, r) => n + r.objects.length, 0);
  console.log(`deploy: ${RENDERS.length} renders, ${objects} objects schema-validated, ${DOCKERFILES.length} Dockerfiles, ` +
    `${mutations} self-test mutations; ` +
    `${checks - failures.length} passed, ${failures.length} failed`);
  if (failures.length) process.exit(1);
  if (opts["emit-commands"]) writeFileSync(opts["emit-commands"], JSON.stringify(results[0].resolved, null, 2));
}

await main();
