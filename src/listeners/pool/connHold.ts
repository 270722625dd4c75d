// A cancel request's claim on the pooled server connection it was routed to (ServerPool `hold`), PgBouncer's
// being_canceled (>= 1.18): the query it aims at may end before the request reaches the server, and the connection,
// given back meanwhile, must not serve another client's query until the request is over, or that query could be
// cancelled instead. The claim ends when its sender says so (`done`: the request's own connection to the server
// closed, which the server does only after it signalled the backend; or the request was refused), and in any case
// after `cancelHoldMs`, so a lost word never keeps a connection out of service for long. A request whose claim lapsed
// is not sent any more (`expired`): it would now be aimed at whoever holds the connection.

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
