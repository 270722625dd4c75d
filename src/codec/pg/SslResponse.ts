// Backend → proxy, and proxy → frontend: the single byte answering an SSLRequest (or, for 'N', a GSSENCRequest).
import { type Decoded, describeByte, frame, invalid, need } from "./Decode.ts"

/** 'S': go ahead with the TLS handshake. Shared: never write into it. */
export const SSL_ACCEPTED: Buffer = Buffer.from("S", "latin1")
/** 'N': no encryption here, continue in clear with a StartupMessage. Also the refusal of a GSSENCRequest. Shared. */
export const SSL_REFUSED: Buffer = Buffer.from("N", "latin1")

/**
 * The backend's answer when the proxy itself asks for TLS. Never throws.
 * After 'S' the server must send nothing until the handshake: any byte already there was injected by someone on the
 * path and would be read as if it came over TLS (CVE-2021-23222), so it makes the answer Invalid.
 */
export const decodeSslResponse = (buf: Uint8Array): Decoded<"S" | "N"> => {
  const first = buf[0]
  if (first === undefined) return need(1)
  switch (first) {
    case 0x53:
      return buf.length === 1
        ? frame("S", 1)
        : invalid(
            `received ${buf.length - 1} unencrypted bytes after the SSL response 'S' (possible man-in-the-middle)`
          )
    case 0x4e:
      return frame("N", 1)
    case 0x45:
      return invalid(
        "backend answered SSLRequest with an ErrorResponse ('E'): it does not support SSL negotiation (a server older than PostgreSQL 7.0, or not PostgreSQL)"
      )
    default:
      return invalid(`unexpected answer to SSLRequest: ${describeByte(first)} (expected 'S' or 'N')`)
  }
}
