// A TCP forwarder in front of a spec's PostgreSQL that can hold back cancel requests: every connection is passed on
// as it comes, except one whose first packet is a CancelRequest while the gate is shut; that one waits, unsent, until
// `open`. So a spec can make a cancel reach the server at a moment of its choosing (after the query it was meant for
// has ended), whatever the scheduler does.
import * as net from "node:net"
import type { PostgresServer } from "./backends/index.ts"
import { GateState, type HeldGate } from "./heldGate.ts"

/** CancelRequest: length 16, code 1234.5678 (80877102). */
const isCancelRequest = (first: Buffer) => first.readInt32BE(0) === 16 && first.readInt32BE(4) === 80877102

export interface CancelGate extends HeldGate {
  /** Cancel requests passed on to the server so far. */
  readonly passed: () => number
}

export const startCancelGate = async (db: PostgresServer): Promise<CancelGate> => {
  const gate = new GateState()
  const sockets = gate.sockets
  let passed = 0
  // Half-open allowed: the proxy hears the cancel connection close when the server closes it, not before.
  const server = net.createServer({ allowHalfOpen: true }, (inbound) => {
    sockets.add(inbound)
    inbound.on("close", () => sockets.delete(inbound))
    inbound.on("error", () => {})
    let first = Buffer.alloc(0)
    const forward = () => {
      const out = net.connect(db.port, db.host)
      sockets.add(out)
      out.on("error", () => {})
      // The server's close (after a cancel: once it has signalled the backend) reaches the proxy as it happens.
      out.on("close", () => {
        sockets.delete(out)
        inbound.destroy()
      })
      inbound.on("close", () => out.end())
      out.write(first)
      inbound.pipe(out)
      out.pipe(inbound)
    }
    const onData = (chunk: Buffer) => {
      first = Buffer.concat([first, chunk])
      if (first.length < 8) return
      inbound.off("data", onData)
      inbound.pause()
      if (!isCancelRequest(first)) return forward()
      const send = () => {
        passed++
        forward()
      }
      gate.pass(send)
    }
    inbound.on("data", onData)
  })
  return { ...(await gate.listen(server)), passed: () => passed }
}
