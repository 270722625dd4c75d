// The answers of a control-plane lookup the proxy makes on a client's behalf (a PostgreSQL role's secret, a MySQL
// user's hash), per key: each kept for seconds chosen by the answer (found: ttl; none: negativeTtl), a failure never
// kept; concurrent lookups of one key share one (single flight); at most `maxEntries`, the oldest forgotten first.
// Promises, for the pooling code that awaits them (the routing cache's TtlCache is its Effect counterpart).

interface Entry<A> {
  /** Set while the lookup runs: concurrent callers wait for it instead of starting their own. */
  pending: Promise<A | undefined> | undefined
  answer: A | undefined
  /** Date.now() after which the key is looked up again. */
  expires: number
}

export class LookupCache<A> {
  readonly #maxEntries: number
  readonly #entries = new Map<string, Entry<A>>()
  #hits = 0
  #failures = 0

  constructor(maxEntries: number) {
    this.#maxEntries = maxEntries
  }

  /**
   * The answer for `key`: from memory while fresh (or while its lookup runs), else from `load`, kept for
   * `ttlOf(answer)` seconds (0: handed to the callers that waited for it, then forgotten). A rejection reaches every
   * caller that waited, and the next caller loads again.
   */
  get(
    key: string,
    load: () => Promise<A | undefined>,
    ttlOf: (answer: A | undefined) => number
  ): Promise<A | undefined> {
    const known = this.#entries.get(key)
    if (known !== undefined) {
      if (known.pending !== undefined) {
        this.#hits++
        return known.pending
      }
      if (known.expires > Date.now()) {
        this.#hits++
        return Promise.resolve(known.answer)
      }
      this.#entries.delete(key)
    }
    const entry: Entry<A> = { pending: undefined, answer: undefined, expires: 0 }
    entry.pending = load().then(
      (answer) => {
        entry.pending = undefined
        entry.answer = answer
        const ttl = ttlOf(answer)
        entry.expires = Date.now() + ttl * 1000
        if (ttl === 0 && this.#entries.get(key) === entry) this.#entries.delete(key)
        return answer
      },
      (error: unknown) => {
        if (this.#entries.get(key) === entry) this.#entries.delete(key)
        this.#failures++
        throw error
      }
    )
    if (this.#entries.size >= this.#maxEntries) {
      // Insertion order: the first key is the oldest lookup.
      const oldest = this.#entries.keys().next()
      if (!oldest.done) this.#entries.delete(oldest.value)
    }
    this.#entries.set(key, entry)
    return entry.pending
  }

  /** Callers answered from memory, including those that joined a lookup under way. */
  get hits(): number {
    return this.#hits
  }

  get failures(): number {
    return this.#failures
  }

  /** Keys held, stale ones included until they are asked for again. */
  get size(): number {
    return this.#entries.size
  }

  clear(): void {
    this.#entries.clear()
  }
}
