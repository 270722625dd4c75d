// Constants of the PostgreSQL frontend/backend protocol shared by the messages in this folder.

/** Version words are major << 16 | minor. */
export const PROTOCOL_3_0 = 196608
/** PostgreSQL 18: longer cancel keys in BackendKeyData and CancelRequest. */
export const PROTOCOL_3_2 = 196610
export const LATEST_MINOR = 2

// The special request codes put 1234 in the major half so they can never be mistaken for a protocol version.
export const CANCEL_REQUEST_CODE = 80877102
export const SSL_REQUEST_CODE = 80877103
export const GSSENC_REQUEST_CODE = 80877104

/**
 * The server's own limit (MAX_STARTUP_PACKET_LENGTH) on a startup packet after its length word, so the whole packet
 * is at most 10,004 bytes: a client that needs more is not a real client.
 */
export const MAX_STARTUP_PACKET_LENGTH = 10_000

/** Protocol 3.0 keys are exactly 4 bytes; 3.2 allows 4 to 256 so that poolers can carry their own routing data. */
export const MIN_SECRET_KEY_LENGTH = 4
export const MAX_SECRET_KEY_LENGTH = 256

/** 1 GiB, PostgreSQL's MaxAllocSize: no server builds a bigger message, so a longer length means a broken or hostile peer. */
export const MAX_BACKEND_MESSAGE_LENGTH = 0x40000000

export const versionString = (version: number): string => `${version >>> 16}.${version & 0xffff}`
