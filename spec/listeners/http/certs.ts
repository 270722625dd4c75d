// Per-tenant server certificates for the SNI specs, signed by the shared test CA with the openssl CLI.
import { execFile } from "node:child_process"
import { readFile, writeFile } from "node:fs/promises"
import { join } from "node:path"
import type { Certs, PemPair } from "../../support/certs.ts"

const openssl = (args: ReadonlyArray<string>, cwd: string): Promise<void> =>
  new Promise((resolve, reject) =>
    execFile("openssl", [...args], { cwd, timeout: 30_000 }, (error, _out, stderr) =>
      error ? reject(new Error(`openssl ${args.join(" ")}: ${stderr}`)) : resolve()
    )
  )

/** A serverAuth certificate for `dnsNames` (the first is its CN), signed by `certs.ca`. */
export const tenantCert = async (certs: Certs, name: string, dnsNames: ReadonlyArray<string>): Promise<PemPair> => {
  const dir = certs.dir
  await writeFile(
    join(dir, `${name}.ext`),
    [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature",
      "extendedKeyUsage=serverAuth",
      `subjectAltName=${dnsNames.map((d) => `DNS:${d}`).join(", ")}`
    ].join("\n")
  )
  const key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
  await openssl(
    ["req", "-new", ...key, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${dnsNames[0]}`],
    dir
  )
  await openssl(
    [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      certs.ca.certPath,
      "-CAkey",
      certs.ca.keyPath,
      "-set_serial",
      `0x${Date.now().toString(16)}${Math.floor(Math.random() * 1e6).toString(16)}`,
      "-days",
      "30",
      "-sha256",
      "-extfile",
      `${name}.ext`,
      "-out",
      `${name}.crt`
    ],
    dir
  )
  const keyPath = join(dir, `${name}.key`)
  const certPath = join(dir, `${name}.crt`)
  return { keyPath, certPath, key: await readFile(keyPath, "utf8"), cert: await readFile(certPath, "utf8") }
}
