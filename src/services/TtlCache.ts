// A cache of looked-up answers: each kept for a time chosen by its outcome, at most `maxEntries` of them (the least
// recently used leave first), each looked up once however many callers ask while its lookup runs (single-flight).
// A plain Map in insertion order (a hit moves its key to the end): the synchronous reads `answerNow` and `touch`
// are O(1) and allocate nothing, for callers with no fiber (the tcp listener's fast path).
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"

interface Entry<A, E> {
  /** Clock milliseconds from which the entry is stale; +Infinity while its lookup runs. */
  expiresAt: number
  /** The answer once the lookup is over. An Exit is an Effect: a hit hands it out as it is. */
  exit: Exit.Exit<A, E> | undefined
  /** What the callers wait on while the lookup runs. */
  readonly done: Deferred.Deferred<A, E>
}

export interface TtlCacheOptions<A, E> {
  readonly maxEntries: number
  /** Milliseconds an answer is kept; 0 or less: handed to the callers that waited for it, then forgotten. */
  readonly ttlMs: (exit: Exit.Exit<A, E>) => number
  /** The current time in milliseconds (the Clock's, so that specs can move it). */
  readonly now: () => number
  /**
   * Starts a lookup in the background, synchronously (a FiberSet's runtime: interrupted when the owner's scope
   * closes). A lookup outlives the callers that wait for it: the answer serves the next ones.
   */
  readonly run: (lookup: Effect.Effect<void>) => unknown
}

export class TtlCache<K, A, E> {
  private readonly entries = new Map<K, Entry<A, E>>()
  private readonly options: TtlCacheOptions<A, E>

  constructor(options: TtlCacheOptions<A, E>) {
    this.options = options
  }

  /** Entries held, stale ones included until they are asked for again or evicted. */
  get size(): number {
    return this.entries.size
  }

  /** The answer of a fresh entry (awaited while its lookup runs), made the most recently used; else undefined. */
  cached(key: K): Effect.Effect<A, E> | undefined {
    const entry = this.fresh(key)
    if (entry === undefined) return undefined
    this.moveToEnd(key, entry)
    return entry.exit ?? Deferred.await(entry.done)
  }

  /**
   * Starts looking `key` up (a stale entry is replaced) and answers when the lookup does: every caller that asks
   * meanwhile gets the same answer through `cached`.
   */
  lookup(key: K, lookup: Effect.Effect<A, E>): Effect.Effect<A, E> {
    const entry: Entry<A, E> = { expiresAt: Number.POSITIVE_INFINITY, exit: undefined, done: Deferred.makeUnsafe() }
    this.entries.delete(key)
    this.entries.set(key, entry)
    while (this.entries.size > this.options.maxEntries) {
      // Insertion order: the first key is the least recently used.
      this.entries.delete(this.entries.keys().next().value as K)
    }
    this.options.run(Effect.ignore(Effect.onExit(lookup, (exit) => Effect.sync(() => this.settle(key, entry, exit)))))
    // The lookup may have ended already (an answer at hand needs no fiber switch).
    return entry.exit ?? Deferred.await(entry.done)
  }

  /** The successful answer of a fresh entry whose lookup is over, else undefined; changes nothing. */
  answerNow(key: K): A | undefined {
    const entry = this.fresh(key)
    const exit = entry?.exit
    return exit !== undefined && Exit.isSuccess(exit) ? exit.value : undefined
  }

  /** Makes `key` the most recently used, if it is held. */
  touch(key: K): void {
    const entry = this.entries.get(key)
    if (entry !== undefined) this.moveToEnd(key, entry)
  }

  /** Forgets `key`: the next caller looks it up again (a running lookup still answers the callers waiting on it). */
  delete(key: K): void {
    this.entries.delete(key)
  }

  clear(): void {
    this.entries.clear()
  }

  private fresh(key: K): Entry<A, E> | undefined {
    const entry = this.entries.get(key)
    return entry !== undefined && this.options.now() < entry.expiresAt ? entry : undefined
  }

  private moveToEnd(key: K, entry: Entry<A, E>): void {
    this.entries.delete(key)
    this.entries.set(key, entry)
  }

  private settle(key: K, entry: Entry<A, E>, exit: Exit.Exit<A, E>): void {
    entry.exit = exit
    // An entry purged or evicted meanwhile stays out: its answer goes to its waiters only.
    if (this.entries.get(key) === entry) {
      const ttl = this.options.ttlMs(exit)
      if (ttl > 0) entry.expiresAt = this.options.now() + ttl
      else this.entries.delete(key)
    }
    Deferred.doneUnsafe(entry.done, exit)
  }
}
