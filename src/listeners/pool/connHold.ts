// A cancel request's claim on the pooled server connection it was routed to (ServerPool `hold`), PgBouncer's
// being_canceled (>= 1.18): the query it aims at may end before the request reaches the server, and the connection,
// given back meanwhile, must not serve another client's query until the request is over, or that query could be
// cancelled instead. The claim ends when its sender says so (`done`: the request's own connection to the server
// closed, which the server does only after it signalled the backend; or the request was refused), and in any case
// after `cancelHoldMs`, so a lost word never keeps a connection out of service for long. A request whose claim lapsed
// is not sent any more (`expired`): it would now be aimed at whoever holds the connection. With several workers the
// claim is taken by the worker whose client holds the connection and lent, by number, to the worker that sends the
// request (`LentClaims`, `LentTicket`), which quotes that number back through the primary when the request is over.
// PostgreSQL's cancel requests (postgres/pool/pooledKeys.ts) and MySQL's KILL of a pooled client (mysql/killClaim.ts)
// use it.
import { randomInt } from "node:crypto"

/** How long a claim lasts at most. The request normally ends within a round trip to the server. */
export const cancelHoldMs = 10_000

/** What sends a cancel request checks and tells. */
export interface CancelTicket {
  /** The claim has ended: the request must not be sent any more. */
  expired(): boolean
  /** The request is over (its connection to the server closed, or it was refused): the claim ends. Idempotent. */
  done(): void
}

/** What a claim needs of its pool (ServerPool). */
export interface Holding<C> {
  hold(conn: C): void
  unhold(conn: C): void
}

function lapse(hold: ConnHold<unknown>) {
  hold.done()
}

export class ConnHold<C> implements CancelTicket {
  /** Told once when the claim ends, whichever way (the cluster's table of claims lent to other workers). */
  ended: (() => void) | undefined = undefined
  private readonly pool: Holding<C>
  private readonly conn: C
  private timer: NodeJS.Timeout | undefined

  /** Takes the claim at once, for at most `ms`. */
  constructor(pool: Holding<C>, conn: C, ms = cancelHoldMs) {
    this.pool = pool
    this.conn = conn
    pool.hold(conn)
    this.timer = setTimeout(lapse, ms, this)
    this.timer.unref()
  }

  expired(): boolean {
    return this.timer === undefined
  }

  done(): void {
    if (this.timer === undefined) return
    clearTimeout(this.timer)
    this.timer = undefined
    this.pool.unhold(this.conn)
    this.ended?.()
  }
}

/** Claims lent to other workers' requests, by number; a random start, so a restarted worker's numbers differ. */
export class LentClaims {
  private readonly lent = new Map<number, ConnHold<unknown>>()
  private last = randomInt(0x7fffffff)

  /** The number the borrowing worker quotes back (`done`); the entry goes when the claim ends, whichever way. */
  lend(claim: ConnHold<unknown>): number {
    const hold = (this.last = (this.last + 1) & 0x7fffffff)
    const lent = this.lent
    lent.set(hold, claim)
    const before = claim.ended
    claim.ended = () => {
      lent.delete(hold)
      before?.()
    }
    return hold
  }

  /** The borrower's request is over (or never came: the claim lapses by itself). */
  done(hold: number): void {
    this.lent.get(hold)?.done()
  }
}

/**
 * The claim another worker took for a request this one sends: it ends there on `done` (`tell`, through the primary,
 * to the worker that `key` names), or by itself after cancelHoldMs from before it was lent; the request is not sent
 * past half that from its arrival here, well within.
 */
export class LentTicket<K> implements CancelTicket {
  private readonly tell: (key: K, hold: number) => void
  private readonly key: K
  private readonly hold: number
  private readonly until = performance.now() + cancelHoldMs / 2
  private over = false
  constructor(tell: (key: K, hold: number) => void, key: K, hold: number) {
    this.tell = tell
    this.key = key
    this.hold = hold
  }
  expired(): boolean {
    return this.over || performance.now() > this.until
  }
  done(): void {
    if (this.over) return
    this.over = true
    this.tell(this.key, this.hold)
  }
}
