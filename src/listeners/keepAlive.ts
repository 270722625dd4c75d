// TCP keep-alive on the sockets the relaying listeners hold, client side and backend side (`tcp.keepAlive`): it finds
// a peer that vanished without a FIN. Node's `keepAlive` socket and server options make one libuv call per socket that
// sets SO_KEEPALIVE, TCP_KEEPIDLE and libuv's own TCP_KEEPINTVL (1 s) and TCP_KEEPCNT (10). Other probe settings need
// socket.setKeepAlive(true, idle, interval, count), made instead of the option (never as well), so a connection costs
// the same four setsockopt calls whatever is configured. Plain module state, like sourceAddress.ts: set at start.
import * as net from "node:net"
import { defaults, type TcpKeepAlive } from "../config/Config.ts"

/** The probe interval (seconds) and count libuv sets along with the idle time when only that is given. */
export const libuvProbes = { interval: 1, count: 10 } as const

/** Whether this Node.js takes the probe interval and count (socket.setKeepAlive(enable, delay, interval, count)). */
export const probesSettable = net.Socket.prototype.setKeepAlive.length >= 4

export interface KeepAliveSetup {
  /** `keepAlive` / `keepAliveInitialDelay` for the net.Socket and net.createServer options. */
  readonly keepAlive: boolean
  readonly keepAliveInitialDelay: number
  /** Set when the probes differ from libuv's: call it on each socket in place of the option. */
  readonly tune: ((socket: net.Socket) => void) | undefined
}

const setupOf = (ka: TcpKeepAlive): KeepAliveSetup => {
  const idleMs = ka.idle * 1000
  const own = ka.enabled && (ka.interval !== libuvProbes.interval || ka.count !== libuvProbes.count)
  const intervalMs = ka.interval * 1000
  return {
    keepAlive: ka.enabled && !own,
    keepAliveInitialDelay: idleMs,
    // Before connect() it is only recorded, and Node applies it with the connection; on an accepted socket it applies now.
    tune: own ? (socket) => socket.setKeepAlive(true, idleMs, intervalMs, ka.count) : undefined
  }
}

let current = setupOf(defaults.tcp.keepAlive)

/** The methods of Node's TCP handle (libuv's uv_tcp_nodelay / uv_tcp_keepalive) used on a listening socket. */
interface TcpHandle {
  setNoDelay?: (enable: boolean) => number
  setKeepAlive?: (enable: boolean, delaySeconds: number) => number
}

/**
 * Linux copies TCP_NODELAY, SO_KEEPALIVE and TCP_KEEPIDLE / TCP_KEEPINTVL / TCP_KEEPCNT of a listening socket to every
 * socket it accepts (as HAProxy relies on): set once on the listening socket, an accepted connection costs no
 * setsockopt at all instead of five (NODELAY and libuv's four keep-alive calls). Call it on `listening`, before the
 * first accept; it turns the server's per-socket options off for what it could set. Elsewhere, or on a handle without
 * these methods, the server's own options stay on and Node sets each accepted socket as before. Probes of our own
 * (`tune`) stay per socket: Node's handle takes only the idle time.
 */
export const setOnListeningSocket = (server: net.Server, setup: KeepAliveSetup): void => {
  if (process.platform !== "linux") return
  const handle = (server as net.Server & { _handle?: TcpHandle | null })._handle
  const s = server as net.Server & { noDelay: boolean; keepAlive: boolean }
  if (s.noDelay && typeof handle?.setNoDelay === "function" && handle.setNoDelay(true) === 0) s.noDelay = false
  if (
    s.keepAlive &&
    setup.tune === undefined &&
    typeof handle?.setKeepAlive === "function" &&
    handle.setKeepAlive(true, Math.floor(setup.keepAliveInitialDelay / 1000)) === 0
  )
    s.keepAlive = false
}

/** Replaces the keep-alive settings of sockets accepted or dialed from now on (validated by the config decoder). */
export const setTcpKeepAlive = (ka: TcpKeepAlive): void => {
  current = setupOf(ka)
}

/** The settings now; a new object after each setTcpKeepAlive, so a holder can tell when to rebuild its options. */
export const tcpKeepAlive = (): KeepAliveSetup => current
