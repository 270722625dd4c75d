// Proxy → backend: asks the backend, on a fresh connection, to cancel the query running in another one.
import { CANCEL_REQUEST_CODE, MAX_SECRET_KEY_LENGTH, MIN_SECRET_KEY_LENGTH } from "./Protocol.ts"

/**
 * The key is the one the backend sent in BackendKeyData: 4 bytes under protocol 3.0, up to 256 under 3.2.
 * Throws RangeError on a key of another size or a process id outside int32: both can only be the caller's bug.
 */
export const encodeCancelRequest = (processId: number, secretKey: Uint8Array): Buffer => {
  if (secretKey.length < MIN_SECRET_KEY_LENGTH || secretKey.length > MAX_SECRET_KEY_LENGTH) {
    throw new RangeError(
      `cancel key of ${secretKey.length} bytes (${MIN_SECRET_KEY_LENGTH} to ${MAX_SECRET_KEY_LENGTH} expected)`
    )
  }
  if (!Number.isInteger(processId) || processId < -0x80000000 || processId > 0x7fffffff) {
    throw new RangeError(`process id ${processId} is not an int32`)
  }
  const length = 12 + secretKey.length
  const out = Buffer.allocUnsafe(length)
  out.writeInt32BE(length, 0)
  out.writeInt32BE(CANCEL_REQUEST_CODE, 4)
  out.writeInt32BE(processId, 8)
  out.set(secretKey, 12)
  return out
}
