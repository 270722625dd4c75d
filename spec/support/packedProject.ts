// polyproxy as a user gets it: `npm pack` (its prepack builds dist/), then the tarball installed into a fresh project
// with the newest Effect 4.x from the registry. Packed from a copy of the package's files, so the spec neither
// rebuilds the checkout's dist/ nor sees anything the tarball would not carry.
import { type SpawnSyncReturns, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { makeTempDir } from "./backends/local.ts"

export interface PackedProject {
  /** The fresh project: package.json, node_modules with polyproxy installed from the tarball. */
  readonly dir: string
  /** The installed package: node_modules/polyproxy. */
  readonly packageDir: string
  /** Paths inside the tarball, as `npm pack` listed them. */
  readonly files: ReadonlyArray<string>
  /** What `npm install` printed on stderr (warnings). */
  readonly installWarnings: string
  /** The versions the registry has of `effect` 4.x, oldest first. */
  readonly effect4Versions: ReadonlyArray<string>
}

/** What the package ships, besides what `files` in package.json names (npm adds package.json, README, LICENSE). */
const packageInputs = [
  "package.json",
  "README.md",
  "LICENSE",
  "tsconfig.json",
  "tsconfig.build.json",
  "src",
  "fixtures"
]

/** npm on the same Node as this process (the one on PATH may be older). */
export const npm = (args: ReadonlyArray<string>, cwd: string, timeoutMs = 180_000): SpawnSyncReturns<string> =>
  spawnSync("npm", args, {
    cwd,
    encoding: "utf8",
    timeout: timeoutMs,
    env: {
      ...process.env,
      PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ""}`,
      npm_config_audit: "false",
      npm_config_fund: "false",
      npm_config_update_notifier: "false"
    }
  })

const check = (r: SpawnSyncReturns<string>, what: string): string => {
  if (r.status !== 0) throw new Error(`${what} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`)
  return r.stdout
}

export const packAndInstall = (repo: string, extraPackages: ReadonlyArray<string>): PackedProject => {
  const root = makeTempDir("package")
  const source = path.join(root, "source")
  fs.mkdirSync(source)
  for (const entry of packageInputs) fs.cpSync(path.join(repo, entry), path.join(source, entry), { recursive: true })
  // The build (prepack) needs TypeScript and the types: the checkout's, read through a link.
  fs.symlinkSync(path.join(repo, "node_modules"), path.join(source, "node_modules"), "dir")
  const packed = check(npm(["pack", "--json", "--pack-destination", root], source), "npm pack")
  // Lifecycle scripts may print before the JSON answer.
  const [info] = JSON.parse(packed.slice(packed.indexOf("[\n"))) as Array<{
    filename: string
    files: Array<{ path: string }>
  }>
  const tarball = path.join(root, info!.filename)

  const versions = JSON.parse(check(npm(["view", "effect@4", "version", "--json"], root), "npm view")) as
    | string
    | Array<string>
  const effect4Versions = typeof versions === "string" ? [versions] : versions
  const dir = path.join(root, "app")
  fs.mkdirSync(dir)
  fs.writeFileSync(
    path.join(dir, "package.json"),
    `${JSON.stringify({ name: "polyproxy-user", version: "1.0.0", private: true, type: "module" }, null, 2)}\n`
  )
  const install = npm(["install", tarball, ...extraPackages], dir)
  check(install, "npm install")
  return {
    dir,
    packageDir: path.join(dir, "node_modules", "polyproxy"),
    files: info!.files.map((f) => f.path),
    installWarnings: install.stderr,
    effect4Versions
  }
}

/** Every installed copy of package `name` under `dir`/node_modules (nested copies included), with its version. */
export const installedCopies = (dir: string, name: string): Array<{ path: string; version: string }> => {
  const found: Array<{ path: string; version: string }> = []
  const walk = (modules: string) => {
    if (!fs.existsSync(modules)) return
    for (const entry of fs.readdirSync(modules)) {
      if (entry.startsWith(".")) continue
      const names = entry.startsWith("@")
        ? fs.readdirSync(path.join(modules, entry)).map((n) => `${entry}/${n}`)
        : [entry]
      for (const n of names) {
        const pkg = path.join(modules, n)
        if (n === name) {
          const { version } = JSON.parse(fs.readFileSync(path.join(pkg, "package.json"), "utf8")) as { version: string }
          found.push({ path: pkg, version })
        }
        walk(path.join(pkg, "node_modules"))
      }
    }
  }
  walk(path.join(dir, "node_modules"))
  return found
}
