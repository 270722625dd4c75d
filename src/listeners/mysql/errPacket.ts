// proxy → client: every refusal as an ERR packet with the error code and SQLSTATE a MySQL client knows how to print,
// sent with the sequence id the client expects at the point the handshake reached.
import type * as net from "node:net"
import { encodeErrPacket, encodePacket, Marker, PACKET_TOO_LARGE } from "../../codec/mysql/index.ts"
import type { ProxyError, Reason } from "../../domain/ProxyError.ts"
import { clientText } from "../refusal.ts"

interface MysqlCode {
  readonly code: number
  readonly sqlState: string
}

/** Error code and SQLSTATE per reason (MySQL server error reference; 2003 is the client's "Can't connect"). */
export const mysqlCodeOf: Readonly<Record<Reason, MysqlCode>> = {
  NOT_FOUND: { code: 1049, sqlState: "42000" }, // ER_BAD_DB_ERROR: Unknown database
  FORBIDDEN: { code: 1045, sqlState: "28000" }, // ER_ACCESS_DENIED_ERROR
  UNAVAILABLE: { code: 1040, sqlState: "08004" }, // ER_CON_COUNT_ERROR: Too many connections
  TIMEOUT: { code: 2003, sqlState: "HY000" }, // CR_CONN_HOST_ERROR: Can't connect to MySQL server
  CONNECT_FAILED: { code: 2003, sqlState: "HY000" },
  HANDSHAKE_TIMEOUT: { code: 1043, sqlState: "08S01" }, // ER_HANDSHAKE_ERROR: Bad handshake
  BAD_REQUEST: { code: 1043, sqlState: "08S01" },
  INTERNAL: { code: 1105, sqlState: "HY000" } // ER_UNKNOWN_ERROR
}

/** ER_NET_PACKET_TOO_LARGE: "Got a packet bigger than 'max_allowed_packet' bytes". */
const packetTooLarge: MysqlCode = { code: 1153, sqlState: "08S01" }

/** Put in a ProxyError's `cause` when the client named no database and no default route applies. */
export const NO_DATABASE_SELECTED: MysqlCode = { code: 1046, sqlState: "3D000" } // ER_NO_DB_ERROR

/**
 * The sequence id of the proxy's next packet to each client still in its handshake. The shared Listener hands
 * `refuse` only the socket, so the handshake records here how far it got; entries go when the relay starts.
 */
export const nextServerSequence = new WeakMap<net.Socket, number>()

const textOf = (error: ProxyError, routeByDatabase: boolean): string => {
  const why = clientText(error)
  switch (error.reason) {
    case "NOT_FOUND":
      return routeByDatabase && error.resourceId !== undefined ? `Unknown database '${error.resourceId}' (${why})` : why
    case "TIMEOUT":
    case "CONNECT_FAILED":
      return `Can't connect to MySQL server through the proxy (${why})`
    case "HANDSHAKE_TIMEOUT":
    case "BAD_REQUEST":
      return `Bad handshake (${why})`
    default:
      return why
  }
}

/** The whole ERR packet (header included) for `error`, numbered for the point the client's handshake reached. */
export const mysqlErrorFor = (error: ProxyError, sequenceId: number, routeByDatabase = true): Buffer => {
  // A server's own ERR (a backend refused the proxy's login for a pooled client), or MariaDB's words the proxy speaks
  // as the server (1045 for a login it checked itself): sent as they are. The ref is in the log line only.
  const cause = error.cause
  if (cause instanceof Uint8Array && cause[0] === Marker.ERR) return encodePacket(cause, sequenceId)
  const override = error.cause === NO_DATABASE_SELECTED ? NO_DATABASE_SELECTED : undefined
  const tooLarge = error.reason === "BAD_REQUEST" && error.message.startsWith(PACKET_TOO_LARGE)
  const { code, sqlState } = override ?? (tooLarge ? packetTooLarge : mysqlCodeOf[error.reason])
  const message = override ? `No database selected (${clientText(error)})` : textOf(error, routeByDatabase)
  return encodePacket(encodeErrPacket({ code, sqlState, message }), sequenceId)
}
