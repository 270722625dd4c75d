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

/** Replaces the keep-alive settings of sockets accepted or dialed from now on (validated by the config decoder). */
export const setTcpKeepAlive = (ka: TcpKeepAlive): void => {
  current = setupOf(ka)
}

/** The settings now; a new object after each setTcpKeepAlive, so a holder can tell when to rebuild its options. */
export const tcpKeepAlive = (): KeepAliveSetup => current
