// Node's `stream_wrap` binding: what net.Socket itself uses to write to and read from its handle (the WriteWrap
// request class and the state array the C++ side fills on every read and write). directWrite.ts writes past Node's
// Writable with it and userBuffer.ts reads past Node's read callback. `process.binding` logs DEP0111 once under
// --pending-deprecation; on a Node without it (or with another shape) both fall back to Node's own paths.

export interface WriteReq {
  handle: unknown
  oncomplete: (this: WriteReq, status: number) => void
  buffer: Buffer | null
  socket: unknown
}

export interface StreamWrap {
  readonly WriteWrap: new () => WriteReq
  /** Filled by C++ before every read callback and after every write. */
  readonly streamBaseState: Int32Array
  readonly kLastWriteWasAsync: number
  readonly kReadBytesOrError: number
}

export const streamWrap = ((): StreamWrap | undefined => {
  try {
    const b = (process as { binding?: (name: string) => unknown }).binding?.("stream_wrap") as
      | Partial<StreamWrap>
      | undefined
    return typeof b?.WriteWrap === "function" &&
      b.streamBaseState instanceof Int32Array &&
      typeof b.kLastWriteWasAsync === "number" &&
      typeof b.kReadBytesOrError === "number"
      ? (b as StreamWrap)
      : undefined
  } catch {
    return undefined
  }
})()
