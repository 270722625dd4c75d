// The package subpath `polyproxy/resolvers/http`: the shipped HTTP resolver (the operator's own route service), for a
// program that builds its own Resolver layer.
export {
  type HttpResolverOptions,
  httpResolverDefaults as defaults,
  layer,
  makeHttpResolver as make
} from "../services/resolvers/HttpResolver.ts"
