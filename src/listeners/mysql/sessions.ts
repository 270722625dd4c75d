// The mysql listener's connection ids and what each stands for. A client learns its connection id from the greeting,
// which the proxy sends before any backend exists, so the id is the proxy's own; `KILL <id>` from another connection
// is translated through this table to the backend session it stands for (killTap.ts). With several worker processes
// a KILL often lands on another worker than its target: `shared` mirrors the table in the primary process, as
// CancelKeys does for Postgres. A pooled client's record is not mirrored (its backend id changes with each
// transaction): its id names the worker that greeted it (`proxyIdOwner`), which the primary asks at KILL time
// (killTap.ts `killAskedElsewhere`), as it asks for a pooled Postgres client's cancel.
import { randomInt } from "node:crypto"
import { type CancelTicket, type ConnHold, LentTicket } from "../pool/connHold.ts"

/** What a KILL needs to know of its target session. */
export interface MysqlSessionRecord {
  /**
   * The backend's own connection id (its greeting's, = CONNECTION_ID() there); 0 while a pooled client holds no
   * server connection (between transactions: there is no query to kill).
   */
  readonly backendId: number
  /** The backend's vetted address: a KILL goes to the same server. */
  readonly ip: string
  readonly port: number
  /** The user of the login (a later COM_CHANGE_USER is not followed; the backend checks KILL rights itself too). */
  readonly user: string
  /** A pooled client's session: KILL CONNECTION of it while it holds no server connection closes it. */
  readonly killed?: (() => void) | undefined
  /**
   * A pooled client's session: a claim on the server connection it holds now (the one `backendId` names), which then
   * serves nobody else until the KILL sent to it has been answered (killClaim.ts); `connection`: a KILL CONNECTION,
   * after which it is closed.
   */
  readonly claimServer?: ((connection: boolean) => ConnHold<unknown> | undefined) | undefined
  /** Another worker's pooled client, as that worker answered: the number of the claim it lent (killClaim.ts). */
  readonly lentHold?: number | undefined
}

/** Who issues a KILL (its own server and user: what it may end), and whether it ends a connection or a query. */
export interface KillIssuer {
  readonly ip: string
  readonly port: number
  readonly user: string
  /** KILL [CONNECTION], COM_PROCESS_KILL; false: KILL QUERY. */
  readonly connection: boolean
  /** It tells when its KILL has been answered (a pooled client): a pooled target's connection is claimed till then. */
  readonly claims?: boolean | undefined
}

/** A table every worker can reach (the cluster primary's). */
export interface SharedMysqlSessions {
  readonly add: (proxyId: number, record: MysqlSessionRecord) => void
  readonly remove: (proxyId: number) => void
  /** A mirrored record, else what the worker that greeted `proxyId` answers for a pooled client of its own. */
  readonly lookup: (proxyId: number, issuer: KillIssuer) => Promise<MysqlSessionRecord | undefined>
  /** A KILL of `proxyId` sent with a lent claim (`hold`) was answered: the worker that lent it ends it. */
  readonly done?: ((proxyId: number, hold: number) => void) | undefined
}

/** This process's share of the id space: ids ≡ index (mod count), so no two workers hand out the same. */
export interface IdSlot {
  readonly index: number
  readonly count: number
}

/**
 * Proxy ids live in [2^30, 2^31): far above the ids a backend hands out in its first billion connections, so a KILL
 * that bypasses the proxy's translation (a prepared statement, an expression) names no bystander; and below 2^31,
 * so clients that keep the id in a signed 32-bit integer (Connector/NET, JDBC) still see it positive.
 */
export const firstProxyId = 0x40000000
const proxyIdSpan = 0x40000000

export const isProxyId = (id: number): boolean => id >= firstProxyId && id < firstProxyId + proxyIdSpan

/** The index of the worker, of `count`, that hands out proxy id `id` (see IdSlot). */
export const proxyIdOwner = (id: number, count: number): number => (id - firstProxyId) % count

export class MysqlSessions {
  private readonly table = new Map<number, MysqlSessionRecord>()
  private readonly shared: SharedMysqlSessions | undefined
  private readonly index: number
  private readonly count: number
  /** How many ids this slot owns, and the next one's rank among them. */
  private readonly owned: number
  private rank: number

  constructor(shared?: SharedMysqlSessions, slot: IdSlot = { index: 0, count: 1 }) {
    this.shared = shared
    this.count = Math.max(1, slot.count)
    this.index = slot.index % this.count
    this.owned = Math.floor((proxyIdSpan - 1 - this.index) / this.count) + 1
    // A random start per process: an id a client kept from before a restart is unlikely to name a new session.
    this.rank = randomInt(this.owned)
  }

  /** The id for a new connection's greeting: the slot's next one, skipping ids still in use after a wrap. */
  nextId(): number {
    for (;;) {
      const id = firstProxyId + this.index + this.count * this.rank
      this.rank = this.rank + 1 === this.owned ? 0 : this.rank + 1
      if (!this.table.has(id)) return id
    }
  }

  /**
   * `mirrored` false: this process's table only (a pooled session, whose backend id changes with each transaction:
   * a KILL of it from another worker finds no such thread).
   */
  add(proxyId: number, session: MysqlSessionRecord, mirrored = true): void {
    this.table.set(proxyId, session)
    if (mirrored && this.shared !== undefined) {
      const { backendId, ip, port, user } = session
      this.shared.add(proxyId, { backendId, ip, port, user })
    }
  }

  /** `mirrored`: as it was added. */
  remove(proxyId: number, mirrored = true): void {
    if (this.table.delete(proxyId) && mirrored) this.shared?.remove(proxyId)
  }

  /**
   * This process's session of that id, else (in a cluster) a promise of any worker's, else undefined. `issuer`: who
   * KILLs it, for the worker of a pooled client (killTap.ts `killAskedElsewhere`).
   */
  find(proxyId: number, issuer: KillIssuer): MysqlSessionRecord | Promise<MysqlSessionRecord | undefined> | undefined {
    return this.table.get(proxyId) ?? this.shared?.lookup(proxyId, issuer)
  }

  /** The claim another worker lent (`hold`) for a KILL of its client `proxyId` that this process sends. */
  lentTicket(proxyId: number, hold: number): CancelTicket | undefined {
    const done = this.shared?.done
    return done === undefined ? undefined : new LentTicket(done, proxyId, hold)
  }

  /** This process's session of that id, mirrored or not. */
  mine(proxyId: number): MysqlSessionRecord | undefined {
    return this.table.get(proxyId)
  }

  get size(): number {
    return this.table.size
  }
}
