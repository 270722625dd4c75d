// Small socket helpers the specs share: ports, an echo backend, a one-shot round trip.
import { spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import * as net from "node:net"

/** The kernel's ephemeral range starts here: listen(0) and outgoing connections take ports from it. */
const ephemeralStart = (): number => {
  try {
    const first = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0])
    return Number.isInteger(first) && first > 2048 ? first : 32768
  } catch {
    return 32768
  }
}

const refused = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.connect(port, "127.0.0.1")
    s.once("connect", () => {
      s.destroy()
      resolve(false)
    })
    s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code === "ECONNREFUSED"))
  })

/**
 * A loopback port nothing listens on, for "backend is down" cases: one below the ephemeral range, checked refused.
 * A port bound and released (freePort) can be taken again by another spec's listen(0) or an outgoing connection
 * before the test dials it (psql once read an HTTP server's "H" there); ports below the range nobody takes by chance.
 */
export const closedPort = async (): Promise<number> => {
  const top = ephemeralStart()
  const bottom = Math.max(1024, top - 12_000)
  for (let tries = 0; tries < 50; tries++) {
    const port = bottom + Math.floor(Math.random() * (top - bottom))
    if (await refused(port)) return port
  }
  throw new Error("no closed port found below the ephemeral range")
}

/** An echo server on 127.0.0.1 (port 0 = any). */
export const echoServer = async (port = 0): Promise<net.Server> => {
  const s = net.createServer((c) => c.pipe(c))
  await new Promise<void>((r) => s.listen(port, "127.0.0.1", r))
  return s
}

/** Writes "ping" and resolves with the first answer, or "closed" when the proxy closes without one. */
export const ping = (port: number) =>
  new Promise<string>((resolve) => {
    const s = net.connect(port, "127.0.0.1", () => s.write("ping"))
    s.once("data", (d) => {
      resolve(String(d))
      s.destroy()
    })
    s.once("close", () => resolve("closed"))
    s.once("error", () => resolve("closed"))
  })

/** Writes `text` and resolves with what comes back once as many bytes arrived (or the peer closed). */
export const roundTrip = (port: number, text: string) =>
  new Promise<string>((res, rej) => {
    const s = net.connect(port, "127.0.0.1")
    let got = ""
    s.on("data", (d) => {
      got += d
      if (got.length >= text.length) {
        s.end()
        res(got)
      }
    })
    s.once("error", rej)
    s.once("close", () => res(got))
    s.write(text)
  })

/** A server that accepts and then says nothing, ever, nor closes (it reads and drops what it gets). */
export interface SilentServer {
  readonly port: number
  /** Its accepted sockets, and how many of them got the peer's FIN. */
  readonly sockets: Set<net.Socket>
  readonly fins: () => number
  readonly close: () => void
}

export const silentServer = async (onSocket?: (s: net.Socket) => void): Promise<SilentServer> => {
  const sockets = new Set<net.Socket>()
  let fins = 0
  const s = net.createServer({ allowHalfOpen: true }, (c) => {
    sockets.add(c)
    c.on("error", () => {})
    c.once("end", () => fins++)
    c.once("close", () => sockets.delete(c))
    if (onSocket) onSocket(c)
    else c.resume()
  })
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r))
  return {
    port: (s.address() as net.AddressInfo).port,
    sockets,
    fins: () => fins,
    close: () => {
      for (const c of sockets) c.destroy()
      s.close()
    }
  }
}

/**
 * A loopback port that never accepts: a child process listens with a backlog of 1, blocks, and two connections fill
 * its listen queue, so the kernel drops every further SYN (the dialer sees no answer at all, as with a firewall).
 */
export const neverAccepts = async (): Promise<{ readonly port: number; readonly close: () => void }> => {
  const child = spawn(
    process.execPath,
    [
      "-e",
      `const s = require("node:net").createServer().listen({ port: 0, host: "127.0.0.1", backlog: 1 }, () => {
         console.log(s.address().port)
         Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120000)
       })`
    ],
    { stdio: ["ignore", "pipe", "inherit"] }
  )
  const fillers: Array<net.Socket> = []
  const close = () => {
    for (const f of fillers) f.destroy()
    child.kill("SIGKILL")
  }
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout!.once("data", (d) => resolve(Number(String(d))))
      child.once("exit", () => reject(new Error("the never-accepting listener exited")))
    })
    for (let i = 0; i < 2; i++) {
      const f = net.connect(port, "127.0.0.1")
      f.on("error", () => {})
      fillers.push(f)
      await new Promise((r) => f.once("connect", r))
    }
    return { port, close }
  } catch (e) {
    close()
    throw e
  }
}

/**
 * A relay on 127.0.0.1 in front of `port` that lets a spec watch (or change) what passes: `onPair` gets each client
 * socket and its backend socket, unconnected to each other, and wires them as it likes (pipe, or write what it read).
 */
export const tapRelay = async (
  port: number,
  onPair: (client: net.Socket, backend: net.Socket) => void
): Promise<{ readonly port: number; readonly close: () => void }> => {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const backend = net.connect(port, "127.0.0.1")
    for (const s of [client, backend]) {
      sockets.add(s)
      s.on("error", () => {})
      s.once("close", () => sockets.delete(s))
    }
    onPair(client, backend)
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy()
      server.close()
    }
  }
}
