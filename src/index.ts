// The package's public API, for programs that embed polyproxy with their own Resolver.
export type { Config, ListenerConfig, ListenerName, RouteConfig, TlsFiles } from "./config/Config.ts"
export { ConfigError, decodeConfig } from "./config/decode.ts"
export { loadConfig } from "./config/load.ts"
export { type Endpoint, formatEndpoint, parseEndpoint, type VettedEndpoint } from "./domain/Endpoint.ts"
export {
  defaultProtocolLabel,
  type ProtocolInfo,
  ProtocolLabel,
  protocolForPort,
  protocolLabels,
  protocolTable
} from "./domain/Protocols.ts"
export { ProxyError, type Reason, type Source } from "./domain/ProxyError.ts"
export { type ResolveCode, ResolveError } from "./domain/ResolveError.ts"
export type { ConnectionInfo, DisconnectInfo, Route } from "./domain/Route.ts"
export {
  configuredResolver,
  FirstBytes,
  type FirstBytesExtractor,
  type ProxyHandle,
  type RunOptions,
  runProxy,
  servicesLayer,
  staticResolver
} from "./Proxy.ts"
export { Log } from "./services/Log.ts"
export { Metrics } from "./services/Metrics.ts"
export { type AsyncResolver, type AsyncRoute, Resolver, type ResolverShape } from "./services/Resolver.ts"
export { RoutingCache } from "./services/RoutingCache.ts"
export { SsrfGuard } from "./services/SsrfGuard.ts"
