// The runner's helper children (load generators, backends, origins, the minimal Node relay) and TCP readiness probes.
import { type ChildProcess, spawn } from "node:child_process"
import * as net from "node:net"
import { join } from "node:path"
import { repoRoot } from "./polyproxy.ts"
import { track } from "./process.ts"

/** The environment for helper Node processes: no NODE_OPTIONS (e.g. a --cpu-prof meant for the proxy). */
export const helperEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (k !== "NODE_OPTIONS") env[k] = v
  return env
}

export interface LineChild {
  readonly child: ChildProcess
  readonly stderr: () => string
  readonly exited: Promise<number | null>
}

/**
 * Spawns `file args` with a pipe on stdin (the child exits when it closes: every helper here does) and calls
 * `onLine` for every line it prints on stdout.
 */
export const spawnLines = (file: string, args: readonly string[], onLine: (line: string) => void): LineChild => {
  const child = track(spawn(file, args, { cwd: repoRoot, env: helperEnv(), stdio: ["pipe", "pipe", "pipe"] }))
  let buffered = ""
  let stderr = ""
  child.stdout?.setEncoding("utf8").on("data", (s: string) => {
    buffered += s
    for (let i = buffered.indexOf("\n"); i >= 0; i = buffered.indexOf("\n")) {
      const line = buffered.slice(0, i)
      buffered = buffered.slice(i + 1)
      if (line.trim() !== "") onLine(line)
    }
  })
  child.stderr?.setEncoding("utf8").on("data", (s: string) => {
    stderr = (stderr + s).slice(-8 * 1024)
  })
  child.stdin?.on("error", () => {})
  const exited = new Promise<number | null>((resolve) => {
    child.once("error", (error) => {
      stderr += `spawn failed: ${error.message}\n`
      resolve(null)
    })
    child.once("exit", (code) => resolve(code))
  })
  return { child, stderr: () => stderr.trim(), exited }
}

/** `node bench/<script> args`, as spawnLines. */
export const spawnNodeScript = (script: string, args: readonly string[], onLine: (line: string) => void): LineChild =>
  spawnLines(process.execPath, [join(repoRoot, "bench", script), ...args], onLine)

export interface ReadyChild<A> {
  readonly pid: number
  /** What `ready` read from its output. */
  readonly info: A
  readonly alive: () => boolean
  readonly stop: () => void
}

/**
 * A server helper (echo backend, TLS origins, relay, Node proxies): spawned as spawnLines, ready once `ready` finds
 * what it needs (its port) in a line of its output; fails when it exits first or takes more than 10 s.
 */
export const startHelper = async <A>(
  name: string,
  file: string,
  args: readonly string[],
  ready: (line: string) => A | undefined
): Promise<ReadyChild<A>> => {
  let found: (a: A) => void = () => {}
  const gotIt = new Promise<A>((resolve) => {
    found = resolve
  })
  const c = spawnLines(file, args, (line) => {
    try {
      const a = ready(line)
      if (a !== undefined) found(a)
    } catch {}
  })
  let timer: NodeJS.Timeout | undefined
  try {
    const info = await Promise.race([
      gotIt,
      c.exited.then((code) => Promise.reject(new Error(`${name} exited (${code}): ${c.stderr()}`))),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${name} did not start within 10 s: ${c.stderr()}`)), 10_000)
      })
    ])
    return {
      pid: c.child.pid!,
      info,
      alive: () => c.child.exitCode === null && c.child.signalCode === null,
      stop: () => c.child.kill("SIGTERM")
    }
  } catch (error) {
    c.child.kill("SIGKILL")
    throw error
  } finally {
    clearTimeout(timer)
  }
}

/** The first line's {"port":N}: what the Node helpers print once listening. */
export const portLine = (line: string): number | undefined => (JSON.parse(line) as { port?: number }).port

/** How the results describe the minimal Node relay variant. */
export const NODE_RELAY_WHAT =
  "the Node floor (bench/support/relay.ts): net.createServer + net.connect + data/drain handlers, nothing else"

/** The minimal Node relay (bench/support/relay.ts) in front of `targetPort` (several: connections take turns). */
export const startNodeRelay = (targetPort: number | readonly number[]): Promise<ReadyChild<number>> =>
  startHelper(
    "node relay",
    process.execPath,
    [join(repoRoot, "bench", "support", "relay.ts"), ...[targetPort].flat().map(String)],
    portLine
  )

/** Connects, sends `size` bytes, waits for as many back (an echo through whatever is on `port`), closes. */
export const echoRoundTrip = (port: number, size = 64, timeoutMs = 2_000): Promise<void> =>
  new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port })
    let got = 0
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`no echo from 127.0.0.1:${port} within ${timeoutMs} ms`))
    }, timeoutMs)
    socket.once("connect", () => socket.write(Buffer.alloc(size, 0x62)))
    socket.on("data", (chunk: Buffer) => {
      got += chunk.length
      if (got >= size) {
        clearTimeout(timer)
        socket.end()
        resolve()
      }
    })
    socket.once("error", (error) => {
      clearTimeout(timer)
      socket.destroy()
      reject(error)
    })
    socket.once("close", () => {
      clearTimeout(timer)
      if (got < size) reject(new Error(`127.0.0.1:${port} closed after ${got} of ${size} bytes`))
    })
  })

/** Resolves once something on `port` sends its first bytes (a server that speaks first: MySQL's greeting). */
export const firstBytes = (port: number, timeoutMs = 2_000): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port })
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`nothing from 127.0.0.1:${port} within ${timeoutMs} ms`))
    }, timeoutMs)
    socket.once("data", (chunk: Buffer) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(chunk)
    })
    socket.once("error", (error) => {
      clearTimeout(timer)
      socket.destroy()
      reject(error)
    })
    socket.once("close", () => {
      clearTimeout(timer)
      reject(new Error(`127.0.0.1:${port} closed without sending anything`))
    })
  })
