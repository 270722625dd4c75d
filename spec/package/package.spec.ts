// polyproxy as an npm package, the way its users meet it: `npm pack`, the tarball installed into a fresh project with
// the newest Effect 4.x, every TypeScript program of the README typechecked against it (strict; nodenext and bundler
// resolution), every config of the README through the installed `polyproxy check-config`, and both README resolver
// examples run for real: pg through them to a real PostgreSQL, an HTTP request by Host to a real origin.
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as path from "node:path"
import pg from "pg"
import { request } from "undici"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { parse } from "yaml"
import { makeCerts, type PostgresServer, startPostgres } from "../support/backends/index.ts"
import { installedCopies, type PackedProject, packAndInstall } from "../support/packedProject.ts"
import { eventually } from "../support/proxy.ts"
import { type CodeBlock, completeBlocks } from "../support/readmeBlocks.ts"

const repo = path.resolve(".")
const readme = fs.readFileSync(path.join(repo, "README.md"), "utf8")
const tsc = path.join(repo, "node_modules", "typescript", "bin", "tsc")

let project: PackedProject
const bin = () => path.join(project.dir, "node_modules", ".bin", "polyproxy")
/** The environment without POLYPROXY_* variables: polyproxy refuses unknown ones, and none should steer these runs. */
const cleanEnv = () =>
  Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("POLYPROXY_"))) as NodeJS.ProcessEnv

beforeAll(() => {
  // The README's install line, with the tarball in place of the registry's polyproxy; @types/node for the typecheck.
  project = packAndInstall(repo, ["effect@4", "@effect/platform-node@4", "@types/node@24"])
}, 300_000)

const semverOrder = (a: string, b: string) => {
  const pa = a.split(/[.-]/).map(Number)
  const pb = b.split(/[.-]/).map(Number)
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i]! - pb[i]!
  return 0
}

describe("the tarball", () => {
  it("ships the build, its TypeScript sources, the embedded config and a LICENSE; no build stamp, no specs", () => {
    const files = project.files
    for (const f of [
      "LICENSE",
      "README.md",
      "package.json",
      "dist/index.js",
      "dist/index.d.ts",
      "dist/cli.js",
      "dist/resolvers/redis.js",
      "dist/resolvers/redis.d.ts",
      "dist/resolvers/http.js",
      "dist/resolvers/http.d.ts",
      "fixtures/example.yaml",
      "src/index.ts"
    ]) {
      expect(files).toContain(f)
    }
    expect(
      files.filter((f) => f.endsWith(".built") || /^(spec|bench|load|deploy|stack|node_modules)\//.test(f))
    ).toEqual([])
    const manifest = JSON.parse(fs.readFileSync(path.join(project.packageDir, "package.json"), "utf8")) as {
      license: string
    }
    expect(manifest.license).toBe("MIT")
    expect(fs.readFileSync(path.join(project.packageDir, "LICENSE"), "utf8")).toMatch(
      /^MIT License\n\nCopyright \(c\) \d{4} polyproxy contributors\n/
    )
  })

  it("has source maps whose sources are in the package", () => {
    const maps: Array<string> = []
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name)
        if (e.isDirectory()) walk(p)
        else if (e.name.endsWith(".map")) maps.push(p)
      }
    }
    walk(path.join(project.packageDir, "dist"))
    expect(maps.length).toBeGreaterThan(100)
    const missing = maps.flatMap((m) => {
      const { sources } = JSON.parse(fs.readFileSync(m, "utf8")) as { sources: Array<string> }
      return sources.map((s) => path.resolve(path.dirname(m), s)).filter((s) => !fs.existsSync(s))
    })
    expect(missing).toEqual([])
  })

  it("has a working bin", () => {
    const r = spawnSync(process.execPath, [bin(), "--version"], { encoding: "utf8", env: cleanEnv() })
    expect(r.status).toBe(0)
    expect(r.stdout.trim()).toBe(JSON.parse(fs.readFileSync(path.join(repo, "package.json"), "utf8")).version)
  })
})

describe("installed with the newest effect 4.x", () => {
  it("shares the project's one copy of effect (a peer dependency) and npm warns about no peer", () => {
    const newest = [...project.effect4Versions].sort(semverOrder).at(-1)
    expect(installedCopies(project.dir, "effect")).toEqual([
      { path: path.join(project.dir, "node_modules", "effect"), version: newest }
    ])
    expect(project.installWarnings).not.toMatch(/peer|ERESOLVE/i)
  })

  it("exports the shipped resolvers, configuredResolver and parseEndpoint, and nothing by deep path", () => {
    const script = `
      const p = await import("polyproxy")
      const redis = await import("polyproxy/resolvers/redis")
      const httpResolver = await import("polyproxy/resolvers/http")
      let deep
      try { await import("polyproxy/dist/Proxy.js"); deep = "imported" } catch (e) { deep = e.code }
      console.log(JSON.stringify({
        runProxy: typeof p.runProxy,
        configuredResolver: typeof p.configuredResolver,
        parsed: p.parseEndpoint("[::1]:5432"),
        refused: p.parseEndpoint("db.internal"),
        redis: [typeof redis.layer, typeof redis.make, redis.defaultKey],
        http: [typeof httpResolver.layer, typeof httpResolver.make, httpResolver.defaults.timeout],
        deep
      }))`
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      cwd: project.dir,
      encoding: "utf8"
    })
    expect(r.stderr).toBe("")
    expect(JSON.parse(r.stdout)).toEqual({
      runProxy: "function",
      configuredResolver: "function",
      parsed: { host: "::1", port: 5432 },
      refused: 'endpoint "db.internal": expected "host:port"',
      redis: ["function", "function", "polyproxy:routes"],
      http: ["function", "function", 2],
      deep: "ERR_PACKAGE_PATH_NOT_EXPORTED"
    })
  })
})

/** A README block's file name: its first line `// name.ts: …`, else its line number. */
const fileName = (b: CodeBlock) => /^\/\/ ([\w.-]+\.ts)\b/.exec(b.code)?.[1] ?? `readme-line-${b.line}.ts`

describe("README TypeScript, typechecked against the installed package", () => {
  const blocks = completeBlocks(readme, "ts")

  it("has both resolver examples", () => {
    expect(blocks.map(fileName)).toEqual(expect.arrayContaining(["resolver-async.ts", "resolver-layer.ts"]))
  })

  it.each([
    ["nodenext", { module: "nodenext", moduleResolution: "nodenext" }],
    ["bundler", { module: "preserve", moduleResolution: "bundler" }]
  ])("with %s resolution, strict", (name, resolution) => {
    const dir = path.join(project.dir, `typecheck-${name}`)
    fs.mkdirSync(dir, { recursive: true })
    for (const b of blocks) fs.writeFileSync(path.join(dir, fileName(b)), b.code)
    const compilerOptions = {
      ...resolution,
      target: "es2023",
      lib: ["es2023"],
      strict: true,
      noEmit: true,
      // Checks polyproxy's own .d.ts files as a user's compiler sees them, not only the README's code.
      skipLibCheck: false,
      verbatimModuleSyntax: true,
      moduleDetection: "force",
      types: ["node"]
    }
    fs.writeFileSync(path.join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions, include: ["*.ts"] }))
    const r = spawnSync(process.execPath, [tsc, "-p", dir], { encoding: "utf8", timeout: 120_000 })
    // One diagnostic per entry (its continuation lines are indented). Effect's own .d.ts files are Effect's concern
    // (4.1.5's RpcClient.d.ts names DOM's Transferable, absent without lib "dom"); polyproxy's and the README's are ours.
    const diagnostics = (r.stdout + r.stderr).split(/\n(?=\S)/).filter((d) => d.trim() !== "")
    const ours = diagnostics.filter(
      (d) => !/\/node_modules\//.test(d.split("(")[0]!) || /\/node_modules\/polyproxy\//.test(d)
    )
    expect(ours).toEqual([])
    expect(r.status === 0 || diagnostics.length > 0).toBe(true)
  })
})

describe("README configs, through the installed `polyproxy check-config`", () => {
  it("accepts every complete YAML block (certificate files it names are made for it)", async () => {
    const certs = await makeCerts()
    const blocks = completeBlocks(readme, "yaml")
    expect(blocks.length).toBeGreaterThan(5)
    const failures: Array<string> = []
    for (const b of blocks) {
      const dir = path.join(project.dir, "configs", `line-${b.line}`)
      fs.mkdirSync(dir, { recursive: true })
      // Every TLS file a block names (cert/key/ca) gets real PEM: the check reads them and matches keys to certificates.
      const pem: Record<string, string> = { cert: certs.server.cert, key: certs.server.key, ca: certs.ca.cert }
      const files = (v: unknown): void => {
        if (v === null || typeof v !== "object") return
        for (const [k, x] of Object.entries(v)) {
          if (typeof x === "string" && pem[k] !== undefined) fs.writeFileSync(path.join(dir, x), pem[k])
          else files(x)
        }
      }
      files(parse(b.code))
      // The README's first-bytes example names the extractor the package ships in fixtures/extractors.
      fs.cpSync(path.join(project.packageDir, "fixtures", "extractors"), path.join(dir, "extractors"), {
        recursive: true
      })
      fs.writeFileSync(path.join(dir, "polyproxy.yaml"), b.code)
      const r = spawnSync(process.execPath, [bin(), "check-config", "polyproxy.yaml"], {
        cwd: dir,
        encoding: "utf8",
        env: cleanEnv(),
        timeout: 20_000
      })
      if (r.status !== 0) failures.push(`README line ${b.line}: exit ${r.status}: ${r.stderr.trim()}`)
    }
    expect(failures).toEqual([])
  })
})

interface Running {
  readonly child: ChildProcess
  readonly output: () => string
  readonly exited: Promise<number | null>
}

/** Runs a README program with `node file.ts` in the user's project. */
const runExample = (file: string, code: string): Running => {
  fs.writeFileSync(path.join(project.dir, file), code)
  const child = spawn(process.execPath, [file], {
    cwd: project.dir,
    env: cleanEnv(),
    stdio: ["ignore", "pipe", "pipe"]
  })
  let out = ""
  child.stdout!.on("data", (d) => (out += d))
  child.stderr!.on("data", (d) => (out += d))
  const exited = new Promise<number | null>((r) => child.once("exit", (c) => r(c)))
  return { child, output: () => out, exited }
}

/** The README examples name default ports; a spec needs its own servers' ports (and port 0 for what it binds). */
const withPorts = (code: string, ports: Readonly<Record<number, number>>) => {
  let out = code
  for (const [from, to] of Object.entries(ports)) {
    const pattern = new RegExp(`\\b${from}\\b`, "g")
    if (!pattern.test(out)) throw new Error(`the example no longer mentions port ${from}`)
    out = out.replace(pattern, String(to))
  }
  return out
}

const exampleCode = (name: string) => {
  const block = completeBlocks(readme, "ts").find((b) => fileName(b) === name)
  if (block === undefined) throw new Error(`README has no ${name} block`)
  return block.code
}

describe("README resolver examples, run", () => {
  let db: PostgresServer
  let origin: http.Server
  let originPort = 0
  const running: Array<Running> = []

  beforeAll(async () => {
    db = await startPostgres({ databases: ["appdb"] })
    origin = http.createServer((req, res) => res.end(`origin saw ${req.headers.host} ${req.url}`))
    await new Promise<void>((r) => origin.listen(0, "127.0.0.1", r))
    originPort = (origin.address() as net.AddressInfo).port
  })

  afterAll(async () => {
    for (const r of running) r.child.kill("SIGKILL")
    origin?.close()
    await db?.stop()
  })

  const start = async (name: string) => {
    const r = runExample(
      name,
      withPorts(exampleCode(name), { 5432: db.port, 3000: originPort, 6432: 0, 8080: 0, 9090: 0 })
    )
    running.push(r)
    await eventually(() => r.output().includes('"event":"admin listening"') || r.child.exitCode !== null, 30_000)
    if (!r.output().includes('"event":"admin listening"')) throw new Error(`${name} did not start:\n${r.output()}`)
    const port = (what: RegExp) => Number(what.exec(r.output())?.[1])
    return {
      ...r,
      postgres: port(/"event":"listening","listener":"postgres".*?"port":(\d+)/),
      http: port(/"event":"listening","listener":"http".*?"port":(\d+)/),
      admin: port(/"event":"admin listening".*?"port":(\d+)/)
    }
  }

  const query = async (port: number, database: string) => {
    const client = new pg.Client({ host: "127.0.0.1", port, database, user: db.user, password: db.userPassword })
    await client.connect()
    try {
      return (await client.query<{ db: string }>("select current_database() as db")).rows[0]!.db
    } finally {
      await client.end()
    }
  }

  const byHost = async (port: number, host: string) => {
    const r = await request(`http://127.0.0.1:${port}/hello`, { headers: { host } })
    return { status: r.statusCode, body: await r.body.text() }
  }

  it.each(["resolver-async.ts", "resolver-layer.ts"])(
    "%s routes pg by database and HTTP by Host, and SIGTERM stops it",
    async (name) => {
      const proxy = await start(name)
      expect(await query(proxy.postgres, "appdb")).toBe("appdb")
      await expect(query(proxy.postgres, "nosuchdb")).rejects.toMatchObject({ code: "3D000" })
      expect(await byHost(proxy.http, "app.localhost")).toEqual({
        status: 200,
        body: "origin saw app.localhost /hello"
      })
      expect((await byHost(proxy.http, "other.localhost")).status).toBe(404)
      const health = await fetch(`http://127.0.0.1:${proxy.admin}/healthz`)
      expect(health.status).toBe(200)
      proxy.child.kill("SIGTERM")
      expect(await proxy.exited).not.toBeNull()
    }
  )

  it("the async example answers a suspended tenant with the resolver's FORBIDDEN", async () => {
    const proxy = await start("resolver-async.ts")
    await expect(query(proxy.postgres, "closed")).rejects.toMatchObject({
      code: "28000",
      message: expect.stringContaining("tenant suspended")
    })
  })

  it("the layer example's Resolver is the one serving (its getStats)", async () => {
    const proxy = await start("resolver-layer.ts")
    expect(await query(proxy.postgres, "appdb")).toBe("appdb")
    const stats = (await (await fetch(`http://127.0.0.1:${proxy.admin}/admin/stats`)).json()) as {
      resolver: { kind: string; lookups: number }
    }
    expect(stats.resolver).toEqual({ kind: "map", routes: 2, lookups: 1 })
  })

  it("a start that fails (a port in use) exits 1 with the reason, embedded and as `polyproxy serve`", async () => {
    const taken = net.createServer()
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r))
    const port = (taken.address() as net.AddressInfo).port
    try {
      const embedded = runExample(
        "resolver-async-taken.ts",
        withPorts(exampleCode("resolver-async.ts"), { 5432: db.port, 3000: originPort, 6432: 0, 8080: port, 9090: 0 })
      )
      running.push(embedded)
      expect(await embedded.exited).toBe(1)
      expect(embedded.output()).toContain(`cannot listen on 127.0.0.1:${port}: EADDRINUSE`)

      const dir = path.join(project.dir, "taken")
      fs.mkdirSync(dir, { recursive: true })
      fs.writeFileSync(
        path.join(dir, "polyproxy.yaml"),
        `admin: false\nlisteners: { tcp: { host: 127.0.0.1, port: ${port}, route: appdb } }\n`
      )
      const cli = spawnSync(process.execPath, [bin(), "serve", "--config", "polyproxy.yaml"], {
        cwd: dir,
        encoding: "utf8",
        env: cleanEnv(),
        timeout: 20_000
      })
      expect(cli.status).toBe(1)
      expect(cli.stderr).toContain(`cannot listen on 127.0.0.1:${port}: EADDRINUSE`)
    } finally {
      taken.close()
    }
  })
})
