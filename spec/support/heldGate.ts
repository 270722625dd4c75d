// What the specs' holding forwarders share (pgCancelGate.ts, mysqlKillGate.ts): a gate that is open or shut, the
// sends waiting behind it, the forwarder's sockets, and the controls a spec drives it with.
import type * as net from "node:net"

export interface HeldGate {
  readonly port: number
  /** Sends waiting at the shut gate. */
  readonly held: () => number
  /** From now on what the forwarder holds back waits. */
  shut(): void
  /** Passes on those waiting, and those to come. */
  open(): void
  close(): Promise<void>
}

export class GateState {
  shut = false
  waiting: Array<() => void> = []
  readonly sockets = new Set<net.Socket>()

  /** Runs `send` now, or once the gate opens. */
  pass(send: () => void): void {
    if (this.shut) this.waiting.push(send)
    else send()
  }

  /** Listens on a free loopback port; the spec's controls. */
  async listen(server: net.Server): Promise<HeldGate> {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    return {
      port: (server.address() as net.AddressInfo).port,
      held: () => this.waiting.length,
      shut: () => {
        this.shut = true
      },
      open: () => {
        this.shut = false
        const now = this.waiting
        this.waiting = []
        for (const send of now) send()
      },
      close: () => {
        for (const s of this.sockets) s.destroy()
        return new Promise((resolve) => server.close(() => resolve()))
      }
    }
  }
}
