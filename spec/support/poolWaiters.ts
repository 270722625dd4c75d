// Pool specs' clients: a waiter per acquire as a Promise of its connection or refusal, the connections held until the
// spec gives them back (destroyed after the test otherwise), for any protocol's pool (src/listeners/pool/serverPool.ts).
import type * as net from "node:net"
import type { ProxyError } from "../../src/domain/ProxyError.ts"
import type { Waiter } from "../../src/listeners/pool/serverPool.ts"

export interface Ask<C> extends Promise<{ readonly conn?: C; readonly error?: ProxyError }> {
  readonly cancel: () => void
  readonly settled: () => boolean
}

interface Pool<C> {
  acquire(waiter: Waiter<C>): () => void
  release(conn: C): void
}

export const poolWaiters = <C extends { readonly socket: net.Socket }>() => {
  const held: Array<C> = []
  const asked: Array<Ask<C>> = []

  /** One waiter's acquire; `order` gets `id` when it is granted. */
  const ask = (pool: Pool<C>, order?: Array<number>, id = 0): Ask<C> => {
    let done = false
    let settle!: (o: { conn?: C; error?: ProxyError }) => void
    const result = new Promise<{ conn?: C; error?: ProxyError }>((r) => {
      settle = r
    })
    const cancel = pool.acquire({
      granted: (conn) => {
        done = true
        held.push(conn)
        order?.push(id)
        settle({ conn })
      },
      failed: (error) => {
        done = true
        settle({ error })
      }
    })
    const a = Object.assign(result, { cancel, settled: () => done })
    asked.push(a)
    return a
  }

  const granted = async (a: Ask<C>): Promise<C> => {
    const o = await a
    if (o.conn === undefined) throw new Error(`expected a connection, got ${o.error?.message}`)
    return o.conn
  }

  const refused = async (a: Ask<C>): Promise<ProxyError> => {
    const o = await a
    if (o.error === undefined) throw new Error("expected a refusal, got a connection")
    return o.error
  }

  /** Gives a held connection back to its pool, as a session does. */
  const giveBack = (pool: Pool<C>, conn: C) => {
    held.splice(held.indexOf(conn), 1)
    pool.release(conn)
  }

  /** After a test: waiters cancelled first (a connection destroyed would otherwise be replaced for them), then held ones destroyed. */
  const cleanup = () => {
    for (const a of asked.splice(0)) a.cancel()
    for (const conn of held.splice(0)) conn.socket.destroy()
  }

  return { ask, granted, refused, giveBack, cleanup }
}
