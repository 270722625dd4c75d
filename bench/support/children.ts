// Small helpers for the runner's own Node children (echo backend, load generator) and for reaching a TCP port.
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

/**
 * Spawns `node bench/<script> args` with a pipe on stdin (the child exits when it closes) and calls `onLine` for
 * every line it prints on stdout.
 */
export const spawnNodeScript = (
  script: string,
  args: readonly string[],
  onLine: (line: string) => void
): { child: ChildProcess; stderr: () => string; exited: Promise<number | null> } => {
  const child = track(
    spawn(process.execPath, [join(repoRoot, "bench", script), ...args], {
      cwd: repoRoot,
      env: helperEnv(),
      stdio: ["pipe", "pipe", "pipe"]
    })
  )
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
