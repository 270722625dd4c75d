// MySQL clients for specs: mysql2's options for a MariaDB started by spec/support/backends, and a client that speaks
// the protocol by hand, for specs that check bytes and sequence ids the real clients hide (reads packet after packet
// with the codec, logs in with mysql_native_password through the proxy's auth switch).
import { createHash } from "node:crypto"
import * as net from "node:net"
import type mysql from "mysql2/promise"
import {
  AuthPlugin,
  Capability,
  type Decoded,
  decodeAuthSwitchRequest,
  decodeHandshakeV10,
  decodeOkPacket,
  encodeHandshakeResponse41,
  encodePacket,
  type HandshakeV10,
  UTF8MB4_GENERAL_CI
} from "../../src/codec/mysql/index.ts"
import type { MariaDbServer } from "./backends/index.ts"

/** mysql2 options for `server`'s app user on appdb, straight to the server; `extra` wins. */
export const mariadbOptions = (
  server: MariaDbServer,
  extra: mysql.ConnectionOptions = {}
): mysql.ConnectionOptions => ({
  host: "127.0.0.1",
  port: server.port,
  user: server.user,
  password: server.password,
  database: "appdb",
  ...extra
})

/**
 * Which worker of `workers: 2` greeted a session through the proxy: worker i hands out the connection ids ≡ i (mod 2)
 * above 2^30 (README "Connection ids and KILL"). One argument, so that `clients.map(workerOf)` reads right.
 */
export const workerOf = (c: mysql.Connection): number => (c.threadId - 2 ** 30) % 2

/** Resolves when the connection's socket has closed (the proxy or the server ended it). */
export const ended = (c: mysql.Connection): Promise<void> =>
  new Promise<void>((resolve) => {
    const core = c as unknown as { connection: { stream: NodeJS.EventEmitter & { destroyed: boolean } } }
    if (core.connection.stream.destroyed) resolve()
    else core.connection.stream.once("close", () => resolve())
  })

export class RawClient {
  private buf = Buffer.alloc(0)
  private waiting: (() => void) | undefined
  closed = false
  readonly socket: net.Socket
  constructor(socket: net.Socket) {
    this.socket = socket
    socket.on("data", (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d])
      this.waiting?.()
    })
    socket.on("close", () => {
      this.closed = true
      this.waiting?.()
    })
    socket.on("error", () => {})
  }
  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, "127.0.0.1", () => resolve(new RawClient(s)))
      s.once("error", reject)
    })
  }
  /** The next packet decoded with `decode`; throws if the connection closes first. */
  async read<A>(decode: (buf: Buffer) => Decoded<A>): Promise<A> {
    for (;;) {
      const d = decode(this.buf)
      if (d._tag === "Frame") {
        this.buf = this.buf.subarray(d.size)
        return d.value
      }
      if (d._tag === "Invalid") throw new Error(`undecodable packet: ${d.reason}: ${this.buf.toString("hex")}`)
      if (this.closed) throw new Error(`connection closed with ${this.buf.length} bytes unread`)
      await new Promise<void>((r) => (this.waiting = r))
    }
  }
  /** Everything the proxy sends until it closes. */
  async rest(): Promise<Buffer> {
    while (!this.closed) await new Promise<void>((r) => (this.waiting = r))
    return this.buf
  }
}

/** mysql_native_password: SHA1(password) XOR SHA1(nonce + SHA1(SHA1(password))). */
export const nativeToken = (password: string, nonce: Buffer): Buffer => {
  const sha1 = (...parts: Buffer[]) => createHash("sha1").update(Buffer.concat(parts)).digest()
  const stage1 = sha1(Buffer.from(password))
  const mix = sha1(nonce, sha1(stage1))
  return Buffer.from(stage1.map((b, i) => b ^ mix[i]!))
}

export const loginFlags =
  (Capability.LONG_PASSWORD |
    Capability.PROTOCOL_41 |
    Capability.SECURE_CONNECTION |
    Capability.PLUGIN_AUTH |
    Capability.CONNECT_WITH_DB |
    Capability.TRANSACTIONS |
    Capability.MULTI_RESULTS) >>>
  0

export const handshakeResponse = (user: string, database: string, authResponse: Buffer = Buffer.alloc(20)) =>
  encodeHandshakeResponse41({
    capabilities: loginFlags,
    maxPacketSize: 1 << 24,
    characterSet: UTF8MB4_GENERAL_CI,
    user,
    authResponse,
    database,
    authPlugin: AuthPlugin.NATIVE
  })

/** A plain-text session logged in through the proxy at `port`, and the greeting it got. */
export const rawLogin = async (
  port: number,
  login: { readonly user: string; readonly password: string; readonly database: string }
): Promise<{ readonly client: RawClient; readonly greeting: HandshakeV10 }> => {
  const client = await RawClient.connect(port)
  const greeting = (await client.read(decodeHandshakeV10)).message
  client.socket.write(encodePacket(handshakeResponse(login.user, login.database), 1))
  const change = await client.read(decodeAuthSwitchRequest)
  client.socket.write(encodePacket(nativeToken(login.password, change.message.data.subarray(0, 20)), 3))
  await client.read(decodeOkPacket)
  return { client, greeting }
}

/** What mysql2 rejects with when the server (or the proxy) answers with an ERR packet. */
export interface MysqlError extends Error {
  readonly errno?: number
  readonly code?: string
  readonly sqlState?: string
  readonly sqlMessage?: string
}

/** The error `p` rejects with; throws if it resolves. */
export const errorOf = async (p: Promise<unknown>): Promise<MysqlError> => {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x as MysqlError
  )
  if (e === undefined) throw new Error("expected an error")
  return e
}
