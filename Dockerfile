# polyproxy container image.
#
#   docker build -t polyproxy .
#   docker run --rm --ulimit nofile=262144:262144 -p 5432:5432 -p 9090:9090 \
#     -e POLYPROXY_ADMIN_TOKEN="$(openssl rand -hex 24)" -v "$PWD/my.yaml:/etc/polyproxy/polyproxy.yaml:ro" polyproxy
#   docker run --rm -e POLYPROXY_ADMIN_TOKEN=x polyproxy check-config /etc/polyproxy/polyproxy.yaml   # any CLI command
#
# Admin: the default config binds it on 0.0.0.0:9090 (orchestrator probes reach the container's address), and
# polyproxy refuses a non-loopback admin without a token, so the default config starts only with POLYPROXY_ADMIN_TOKEN
# (or POLYPROXY_ADMIN_HOST=127.0.0.1, which keeps this HEALTHCHECK but not external probes). /healthz /readyz
# /metrics stay open; the dashboard and /admin/* need the token.
#
# File descriptors: every proxied connection holds two sockets in the proxy process (client + backend), and Node
# raises its soft RLIMIT_NOFILE to the hard limit at start, so the hard limit is what bounds a process:
# connections per process ≈ (nofile − 200) / 2. Set it with `docker run --ulimit nofile=N:N` (compose: `ulimits:`;
# Kubernetes: the container runtime's LimitNOFILE, see deploy/k8s/deployment.yaml). With `workers: N` each worker
# process has its own limit.
#
# Memory: ≈ 85 MB per proxy process (primary and each worker) plus ≈ 20 KB per held connection: ≈ 8 KB in the proxy
# (heap and buffers) and ≈ 8–10 KB of kernel socket memory for its two sockets, which the container's cgroup is
# charged too. `make load` measures both (README "Deployment").

# ---- build: every dependency, then tsc into dist/ ----
FROM node:24-bookworm-slim AS build
WORKDIR /src
# package.json's overrides point at scripts/empty-package, so npm needs it to resolve the lockfile.
COPY package.json package-lock.json ./
COPY scripts/empty-package/ scripts/empty-package/
# No install scripts: nothing the build or the runtime uses needs one (they only try optional native add-ons).
RUN npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
COPY tsconfig.json tsconfig.build.json ./
COPY src/ src/
RUN npm run build

# ---- production dependencies only ----
FROM node:24-bookworm-slim AS deps
WORKDIR /src
COPY package.json package-lock.json ./
COPY scripts/empty-package/ scripts/empty-package/
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error && npm cache clean --force

# ---- runtime: dist/, production node_modules, fixtures/ (the embedded default config) ----
FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
# A dedicated unprivileged user; listeners therefore use ports ≥ 1024 (map 25/80/443 on the host or the Service).
RUN groupadd --system --gid 10001 polyproxy \
  && useradd --system --uid 10001 --gid polyproxy --home-dir /app --shell /usr/sbin/nologin polyproxy \
  && mkdir -p /etc/polyproxy
# package.json carries "type": "module", which dist/*.js needs.
COPY --from=build /src/package.json ./package.json
COPY --from=deps /src/node_modules/ ./node_modules/
COPY --from=build /src/dist/ ./dist/
COPY fixtures/ ./fixtures/
# The default config: every listener on every interface, admin on 0.0.0.0:9090 for probes (needs POLYPROXY_ADMIN_TOKEN).
COPY deploy/docker/polyproxy.yaml /etc/polyproxy/polyproxy.yaml
USER 10001:10001
EXPOSE 5432 3306 27017 2525 8080 7000 9090
STOPSIGNAL SIGTERM
# node:*-slim has no curl: node's own fetch. HEALTHCHECK_URL overrides the address (a config whose admin port is not
# 9090); it is deliberately not a POLYPROXY_* name, since polyproxy refuses unknown POLYPROXY_* variables.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.HEALTHCHECK_URL||'http://127.0.0.1:9090/healthz',{signal:AbortSignal.timeout(2500)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["serve", "--config", "/etc/polyproxy/polyproxy.yaml"]
