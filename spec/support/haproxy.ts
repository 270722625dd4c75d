// A real HAProxy (TCP mode) in front of the proxy, each frontend sending a PROXY protocol header to its server.
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { freePort, makeTempDir } from "./backends/local.ts"

export interface HaproxyFront {
  /** host:port HAProxy forwards to. */
  readonly server: string
  /** HAProxy's server options: "send-proxy" (v1) or "send-proxy-v2". */
  readonly send: "send-proxy" | "send-proxy-v2"
}

export interface Haproxy {
  /** The port each frontend listens on (127.0.0.1), in the order given. */
  readonly ports: ReadonlyArray<number>
  readonly stop: () => void
}

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const probe = net.connect(port, "127.0.0.1", () => {
      probe.destroy()
      resolve(true)
    })
    probe.once("error", () => resolve(false))
  })

/** Starts /usr/sbin/haproxy with one frontend per entry; resolves once every frontend accepts. */
export const startHaproxy = async (fronts: ReadonlyArray<HaproxyFront>): Promise<Haproxy> => {
  const ports = await Promise.all(fronts.map(() => freePort()))
  const file = path.join(makeTempDir("haproxy"), "haproxy.cfg")
  fs.writeFileSync(
    file,
    [
      "global\n  maxconn 100",
      "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s",
      ...fronts.map(
        (f, i) =>
          `frontend f${i}\n  bind 127.0.0.1:${ports[i]}\n  default_backend b${i}\n` +
          `backend b${i}\n  server s${i} ${f.server} ${f.send}`
      )
    ].join("\n") + "\n"
  )
  const child = spawn("haproxy", ["-db", "-f", file], { stdio: "ignore" })
  const stop = () => {
    if (child.exitCode === null) child.kill("SIGKILL")
  }
  for (const port of ports) {
    let up = false
    // haproxy takes a moment to bind: poll until its port accepts (bounded)
    for (let i = 0; i < 100 && !up; i++) {
      up = await accepts(port)
      if (!up) await new Promise((r) => setTimeout(r, 100))
    }
    if (!up) {
      stop()
      throw new Error(`haproxy did not listen on ${port}`)
    }
  }
  return { ports, stop }
}
