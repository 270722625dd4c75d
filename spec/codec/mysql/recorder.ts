// A raw MySQL client that records a real server's responses byte for byte, with capabilities of the spec's choosing
// (mysql2 never asks for CLIENT_DEPRECATE_EOF or MariaDB's metadata cache). Where each response ends is found
// without reading its content: after the command it sends two COM_PINGs; each response numbers its packets from 1
// (wrapping 255 → 0 → 1), so a packet with sequence id 1 that does not follow one with id 0 opens the next response.
import * as net from "node:net"
import {
  AuthPlugin,
  Capability,
  decodeHandshakeV10,
  encodeHandshakeResponse41,
  encodePacket,
  MAX_PACKET_PAYLOAD,
  UTF8MB4_GENERAL_CI
} from "../../../src/codec/mysql/index.ts"
import { nativeToken } from "../../support/mysql.ts"

export interface RecorderOptions {
  readonly port: number
  readonly user: string
  readonly password: string
  readonly database: string
  readonly capabilities: number
  readonly mariadbCapabilities?: number
}

/** A recorded exchange: the server's bytes for the command (`response`), and the client's in its turn, if any. */
export interface Recorded {
  readonly response: Buffer
  /** Where the client's turn began in `response` (after a LOCAL INFILE request, an auth switch), if it had one. */
  readonly infileAt?: number
  /** What the client sent in its turn (file packets and the empty one, an auth answer), framed. */
  readonly file?: Buffer
}

export const baseFlags =
  (Capability.LONG_FLAG |
    Capability.CONNECT_WITH_DB |
    Capability.LOCAL_FILES |
    Capability.PROTOCOL_41 |
    Capability.TRANSACTIONS |
    Capability.SECURE_CONNECTION |
    Capability.MULTI_STATEMENTS |
    Capability.MULTI_RESULTS |
    Capability.PS_MULTI_RESULTS |
    Capability.PLUGIN_AUTH) >>>
  0

/** Two COM_PINGs: the two responses after the command's that mark where it ends. */
const PINGS = Buffer.concat([encodePacket(Buffer.from([0x0e]), 0), encodePacket(Buffer.from([0x0e]), 0)])

interface Wire {
  readonly seq: number
  readonly start: number
  readonly end: number
  readonly first: number
}

export class Recorder {
  // Received bytes in a buffer that doubles as it fills: a 16 MiB response arrives in hundreds of chunks.
  private store = Buffer.alloc(1 << 16)
  private from = 0
  private to = 0
  private wake: (() => void) | undefined
  private closed = false
  private readonly socket: net.Socket
  /** The greeting's nonce (COM_CHANGE_USER answers with it). */
  nonce: Buffer = Buffer.alloc(0)

  private constructor(socket: net.Socket) {
    this.socket = socket
    socket.on("data", (d: Buffer) => {
      if (this.to + d.length > this.store.length) {
        const grown = Buffer.alloc(Math.max(2 * (this.to - this.from + d.length), 1 << 16))
        this.store.copy(grown, 0, this.from, this.to)
        this.store = grown
        this.to -= this.from
        this.from = 0
      }
      d.copy(this.store, this.to)
      this.to += d.length
      this.wake?.()
    })
    socket.on("close", () => {
      this.closed = true
      this.wake?.()
    })
    socket.on("error", () => {})
  }

  static async open(o: RecorderOptions): Promise<Recorder> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(o.port, "127.0.0.1", () => resolve(s))
      s.once("error", reject)
    })
    const r = new Recorder(socket)
    const greeting = decodeHandshakeV10(await r.take(1))
    if (greeting._tag !== "Frame") throw new Error("no greeting")
    r.nonce = greeting.value.message.authPluginData.subarray(0, 20)
    const login = encodeHandshakeResponse41({
      capabilities: o.capabilities,
      maxPacketSize: 1 << 30,
      characterSet: UTF8MB4_GENERAL_CI,
      user: o.user,
      authResponse: nativeToken(o.password, r.nonce),
      database: o.database,
      authPlugin: AuthPlugin.NATIVE,
      mariadbCapabilities: o.mariadbCapabilities
    })
    socket.write(encodePacket(login, 1))
    let answer = await r.take(1)
    if (answer[4] === 0xfe) {
      // An auth switch to mysql_native_password with a new nonce: plugin name, NUL, nonce.
      const payload = answer.subarray(4)
      const nonce = payload.subarray(payload.indexOf(0) + 1, payload.indexOf(0) + 21)
      socket.write(encodePacket(nativeToken(o.password, nonce), answer[3]! + 1))
      answer = await r.take(1)
    }
    if (answer[4] !== 0x00) throw new Error(`login refused: ${answer.subarray(4).toString("latin1")}`)
    return r
  }

  /** Sends `command`, pings twice, and returns the server's bytes for the command alone (`none`: it has none). */
  async record(command: Buffer, none = false): Promise<Recorded> {
    this.socket.write(Buffer.concat([encodePacket(command, 0), PINGS]))
    return { response: await this.untilPings(none) }
  }

  /** LOAD DATA LOCAL INFILE: waits for the request, sends `file` then an empty packet, then pings. */
  recordInfile(command: Buffer, file: Buffer): Promise<Recorded> {
    return this.recordTurn(command, 0xfb, () =>
      Buffer.concat([
        encodePacket(file, 2),
        encodePacket(Buffer.alloc(0), 3 + Math.floor(file.length / MAX_PACKET_PAYLOAD))
      ])
    )
  }

  /** COM_CHANGE_USER answered with `password`: through the server's auth switch (plugin, NUL, nonce) if it sends one. */
  recordChangeUser(command: Buffer, password: string): Promise<Recorded> {
    return this.recordTurn(command, 0xfe, (first) => {
      const payload = first.subarray(4)
      const nonce = payload.subarray(payload.indexOf(0) + 1, payload.indexOf(0) + 21)
      return encodePacket(nativeToken(password, nonce), first[3]! + 1)
    })
  }

  /**
   * Sends `command`; when the server's first packet starts with `marker`, the client's turn: sends what `answer`
   * makes of that packet, then pings. Otherwise the response is recorded as any other.
   */
  private async recordTurn(command: Buffer, marker: number, answer: (first: Buffer) => Buffer): Promise<Recorded> {
    this.socket.write(encodePacket(command, 0))
    const first = await this.take(1)
    if (first[4] !== marker) {
      this.from -= first.length
      this.socket.write(PINGS)
      return { response: await this.untilPings() }
    }
    const sent = answer(first)
    this.socket.write(Buffer.concat([sent, PINGS]))
    return { response: Buffer.concat([first, await this.untilPings()]), infileAt: first.length, file: sent }
  }

  private get buf(): Buffer {
    return this.store.subarray(this.from, this.to)
  }

  /** Drops the first `n` bytes. */
  private consume(n: number): void {
    this.from += n
  }

  close(): void {
    this.socket.destroy()
  }

  private async more(): Promise<void> {
    if (this.closed) throw new Error(`connection closed with ${this.buf.length} bytes unread`)
    await new Promise<void>((r) => (this.wake = r))
  }

  /** The next `count` whole packets, raw. */
  private async take(count: number): Promise<Buffer> {
    for (;;) {
      const packets = this.wires()
      if (packets.length >= count) {
        const end = packets[count - 1]!.end
        const out = Buffer.from(this.buf.subarray(0, end))
        this.consume(end)
        return out
      }
      await this.more()
    }
  }

  /** The wire packets whole in the buffer. */
  private wires(): Wire[] {
    const out: Wire[] = []
    let at = 0
    const buf = this.buf
    while (at + 4 <= buf.length) {
      const length = buf.readUIntLE(at, 3)
      if (at + 4 + length > buf.length) break
      out.push({ seq: buf[at + 3]!, start: at, end: at + 4 + length, first: length > 0 ? buf[at + 4]! : -1 })
      at += 4 + length
    }
    return out
  }

  /** Everything up to the first of the two pings' OKs (which are then dropped). */
  private async untilPings(none = false): Promise<Buffer> {
    for (;;) {
      const packets = this.wires()
      const starts: number[] = none ? [0] : []
      for (let i = 1; i < packets.length; i++) {
        if (packets[i]!.seq === 1 && packets[i - 1]!.seq !== 0) starts.push(i)
      }
      if (starts.length >= 2) {
        const [ping1, ping2] = [starts[0]!, starts[1]!]
        if (packets.length !== ping2 + 1 || !this.isPingOk(packets[ping1]!) || !this.isPingOk(packets[ping2]!)) {
          throw new Error(`expected the pings' OKs to end the stream: ${this.buf.toString("hex").slice(-200)}`)
        }
        const response = Buffer.from(this.buf.subarray(0, packets[ping1]!.start))
        this.consume(packets[ping2]!.end)
        return response
      }
      await this.more()
    }
  }

  private isPingOk(w: Wire): boolean {
    return w.first === 0x00 && w.seq === 1 && w.end - w.start >= 11
  }
}

/** The wire payloads of framed bytes (continuation parts separate, as the session sees them). */
export const wirePayloads = (bytes: Buffer): Buffer[] => {
  const out: Buffer[] = []
  let at = 0
  while (at < bytes.length) {
    const length = bytes.readUIntLE(at, 3)
    out.push(bytes.subarray(at + 4, at + 4 + length))
    at += 4 + length
  }
  return out
}
