// The package's public API, for programs that embed polyproxy with their own Resolver or listener types.
export { type Decoded, type Frame, frame, type Invalid, invalid, type Need, need } from "./codec/Decode.ts"
export {
  type Config,
  type ListenerConfig,
  type ListenerName,
  type ListenerType,
  listenerTypes,
  type RouteConfig,
  type TlsFiles
} from "./config/Config.ts"
export { ConfigError, type DecodeOptions, decodeConfig } from "./config/decode.ts"
export type { Obj } from "./config/fields.ts"
export { loadConfig } from "./config/load.ts"
export { preflight } from "./config/preflight.ts"
export { type Endpoint, formatEndpoint, parseEndpoint, type VettedEndpoint } from "./domain/Endpoint.ts"
export {
  defaultProtocolLabel,
  type ProtocolInfo,
  ProtocolLabel,
  protocolForPort,
  protocolLabels,
  protocolTable
} from "./domain/Protocols.ts"
export { ProxyError, proxyError, type Reason, type Source } from "./domain/ProxyError.ts"
export { type ResolveCode, ResolveError } from "./domain/ResolveError.ts"
export type { ConnectionInfo, DisconnectInfo, Route } from "./domain/Route.ts"
export type { Admission } from "./listeners/Admission.ts"
export type { RunningListener } from "./listeners/Listener.ts"
export type {
  ListenerManifest,
  ListenerOptions,
  ListenerServices,
  ProtocolLoader
} from "./listeners/manifest.ts"
export type { ClientConnection, Identified, Protocol, RelayWatch } from "./listeners/Protocol.ts"
export type { ProtocolContext } from "./listeners/ProtocolContext.ts"
export type { ReadFrame } from "./listeners/readFrame.ts"
export type { ListenerRegistryShape } from "./listeners/registry.ts"
export {
  builtinListeners,
  clientText,
  configuredResolver,
  FirstBytes,
  type FirstBytesExtractor,
  ListenerRegistry,
  type ProxyHandle,
  protocolListener,
  type RunOptions,
  readFrame,
  runProxy,
  servicesLayer,
  staticResolver
} from "./Proxy.ts"
export {
  BackendPool,
  type BackendPoolShape,
  type PoolCounts,
  type PooledBackend,
  type PoolGroup,
  type PoolStats
} from "./services/BackendPool.ts"
export { CircuitBreaker } from "./services/CircuitBreaker.ts"
export { Log } from "./services/Log.ts"
export { Metrics } from "./services/Metrics.ts"
export { type AsyncResolver, type AsyncRoute, Resolver, type ResolverShape } from "./services/Resolver.ts"
export {
  type CachedRoute,
  RoutingCache,
  type RoutingCacheNeeds,
  type RoutingCacheOptions,
  type RoutingCacheShape
} from "./services/RoutingCache.ts"
export { SsrfGuard } from "./services/SsrfGuard.ts"
