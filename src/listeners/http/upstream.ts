// connect + relay towards HTTP/1.1 backends, the HTTP listener's backend side (its parts in their own files):
// exchange.ts (one request and its response, what the client side is told), upstreamConn.ts (the state machine of one
// backend connection), upstreamSocket.ts (its states, dial profile and shared socket listeners), originPool.ts (the
// keep-alive pool per backend address, and a listener's pools in the BackendPool service). HTTP/2 backends:
// h2upstream.ts. Every one of them dials through ../dial.ts.
export { type ClientSide, Exchange, mayRetry, ownedChunk, sharedReadBuffer } from "./exchange.ts"
export { type BreakerHooks, listenerPools, OriginPool, Pools, type PoolTls } from "./originPool.ts"
export { UpstreamConn } from "./upstreamConn.ts"
