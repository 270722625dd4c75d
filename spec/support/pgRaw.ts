// A PostgreSQL session on a raw socket, for specs that send what no client library sends (several Queries in one
// write, or a write timed against the server's reply) and read every message that comes back. The login is the load
// harness's (load/pgLogin.ts: SCRAM, md5 or cleartext, then SELECT 1).
import * as net from "node:net"
import { type LoginStep, PgLogin, type PgRole } from "../../load/pgLogin.ts"
import { encodeStartup } from "../../src/codec/pg/StartupPacket.ts"

/** An ErrorResponse or NoticeResponse field's value. */
const field = (body: Buffer, code: string): string | undefined => {
  for (let i = 0; i < body.length && body[i] !== 0; ) {
    const end = body.indexOf(0, i + 1)
    if (end < 0) return undefined
    if (body[i] === code.charCodeAt(0)) return body.toString("utf8", i + 1, end)
    i = end + 1
  }
  return undefined
}

/**
 * A message as the specs compare it: its type; CommandComplete with its tag, ReadyForQuery with its status, an error
 * or notice with its SQLSTATE and cursor position.
 */
export const rawLabel = (frame: Buffer): string => {
  const type = String.fromCharCode(frame[0]!)
  const body = frame.subarray(5)
  if (type === "C") return `C ${body.toString("utf8", 0, body.length - 1)}`
  if (type === "Z") return `Z ${String.fromCharCode(body[0]!)}`
  if (type === "E" || type === "N") {
    const position = field(body, "P")
    return `${type} ${field(body, "C")}${position === undefined ? "" : ` at ${position}`}`
  }
  return type
}

export interface RawSession {
  write(bytes: Buffer): void
  /** The labels of the messages read from now on, up to and with the `count`th ReadyForQuery. */
  untilReady(count: number): Promise<ReadonlyArray<string>>
  close(): void
}

export const rawSession = (port: number, role: PgRole, database: string): Promise<RawSession> =>
  new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1")
    const login = new PgLogin(role, (bytes) => socket.write(bytes))
    let loggedIn = false
    let pending = Buffer.alloc(0)
    const labels: Array<string> = []
    let wanted: { count: number; done: (labels: ReadonlyArray<string>) => void } | undefined
    const settle = () => {
      if (wanted === undefined) return
      let seen = 0
      const end = labels.findIndex((l) => l.startsWith("Z") && ++seen === wanted!.count)
      if (end < 0) return
      const done = wanted.done
      wanted = undefined
      done(labels.splice(0, end + 1))
    }
    socket.on("connect", () => socket.write(encodeStartup({ user: role.user, database })))
    socket.on("error", reject)
    socket.on("data", (chunk: Buffer) => {
      if (!loggedIn) {
        const step: LoginStep = login.feed(chunk)
        if ("error" in step) reject(new Error(step.error))
        else if (step.done) {
          loggedIn = true
          resolve({
            write: (bytes) => socket.write(bytes),
            untilReady: (count) =>
              new Promise((done) => {
                wanted = { count, done }
                settle()
              }),
            close: () => socket.destroy()
          })
        }
        return
      }
      pending = Buffer.concat([pending, chunk])
      while (pending.length >= 5 && pending.length >= 1 + pending.readInt32BE(1)) {
        const frame = pending.subarray(0, 1 + pending.readInt32BE(1))
        pending = pending.subarray(frame.length)
        labels.push(rawLabel(frame))
      }
      settle()
    })
  })
