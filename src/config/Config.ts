// The config contract: what `polyproxy serve --config FILE` reads. Other work and its acceptance checks depend on these names.

/** The listener types polyproxy ships (src/listeners/registry.ts); a program may add its own (RunOptions.listeners). */
export type ListenerType = "http" | "postgres" | "mysql" | "mongodb" | "smtp" | "tcp"
export const listenerTypes: ReadonlyArray<ListenerType> = ["http", "postgres", "mysql", "mongodb", "smtp", "tcp"]

/**
 * A listener's name: its key under `listeners`. In the short form the name is the type (`postgres: { port: 5432 }`);
 * any other name says its `type` (`pg-alt: { type: postgres, port: 6432 }`). Metrics, logs, /readyz and hot reload
 * know a listener by its name.
 */
export type ListenerName = string

export interface TlsFiles {
  /** Paths to PEM files, resolved against the config file's folder. */
  readonly cert: string
  readonly key: string
  readonly ca?: string | undefined
  /** Refuse clients that do not present a certificate signed by `ca` (mTLS). */
  readonly requireClientCert: boolean
  /**
   * OpenSSL cipher list, TLS 1.3 suites (TLS_…) and TLS 1.2 ciphers in one string. Default `defaults.tls.ciphers`:
   * Mozilla's "intermediate" profile (AEAD suites with forward secrecy only; no CBC, RSA key exchange, SHA-1 MACs).
   */
  readonly ciphers?: string | undefined
  /** Oldest protocol version accepted. Default `defaults.tls.minVersion` ("TLSv1.2"). */
  readonly minVersion?: TlsVersion | undefined
}

export type TlsVersion = "TLSv1" | "TLSv1.1" | "TLSv1.2" | "TLSv1.3"
export const tlsVersions: ReadonlyArray<TlsVersion> = ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]

export interface ListenerConfig {
  /** What runs on the port: a ListenerType, or the type of a listener a program added. Default: the listener's name. */
  readonly type: string
  readonly host: string
  /** 0 = any free port; the bound port is logged and reported by GET /readyz. */
  readonly port: number
  readonly tls?: TlsFiles | undefined
  /** Open connections this listener holds at most; 0 = no limit. */
  readonly maxConnections: number
  /** Expect a PROXY protocol header (v1 or v2) from a trusted load balancer in front; the real client address wins. */
  readonly proxyProtocol: boolean
  /** Sources allowed to send that header (CIDR); connections from elsewhere are refused. Default: loopback. */
  readonly trustedProxies: ReadonlyArray<string>
  /** Type tcp only: a fixed resource id, "sni", or a first-bytes extractor (path made absolute). */
  readonly route?: TcpRoute | undefined
  /** The resource used when the handshake names none (e.g. a MySQL client without a database, a TLS client without SNI). */
  readonly defaultRoute?: string | undefined
  /**
   * Label in metrics and logs beside the listener's name and type: one of the protocol table's (src/domain/Protocols.ts)
   * or the type's own; default: the type's (tcp: the port's in the protocol table, else "tcp").
   */
  readonly protocol?: string | undefined
  /** Which part of the handshake is the routing key (postgres: database | user | user-suffix | sni). */
  readonly routeBy?: string | undefined
  /** Open TLS to the backends of this listener (a route's `metadata.tls` overrides it). */
  readonly upstreamTls?: UpstreamTls | undefined
  /** Type http only: what the HTTP reverse proxy does besides routing by Host. */
  readonly http?: HttpListenerOptions | undefined
  /**
   * Type mongodb only: bytes of a command read before its connection is routed, up to the end of its command
   * document (where drivers put `$db`); a larger one is refused with 17 ProtocolError. Default 65536.
   */
  readonly maxRoutingCommand?: number | undefined
  /**
   * Type mysql only: what the greeting (sent before the backend is known) claims to be. "mariadb" offers
   * MariaDB's extended capabilities (typed JSON/UUID/INET columns), "mysql" none; "auto" (default) greets as the
   * backends seen so far were (see README). A client whose negotiated extras its backend lacks is refused.
   */
  readonly serverFlavor?: MysqlServerFlavor | undefined
  /** Type mysql only: the greeting's version string; default: the flavor's (auto: the backends'). */
  readonly serverVersion?: string | undefined
  /**
   * Type mysql only: the proxy checks logins itself (mysql_native_password) against users' hashes it reads through
   * this login, which lets it route by a later `USE db` and pool server connections. Unset: the backend checks logins
   * (the auth-switch bridge).
   */
  readonly auth?: MysqlListenerAuth | undefined
  /** A program's own listener type: its keys beyond the common ones, as its manifest's decoder returned them. */
  readonly options?: Readonly<Record<string, unknown>> | undefined
}

export type MysqlServerFlavor = "auto" | "mariadb" | "mysql"
export const mysqlServerFlavors: ReadonlyArray<MysqlServerFlavor> = ["auto", "mariadb", "mysql"]

/** A mysql listener's `auth`: where and how the proxy reads users' password hashes (PgBouncer's auth_user/auth_query). */
export interface MysqlListenerAuth {
  /** The resource id of the backend holding mysql.user (resolved like any other). */
  readonly route: string
  /** The lookup login; it needs SELECT on mysql.user (README). */
  readonly user: string
  /** Default "" (none). Never logged, nor shown in a config error. */
  readonly password: string
  /**
   * Takes the user name as its one `?`; the first row answers: the stored hash ("*" + 40 hex), then the plugin.
   * Default: mysql.user's row of that user whose Host matches the lookup login's own address (README).
   */
  readonly query: string
  /** Seconds a user's hash is reused before it is read again (a password change takes effect within it). Default 60. */
  readonly ttl: number
  /** Seconds an unknown user (or one without a native password) is remembered as such. Default 5. */
  readonly negativeTtl: number
}

/**
 * How a tcp listener picks the resource: a string is a fixed resource id, except "sni" (the TLS ClientHello's server
 * name, TLS passed through untouched); `{ firstBytes: "/abs/module.js#export" }` names a user extractor.
 */
export type TcpRoute = string | { readonly firstBytes: string }

/** An http listener's keys beyond the common ones. Seconds for timeouts; 0 = none. */
export interface HttpListenerOptions {
  /** Add X-Proxy-* response headers (route cache hit, upstream time, pooled connection reuse). */
  readonly telemetry: boolean
  /** Send the client's Host to the backend (true) or the route's endpoint host (false). */
  readonly preserveHost: boolean
  /** Whose X-Forwarded-* / Forwarded fields to extend rather than replace: true = everyone, or CIDR ranges. */
  readonly trustForwarded: boolean | ReadonlyArray<string>
  /** Accept HTTP/2 with prior knowledge (h2c) on a plain-text port. */
  readonly h2c: boolean
  /** SNI: a certificate per tenant domain (wildcards allowed); `tls` stays the default for other names. */
  readonly certificates: ReadonlyArray<SniCertificate>
  /** Bytes of request line plus fields; more gets 431. */
  readonly maxHeaderSize: number
  /** Seconds an idle client connection is kept between requests. */
  readonly keepAliveTimeout: number
  readonly upstream: {
    /** Seconds from sending a request to the response head. */
    readonly headersTimeout: number
    /** Seconds without a byte while a body flows, either way. */
    readonly bodyTimeout: number
    /** Seconds a pooled connection may stay idle; keep it below the backends' own keep-alive timeout. */
    readonly keepAliveTimeout: number
    /** Connections per backend address; requests beyond wait for one. 0 = no limit. */
    readonly maxConnections: number
    /**
     * Reuse backend connections (default true). false: one connection per request, sent with `Connection: close`
     * (HTTP/1.1 backends; an h2/h2c backend keeps its one session).
     */
    readonly keepAlive: boolean
  }
  /** Benchmark only: send every request to this "host:port" (IP literal) without asking the Resolver. */
  readonly fixedBackend?: string | undefined
  /**
   * Answer every request at once with this status and body (text/plain), without a Resolver or a backend: a
   * maintenance page, a health endpoint, or a benchmark of the proxy alone. `true` is 200 "ok\n".
   */
  readonly directResponse?: DirectResponse | undefined
  /** Benchmark only: forward request heads as received (no hop-by-hop or X-Forwarded-* rewriting). */
  readonly fastPath: boolean
}

export interface DirectResponse {
  /** 200–599. */
  readonly status: number
  /** Sent as text/plain; charset=utf-8; must be empty for 204, 205 and 304. */
  readonly body: string
}

export interface SniCertificate {
  readonly cert: string
  readonly key: string
  /** Server names it serves ("a.example.com", "*.example.com"); default: the DNS names of the certificate. */
  readonly hosts?: ReadonlyArray<string> | undefined
}

export interface UpstreamTls {
  /** CA file (PEM) that signs backend certificates; default: the system's. */
  readonly ca?: string | undefined
  /** Verify the backend's certificate and host name. */
  readonly rejectUnauthorized: boolean
  /** Oldest protocol version the proxy accepts from backends. Default `defaults.tls.minVersion` ("TLSv1.2"). */
  readonly minVersion?: TlsVersion | undefined
}

export interface RouteConfig {
  readonly endpoint: string
  readonly metadata?: Readonly<Record<string, unknown>> | undefined
  /** Seconds to wait for the backend's TCP connect on this route (overrides timeouts.connect). */
  readonly timeout?: number | undefined
}

/** Where routes come from: the `routes` above (static), a Redis hash, or an HTTP route service. */
export type ResolverConfig =
  | { readonly type: "static" }
  | {
      readonly type: "redis"
      /** redis://[:password@]host:port[/db] or rediss://… */
      readonly url: string
      /** The hash whose fields are resource ids. */
      readonly key: string
      /** Seconds one Redis lookup may take. */
      readonly timeout: number
    }
  | {
      readonly type: "http"
      /** GET {url}?id=<resource id> answers { endpoint, metadata?, timeout? } or 404/403/503. */
      readonly url: string
      /** Sent as `Authorization: Bearer <token>`. */
      readonly token?: string | undefined
      /** Seconds per request. */
      readonly timeout: number
      /** Extra attempts after a network error or a 5xx. */
      readonly retries: number
      /** Consecutive failed lookups after which the service is not asked for `cooldown` seconds; 0 = never. */
      readonly failureThreshold: number
      readonly cooldown: number
      /** POST {wakeUrl}?id=<resource id> wakes a cold backend. */
      readonly wakeUrl?: string | undefined
    }

export type ResolverType = ResolverConfig["type"]
export const resolverTypes: ReadonlyArray<ResolverType> = ["static", "redis", "http"]

export interface AdminConfig {
  readonly host: string
  readonly port: number
  /** Bearer token for the dashboard and /admin/*; required when `host` is not loopback, unless `insecure`. */
  readonly token?: string | undefined
  /**
   * Host names the dashboard and /admin/* answer besides IP literals, `localhost` and a `host` that is a name (DNS
   * rebinding): e.g. the admin Service or Ingress name. "*.example.com" allows one label in front. Default [].
   */
  readonly allowedHosts?: ReadonlyArray<string> | undefined
  /** Accept a non-loopback `host` without `token` (anyone who reaches the port may purge, drain, reload). Default false. */
  readonly insecure?: boolean | undefined
}

export interface Config {
  /** Proxy processes; 0 = one per core. */
  readonly workers: number
  /**
   * Node.js flags for worker processes (workers > 1). The default keeps V8's young generation at 1 MB: idle proxied
   * connections allocate little, and the default 16 MB semi-spaces cost more RSS per worker than thousands of
   * connections (measured: 12.9 → 5.5 KB per connection at 20k). Throughput-heavy HTTP users may prefer [].
   */
  readonly nodeOptions: ReadonlyArray<string>
  readonly admin: AdminConfig | undefined
  /** By name, in the file's order. */
  readonly listeners: Readonly<Record<ListenerName, ListenerConfig>>
  /** The embedded static resolver: resource id (wildcards such as "*.example.com" allowed) -> backend. */
  readonly routes: Readonly<Record<string, RouteConfig>>
  /** Which resolver answers; default static (the `routes`). A Resolver layer passed to runProxy wins over it. */
  readonly resolver: ResolverConfig
  /** TLS for every listener that terminates TLS and has none of its own (also set by PROXY_TLS_*). */
  readonly tls?: TlsFiles | undefined
  readonly cache: {
    /** Seconds a resolved route is reused. */
    readonly ttl: number
    /** Seconds a NOT_FOUND/FORBIDDEN answer is reused. */
    readonly negativeTtl: number
    readonly maxEntries: number
    /** Share answers between processes and pods through this Redis (`redis://…`); purges reach all of them. */
    readonly redis?: string | undefined
  }
  readonly ssrf: {
    /** CIDR ranges that may be dialed although special-purpose (private, loopback...). */
    readonly allow: ReadonlyArray<string>
    /**
     * Skip the address checks: any address a Resolver names is dialed (except the unspecified 0.0.0.0 and ::); names
     * are still resolved once and the dialer still uses that IP. Default false; a warning is logged at start.
     */
    readonly disabled: boolean
  }
  /** Socket options of the relaying listeners (tcp, postgres, mysql, mongodb, smtp), client and backend side. */
  readonly tcp: {
    readonly keepAlive: TcpKeepAlive
  }
  /** How the proxy dials backends. */
  readonly upstream: {
    /** Local addresses to dial from, in turn per family (each gives its own ephemeral port range); [] = the kernel's. */
    readonly sourceAddresses: ReadonlyArray<string>
  }
  /** Seconds; 0 = no limit (idle, halfClose). */
  readonly timeouts: {
    /** The client's handshake, and the backend's (replay: upstream TLS, login, the backend's first answer). */
    readonly handshake: number
    readonly connect: number
    readonly idle: number
    /** Once one side of a relayed connection has sent its FIN: seconds without a byte the other way (default 60). */
    readonly halfClose: number
    readonly resolve: number
    readonly drain: number
  }
  /** Connections held at once: 0 = no limit. Over a limit the client gets its protocol's "unavailable" error. */
  readonly limits: {
    readonly maxConnections: number
    readonly perResource: number
  }
  /** Per-resource series in /metrics for the first `perResource` resources (then "other"); 0 = off. */
  readonly metrics: { readonly perResource: number }
  /** Per backend endpoint: consecutive connect failures open the breaker; it fails fast for `cooldown` seconds. */
  readonly breaker: {
    readonly failureThreshold: number
    readonly cooldown: number
  }
  /** Waiting for a sleeping backend: the Resolver said UNAVAILABLE with retryAfter, or a wakeable route refused. */
  readonly coldStart: {
    /** Seconds a client waits for its backend to wake before it gets "unavailable". */
    readonly timeout: number
    /** Clients that may wait per resource; more get "unavailable" at once. */
    readonly maxQueue: number
  }
  readonly log: {
    readonly level: LogLevel
    /** auto = JSON when stdout is not a TTY. */
    readonly format: "auto" | "json" | "pretty"
    /** One info line per proxied connection when it closes (listener, resource, backend, duration, bytes, close). */
    readonly connections: boolean
    /** Fraction of connection lines written, 0..1. */
    readonly sample: number
  }
}

export type LogLevel = "debug" | "info" | "warn" | "error"

/**
 * TCP keep-alive probes, which find a peer that vanished without a FIN (a crashed host, a NAT that dropped the flow).
 * A silent peer is given up after idle + interval × count seconds (default 60 + 1 × 10).
 */
export interface TcpKeepAlive {
  /** Default true. */
  readonly enabled: boolean
  /** Seconds of silence before the first probe (TCP_KEEPIDLE). Default 60. */
  readonly idle: number
  /** Seconds between unanswered probes (TCP_KEEPINTVL). Default 1 (libuv's). */
  readonly interval: number
  /** Unanswered probes before the connection is dropped (TCP_KEEPCNT). Default 10 (libuv's). */
  readonly count: number
}

export const defaults = {
  workers: 1,
  nodeOptions: ["--max-semi-space-size=1"],
  admin: { host: "127.0.0.1", port: 9090 },
  listenerHost: "0.0.0.0",
  cache: { ttl: 60, negativeTtl: 5, maxEntries: 100_000 },
  timeouts: { handshake: 10, connect: 5, idle: 0, halfClose: 60, resolve: 5, drain: 30 },
  log: { level: "info" as LogLevel, format: "auto" as const, connections: true, sample: 1 },
  limits: { maxConnections: 0, perResource: 0 },
  metrics: { perResource: 0 },
  breaker: { failureThreshold: 5, cooldown: 10 },
  coldStart: { timeout: 30, maxQueue: 1000 },
  tcp: { keepAlive: { enabled: true, idle: 60, interval: 1, count: 10 } as TcpKeepAlive },
  /**
   * The TLS profile of every listener that terminates TLS (Mozilla "intermediate", as HAProxy and nginx configs
   * generated from it): TLS 1.2 and 1.3, AEAD suites with ECDHE only. Client-initiated renegotiation is always refused.
   */
  tls: {
    minVersion: "TLSv1.2" as TlsVersion,
    ciphers: [
      "TLS_AES_128_GCM_SHA256",
      "TLS_AES_256_GCM_SHA384",
      "TLS_CHACHA20_POLY1305_SHA256",
      "ECDHE-ECDSA-AES128-GCM-SHA256",
      "ECDHE-RSA-AES128-GCM-SHA256",
      "ECDHE-ECDSA-AES256-GCM-SHA384",
      "ECDHE-RSA-AES256-GCM-SHA384",
      "ECDHE-ECDSA-CHACHA20-POLY1305",
      "ECDHE-RSA-CHACHA20-POLY1305"
    ].join(":")
  },
  resolver: {
    redis: { key: "polyproxy:routes", timeout: 1 },
    http: { timeout: 2, retries: 2, failureThreshold: 5, cooldown: 5 }
  }
} as const
