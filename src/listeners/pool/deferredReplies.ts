// The last reply of a pooled transaction (the one after which its server connection went back to the pool) is not
// written amid the reads that produced it: it waits for the end of the event loop's poll phase (setImmediate), and
// every such reply of that pass is written then, one after the other, as Redis writes its replies before it polls
// again. The server connections got their next client's work first (pooledSession.ts `replyUnheld`); a client process
// driving many connections (pgbench's threads, an application's pool) then finds several replies ready per wakeup
// instead of being woken once per reply, and the proxy's writes that wake it come in one burst instead of between the
// reads that feed the pool. pgbench -S c=100 through a pool of 10 (bench/README.md "What each cut bought"): pgbench's
// CPU per transaction ≈ 15–20 % lower, TPS ≈ 1.1×. Nothing waits past the pass: a reply to a lone client goes out as
// soon as its read callback returns. Anything else bound for the same client flushes the queue first (`flushReplies`),
// so its bytes keep their order.

/** A session with a reply waiting here. */
export interface DeferredWriter {
  writeDeferred(reply: Buffer): void
}

/** Writers and their replies, alternating; swapped with `spare` at each flush so neither is reallocated. */
let queue: Array<DeferredWriter | Buffer> = []
let spare: Array<DeferredWriter | Buffer> = []
let scheduled = false

/** Writes every waiting reply, oldest first. */
export const flushReplies = (): void => {
  scheduled = false
  const list = queue
  if (list.length === 0) return
  queue = spare
  for (let i = 0; i < list.length; i += 2) (list[i] as DeferredWriter).writeDeferred(list[i + 1] as Buffer)
  list.length = 0
  spare = list
}

/** `reply` goes to `writer.writeDeferred` at the end of this poll phase (or at the next `flushReplies`). */
export const deferReply = (writer: DeferredWriter, reply: Buffer): void => {
  queue.push(writer, reply)
  if (!scheduled) {
    scheduled = true
    setImmediate(flushReplies)
  }
}
