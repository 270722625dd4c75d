// Proxy → frontend: the messages that end a startup the proxy answers itself (transaction pooling), and the Execute
// the pooling relay sends a server connection in place of a message it refuses.
import { encodeTypedMessage } from "./Framing.ts"

/** 'S': one run-time parameter's value, as the server reports it at startup and whenever it changes. */
export const encodeParameterStatus = (name: string, value: string): Buffer =>
  encodeTypedMessage("S", Buffer.from(`${name}\0${value}\0`, "utf8"))

/** 'K': the key a client quotes in a CancelRequest (4 bytes under protocol 3.0). */
export const encodeBackendKeyData = (processId: number, secretKey: Uint8Array): Buffer => {
  const body = Buffer.allocUnsafe(4 + secretKey.length)
  body.writeInt32BE(processId | 0, 0)
  body.set(secretKey, 4)
  return encodeTypedMessage("K", body)
}

const ready = {
  I: encodeTypedMessage("Z", Buffer.from("I")),
  T: encodeTypedMessage("Z", Buffer.from("T")),
  E: encodeTypedMessage("Z", Buffer.from("E"))
}

/** 'Z' with the transaction status. Shared: never write into it. */
export const encodeReadyForQuery = (status: "I" | "T" | "E"): Buffer => ready[status]

/**
 * 'v': the server speaks protocol 3.`minor` at most and ignored these `_pq_.` options, as PostgreSQL answers a client
 * that asked for a newer minor version or for protocol options it does not know.
 */
export const encodeNegotiateProtocolVersion = (minor: number, unknownOptions: ReadonlyArray<string>): Buffer => {
  const names = Buffer.from(unknownOptions.map((o) => `${o}\0`).join(""), "utf8")
  const body = Buffer.allocUnsafe(8 + names.length)
  body.writeInt32BE(minor, 0)
  body.writeInt32BE(unknownOptions.length, 4)
  names.copy(body, 8)
  return encodeTypedMessage("v", body)
}

/** 'E' (frontend): run `portal`, all rows. */
export const encodeExecute = (portal: string): Buffer => {
  const name = Buffer.from(`${portal}\0`, "utf8")
  const body = Buffer.alloc(name.length + 4)
  name.copy(body, 0)
  return encodeTypedMessage("E", body)
}
