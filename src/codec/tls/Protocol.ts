// TLS wire constants (RFC 8446 §5.1, §4, §6; RFC 6066 §3; RFC 7301 §3.1) and the limits this proxy applies.

export const RECORD_HEADER = 5
/** A plaintext record fragment is at most 2^14 bytes. */
export const MAX_RECORD_FRAGMENT = 16_384

export const CONTENT_ALERT = 21
export const CONTENT_HANDSHAKE = 22

export const HANDSHAKE_HEADER = 4
export const HANDSHAKE_CLIENT_HELLO = 1

export const EXTENSION_SERVER_NAME = 0
export const EXTENSION_ALPN = 16
export const NAME_TYPE_HOST_NAME = 0

/**
 * The largest ClientHello (handshake header + body) the proxy waits for. Real ones are 200 B to 2 KB, post-quantum
 * key shares included; HAProxy and nginx also give up on a first flight that does not fit one 16 KB buffer.
 */
export const MAX_CLIENT_HELLO = 16_384

/** A DNS name is at most 253 characters in text form (255 octets on the wire with length bytes). */
export const MAX_HOST_NAME = 253
