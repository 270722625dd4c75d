// Test PKI made with the openssl CLI, so the certificates look like what operators produce and no npm PKI code is trusted.
import { execFile } from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdirSync } from "node:fs"
import { readFile, writeFile } from "node:fs/promises"
import { join, resolve } from "node:path"
import { makeTempDir } from "./backends/local.ts"

export interface PemPair {
  readonly keyPath: string
  readonly certPath: string
  /** PEM, PKCS#8 */
  readonly key: string
  /** PEM */
  readonly cert: string
}

export interface Certs {
  readonly dir: string
  /** The CA every server and the legitimate client chain to. */
  readonly ca: PemPair
  /** CN=localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1, signed by `ca`. */
  readonly server: PemPair
  /** CN=tenant-client, clientAuth, signed by `ca`. */
  readonly client: PemPair
  /** An unrelated CA: nothing we run trusts it. */
  readonly rogueCa: PemPair
  /** Same CN as `client` (so only the chain can tell them apart), signed by `rogueCa`. */
  readonly rogueClient: PemPair
}

const cache = new Map<string, Promise<Certs>>()
let defaultDir: string | undefined

/** One set per process (per `dir`) is enough: generating is cheap but not free, and specs never mutate it. */
export const makeCerts = (dir?: string): Promise<Certs> => {
  const target = dir ? resolve(dir) : (defaultDir ??= tempCertDir())
  let certs = cache.get(target)
  if (!certs) {
    certs = generate(target)
    // A failed attempt must not poison later callers.
    certs.catch(() => cache.delete(target))
    cache.set(target, certs)
  }
  return certs
}

// Removed with the servers' dirs when the process ends, however it ends.
const tempCertDir = (): string => makeTempDir("certs")

const openssl = (args: readonly string[], cwd: string): Promise<void> =>
  new Promise((resolvePromise, reject) => {
    execFile("openssl", args, { cwd, timeout: 30_000 }, (error, _stdout, stderr) => {
      if (!error) return resolvePromise()
      const hint =
        (error as NodeJS.ErrnoException).code === "ENOENT" ? " (run `bash scripts/install-test-deps.sh`)" : ""
      reject(new Error(`openssl ${args.join(" ")} failed${hint}: ${error.message}\n${stderr}`))
    })
  })

// P-256 keys are generated in milliseconds, RSA-2048 takes noticeably longer on a 2-core machine.
const newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"] as const

const selfSignedCa = async (dir: string, name: string, cn: string): Promise<void> =>
  openssl(
    [
      "req",
      "-x509",
      ...newKey,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.crt`,
      "-subj",
      `/O=polyproxy tests/CN=${cn}`,
      "-days",
      "3650",
      "-sha256",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign"
    ],
    dir
  )

const leaf = async (dir: string, name: string, cn: string, ca: string, extensions: string): Promise<void> => {
  await writeFile(join(dir, `${name}.ext`), extensions)
  await openssl(["req", "-new", ...newKey, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`], dir)
  await openssl(
    [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${ca}.crt`,
      "-CAkey",
      `${ca}.key`,
      // Random serials, because two sets made in the same second must never look like one certificate to a TLS cache.
      "-set_serial",
      `0x${randomBytes(16).toString("hex")}`,
      "-days",
      "825",
      "-sha256",
      "-extfile",
      `${name}.ext`,
      "-out",
      `${name}.crt`
    ],
    dir
  )
}

const leafExtensions = (usage: "serverAuth" | "clientAuth", san?: string): string =>
  [
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature",
    `extendedKeyUsage=${usage}`,
    "subjectKeyIdentifier=hash",
    "authorityKeyIdentifier=keyid,issuer",
    ...(san ? [`subjectAltName=${san}`] : [])
  ].join("\n") + "\n"

const load = async (dir: string, name: string): Promise<PemPair> => {
  const keyPath = join(dir, `${name}.key`)
  const certPath = join(dir, `${name}.crt`)
  const [key, cert] = await Promise.all([readFile(keyPath, "utf8"), readFile(certPath, "utf8")])
  return { keyPath, certPath, key, cert }
}

const generate = async (dir: string): Promise<Certs> => {
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  await Promise.all([
    (async () => {
      await selfSignedCa(dir, "ca", "polyproxy test CA")
      await Promise.all([
        leaf(dir, "server", "localhost", "ca", leafExtensions("serverAuth", "DNS:localhost, IP:127.0.0.1, IP:::1")),
        leaf(dir, "client", "tenant-client", "ca", leafExtensions("clientAuth"))
      ])
    })(),
    (async () => {
      await selfSignedCa(dir, "rogue-ca", "rogue test CA")
      await leaf(dir, "rogue-client", "tenant-client", "rogue-ca", leafExtensions("clientAuth"))
    })()
  ])
  const [ca, server, client, rogueCa, rogueClient] = await Promise.all(
    ["ca", "server", "client", "rogue-ca", "rogue-client"].map((name) => load(dir, name))
  )
  return { dir, ca: ca!, server: server!, client: client!, rogueCa: rogueCa!, rogueClient: rogueClient! }
}

export interface SiteCerts {
  readonly dir: string
  /** A CA of this site's own: trusting it trusts no other site. */
  readonly ca: PemPair
  /** CN = hosts[0], SAN = every host as a DNS name, signed by `ca`. */
  readonly server: PemPair
}

/** A separate PKI per TLS origin, so a client can tell which origin (not which proxy) it reached by the chain alone. */
export const makeSiteCerts = async (hosts: ReadonlyArray<string>): Promise<SiteCerts> => {
  const dir = makeTempDir("site-certs")
  await selfSignedCa(dir, "ca", `${hosts[0]} test CA`)
  await leaf(dir, "server", hosts[0]!, "ca", leafExtensions("serverAuth", hosts.map((h) => `DNS:${h}`).join(", ")))
  const [ca, server] = await Promise.all([load(dir, "ca"), load(dir, "server")])
  return { dir, ca, server }
}
