// The mTLS check of the byte-level listeners (postgres, mysql, mongodb, smtp) fails closed: it reads Node's internal
// verdict on the client's chain, and anything unexpected about that internal must refuse the client, never admit it.
import * as net from "node:net"
import * as tls from "node:tls"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { acceptTls, clientCertProblem, loadServerTls, type ServerTls } from "../../src/listeners/tls.ts"
import { type Certs, makeCerts } from "../support/certs.ts"

let certs: Certs
let serverTls: ServerTls
let server: net.Server
const accepted: Array<(s: tls.TLSSocket) => void> = []

beforeAll(async () => {
  certs = await makeCerts()
  serverTls = await Effect.runPromise(
    loadServerTls(
      { cert: certs.server.certPath, key: certs.server.keyPath, ca: certs.ca.certPath, requireClientCert: true },
      "listeners.spec.tls"
    )
  )
  server = net.createServer((socket) => {
    Effect.runPromise(acceptTls(socket, serverTls)).then(
      (secure) => accepted.shift()?.(secure),
      () => {}
    )
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
})

afterAll(() => server?.close())

/** The proxy's side of one mTLS handshake made with `client`'s certificate. */
const handshake = async (client: { cert: string; key: string }) => {
  const serverSide = new Promise<tls.TLSSocket>((resolve) => accepted.push(resolve))
  const socket = tls.connect({
    port: (server.address() as net.AddressInfo).port,
    host: "127.0.0.1",
    servername: "localhost",
    ca: certs.ca.cert,
    cert: client.cert,
    key: client.key
  })
  socket.on("error", () => {})
  const secure = await serverSide
  return { secure, close: () => socket.destroy() }
}

/** Replaces `verifyError` on this socket's TLS handle only (the instance, not the prototype other sockets share). */
const withVerifyError = (secure: tls.TLSSocket, verifyError: unknown) => {
  const handle = (secure as unknown as { _handle: object })._handle
  Object.defineProperty(handle, "verifyError", { value: verifyError, configurable: true, writable: true })
}

describe("clientCertProblem", () => {
  it("admits a certificate signed by the configured CA, refuses one from another CA", async () => {
    const good = await handshake(certs.client)
    expect(clientCertProblem(good.secure, serverTls)).toBeUndefined()
    good.close()
    const rogue = await handshake(certs.rogueClient)
    expect(clientCertProblem(rogue.secure, serverTls)?.message).toMatch(
      /a valid client certificate is required: UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/
    )
    rogue.close()
  })

  it("refuses a valid certificate when Node's verifyError is missing, throws or answers something unexpected", async () => {
    for (const broken of [
      undefined,
      "not a function",
      () => {
        throw new Error("internal change")
      },
      () => undefined,
      () => "OK",
      () => 0
    ]) {
      const { secure, close } = await handshake(certs.client)
      withVerifyError(secure, broken)
      const problem = clientCertProblem(secure, serverTls)
      expect(problem?.reason).toBe("FORBIDDEN")
      expect(problem?.message).toContain("a valid client certificate is required: CANNOT_VERIFY")
      close()
    }
  })

  it("refuses a valid certificate when the socket has no TLS handle any more", async () => {
    const { secure, close } = await handshake(certs.client)
    const peer = secure.getPeerX509Certificate()
    expect(peer?.subject).toContain("CN=tenant-client")
    // The handle is gone once the socket is destroyed: nothing can be verified.
    secure.destroy()
    await new Promise((resolve) => secure.once("close", resolve))
    expect(clientCertProblem(secure, serverTls)?.message).toContain("a valid client certificate is required")
    close()
  })

  it("asks nothing when the listener does not require a client certificate", async () => {
    const { secure, close } = await handshake(certs.rogueClient)
    expect(clientCertProblem(secure, { ...serverTls, requireClientCert: false })).toBeUndefined()
    close()
  })
})
