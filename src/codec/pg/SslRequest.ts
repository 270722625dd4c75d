// Proxy → backend: asks the backend to switch to TLS before the StartupMessage.
import { SSL_REQUEST_CODE } from "./Protocol.ts"

const make = (): Buffer => {
  const out = Buffer.allocUnsafe(8)
  out.writeInt32BE(8, 0)
  out.writeInt32BE(SSL_REQUEST_CODE, 4)
  return out
}

/** The 8 bytes, shared: never write into it. */
export const SSL_REQUEST: Buffer = make()
