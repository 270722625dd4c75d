// Shared plumbing for the "local" provider: servers run as children of the test process, each in its own temp dir.
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

export const INSTALL_HINT = "run `bash scripts/install-test-deps.sh` (or set TEST_BACKENDS=containers)"

export const randomSecret = (): string => randomBytes(12).toString("hex")

/**
 * None of these servers can be asked for an ephemeral port (PostgreSQL rejects 0, Redis reads it as "no TCP",
 * MariaDB as "the default"), so one is picked here; launch() retries if someone takes it before the server binds.
 */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.once("error", reject)
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address()
      const port = typeof address === "object" && address ? address.port : 0
      srv.close(() => (port ? resolve(port) : reject(new Error("could not read a free port"))))
    })
  })

export interface Account {
  readonly uid: number
  readonly gid: number
}

/** Only for servers that refuse to run as root (PostgreSQL); as any other user they simply run as that user. */
export const unprivilegedAccount = (name: string): Account | undefined => {
  if (process.getuid?.() !== 0) return undefined
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${name}:`))
  const [, , uid, gid] = line?.split(":") ?? []
  if (uid === undefined || gid === undefined) throw new Error(`user ${name} does not exist; ${INSTALL_HINT}`)
  return { uid: Number(uid), gid: Number(gid) }
}

// Safety net: whatever a spec forgot to stop dies with the test process, and its temp dir goes with it.
// Each child maps to the signal it gets when the test process dies under it.
const liveChildren = new Map<ChildProcess, NodeJS.Signals>()
const liveDirs = new Set<string>()
let exitHooksInstalled = false

const cleanupSync = (): void => {
  for (const [child, signal] of liveChildren) {
    try {
      child.kill(signal)
    } catch {}
  }
  liveChildren.clear()
  for (const dir of liveDirs) {
    try {
      rmSync(dir, { recursive: true, force: true })
    } catch {}
  }
  liveDirs.clear()
}

const installExitHooks = (): void => {
  if (exitHooksInstalled) return
  exitHooksInstalled = true
  process.once("exit", cleanupSync)
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      cleanupSync()
      // Listening to a signal cancels Node's default of dying from it; restore that unless someone else handles it.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
    })
  }
}

export const makeTempDir = (label: string, owner?: Account): string => {
  installExitHooks()
  const dir = mkdtempSync(join(tmpdir(), `polyproxy-${label}-`))
  liveDirs.add(dir)
  if (owner) chownSync(dir, owner.uid, owner.gid)
  return dir
}

export const removeTempDir = (dir: string): void => {
  liveDirs.delete(dir)
  rmSync(dir, { recursive: true, force: true })
}

/** Writes a file the server process (possibly another user) must own, e.g. a TLS key that must be 0600. */
export const writeOwnedFile = (path: string, content: string, mode: number, owner?: Account): void => {
  writeFileSync(path, content, { mode })
  chmodSync(path, mode)
  if (owner) chownSync(path, owner.uid, owner.gid)
}

export const run = (
  file: string,
  args: readonly string[],
  options: { account?: Account | undefined; env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}
): Promise<string> =>
  new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      {
        env: options.env ?? process.env,
        timeout: options.timeoutMs ?? 30_000,
        maxBuffer: 16 * 1024 * 1024,
        ...(options.account ? { uid: options.account.uid, gid: options.account.gid } : {})
      },
      (error, stdout, stderr) => {
        if (!error) return resolve(stdout)
        const missing =
          (error as NodeJS.ErrnoException).code === "ENOENT" ? ` (${file} not found; ${INSTALL_HINT})` : ""
        reject(new Error(`${file} ${args.join(" ")} failed${missing}: ${error.message}\n${tail(stdout + stderr)}`))
      }
    )
    if (options.input !== undefined) child.stdin?.end(options.input)
  })

export const tail = (text: string, lines = 30): string => text.trimEnd().split("\n").slice(-lines).join("\n")

export interface LocalServer {
  readonly child: ChildProcess
  readonly port: number
  /** Stops the process (signal first, SIGKILL after a grace period) and waits for it to be gone. */
  readonly kill: () => Promise<void>
}

export interface LaunchSpec {
  readonly name: string
  readonly file: string
  readonly args: readonly string[]
  readonly account?: Account | undefined
  readonly cwd?: string
  readonly env?: NodeJS.ProcessEnv
  /** Matched against the server's own log output: logging is how these servers announce they accept clients. */
  readonly ready: RegExp
  /** The log line that means someone else took the port between freePort() and the bind: try another one. */
  readonly portTaken: RegExp
  readonly stopSignal: NodeJS.Signals
  /**
   * Sent when the test process exits without stop(): nothing can wait for the server then, so it must be a signal
   * the server acts on alone and at once. Default SIGKILL.
   */
  readonly exitSignal?: NodeJS.Signals
  readonly deadlineMs?: number
}

const MAX_LOG = 64 * 1024

/**
 * Spawns a server in the foreground as our child, so that stopping it is a plain signal and the exit is
 * observed directly (a daemonised server would be reaped late by PID 1 on this kind of machine).
 */
export const launch = async (spec: (port: number) => LaunchSpec): Promise<LocalServer> => {
  installExitHooks()
  let lastError: Error | undefined
  for (let attempt = 0; attempt < 4; attempt++) {
    const port = await freePort()
    const s = spec(port)
    try {
      return await launchOnce(s, port)
    } catch (error) {
      lastError = error as Error
      if (!(error instanceof PortTakenError)) throw error
    }
  }
  throw lastError
}

/** `launch` on a port already chosen: a second server sharing it (SO_REUSEPORT), no other port tried. */
export const launchAt = (spec: LaunchSpec, port: number): Promise<LocalServer> => {
  installExitHooks()
  return launchOnce(spec, port)
}

class PortTakenError extends Error {}

const launchOnce = (s: LaunchSpec, port: number): Promise<LocalServer> =>
  new Promise((resolve, reject) => {
    let log = ""
    let settled = false
    const child = spawn(s.file, s.args, {
      cwd: s.cwd,
      env: s.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
      ...(s.account ? { uid: s.account.uid, gid: s.account.gid } : {})
    })
    liveChildren.set(child, s.exitSignal ?? "SIGKILL")
    const exited = new Promise<void>((done) =>
      child.once("exit", () => {
        liveChildren.delete(child)
        done()
      })
    )

    const fail = (error: Error): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      child.kill("SIGKILL")
      reject(error)
    }
    const onLog = (chunk: Buffer): void => {
      log = (log + chunk.toString("utf8")).slice(-MAX_LOG)
      if (!settled && s.ready.test(log)) {
        settled = true
        clearTimeout(timer)
        // A server nobody stopped must not hold the test process open; the exit hook still kills it.
        child.unref()
        resolve({ child, port, kill: () => stopChild(child, exited, s.stopSignal) })
      }
    }
    child.stdout?.on("data", onLog)
    child.stderr?.on("data", onLog)
    // Socket handles have unref() at runtime, but the Readable type does not say so.
    for (const stream of [child.stdout, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.()

    const deadlineMs = s.deadlineMs ?? 20_000
    const timer = setTimeout(
      () => fail(new Error(`${s.name} was not ready within ${deadlineMs} ms on port ${port}; log tail:\n${tail(log)}`)),
      deadlineMs
    )
    child.once("error", (error: NodeJS.ErrnoException) => {
      const hint = error.code === "ENOENT" ? ` (${s.file} not found; ${INSTALL_HINT})` : ""
      fail(new Error(`${s.name} could not be started${hint}: ${error.message}`))
    })
    // "close", not "exit": only then has the last of the log been read for the error message.
    child.once("close", (code, signal) => {
      if (s.portTaken.test(log)) return fail(new PortTakenError(`${s.name}: port ${port} was taken`))
      fail(new Error(`${s.name} exited before it was ready (code ${code}, signal ${signal}); log tail:\n${tail(log)}`))
    })
  })

const stopChild = async (child: ChildProcess, exited: Promise<void>, signal: NodeJS.Signals): Promise<void> => {
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill(signal)
  const killer = setTimeout(() => child.kill("SIGKILL"), 5_000)
  await exited
  clearTimeout(killer)
}
