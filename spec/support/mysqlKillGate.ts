// A TCP forwarder in front of a spec's MariaDB that can hold back KILL statements: every connection's bytes pass as
// they come, except that, while the gate is shut, a COM_QUERY whose text starts with KILL waits, unsent, with all
// that follows it on its connection, until `open`. So a spec can make a KILL that the proxy translated reach the
// server at a moment of its choosing (after the query it was meant for has ended), whatever the scheduler does.
import * as net from "node:net"
import type { MariaDbServer } from "./backends/index.ts"
import { GateState, type HeldGate } from "./heldGate.ts"

/** Holds KILL statements while shut (`held` counts them). */
export type KillGate = HeldGate

/** The offset of a KILL command packet among the whole packets at the start of `chunk`, or -1. */
const killAt = (chunk: Buffer): number => {
  let pos = 0
  while (pos + 5 <= chunk.length) {
    const length = chunk.readUIntLE(pos, 3)
    const isQuery = chunk[pos + 3] === 0 && chunk[pos + 4] === 0x03
    const text = chunk.toString("latin1", pos + 5, Math.min(chunk.length, pos + 4 + length))
    if (isQuery && /^\s*kill\b/i.test(text)) return pos
    pos += 4 + length
  }
  return -1
}

export const startKillGate = async (db: MariaDbServer): Promise<KillGate> => {
  const gate = new GateState()
  const sockets = gate.sockets
  const server = net.createServer((inbound) => {
    const out = net.connect(db.port, db.host)
    for (const s of [inbound, out]) {
      sockets.add(s)
      s.on("error", () => {})
      s.on("close", () => {
        sockets.delete(s)
        inbound.destroy()
        out.destroy()
      })
    }
    out.pipe(inbound)
    // Held bytes of this connection, in order; undefined: none held.
    let held: Array<Buffer> | undefined
    inbound.on("data", (chunk: Buffer) => {
      if (held !== undefined) {
        held.push(chunk)
        return
      }
      const at = gate.shut ? killAt(chunk) : -1
      if (at < 0) {
        out.write(chunk)
        return
      }
      out.write(chunk.subarray(0, at))
      const mine: Array<Buffer> = [chunk.subarray(at)]
      held = mine
      gate.pass(() => {
        held = undefined
        for (const b of mine) out.write(b)
      })
    })
  })
  return gate.listen(server)
}
