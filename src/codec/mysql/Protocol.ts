// Constants of the MySQL/MariaDB client/server protocol shared by the messages in this folder.
// Sources: dev.mysql.com "Capabilities Flags", "Connection Phase", "Generic Response Packets"; mariadb.com "Connection".

/** Capability flags (int<4> in HandshakeV10 and HandshakeResponse41). Written unsigned: use `>>> 0` after `|`. */
export const Capability = {
  LONG_PASSWORD: 0x00000001, // MariaDB calls it CLIENT_MYSQL: unset = read the extended MariaDB flags
  FOUND_ROWS: 0x00000002,
  LONG_FLAG: 0x00000004,
  CONNECT_WITH_DB: 0x00000008,
  NO_SCHEMA: 0x00000010,
  COMPRESS: 0x00000020,
  ODBC: 0x00000040,
  LOCAL_FILES: 0x00000080,
  IGNORE_SPACE: 0x00000100,
  PROTOCOL_41: 0x00000200,
  INTERACTIVE: 0x00000400,
  SSL: 0x00000800,
  IGNORE_SIGPIPE: 0x00001000,
  TRANSACTIONS: 0x00002000,
  RESERVED: 0x00004000,
  SECURE_CONNECTION: 0x00008000,
  MULTI_STATEMENTS: 0x00010000,
  MULTI_RESULTS: 0x00020000,
  PS_MULTI_RESULTS: 0x00040000,
  PLUGIN_AUTH: 0x00080000,
  CONNECT_ATTRS: 0x00100000,
  PLUGIN_AUTH_LENENC_CLIENT_DATA: 0x00200000,
  CAN_HANDLE_EXPIRED_PASSWORDS: 0x00400000,
  SESSION_TRACK: 0x00800000,
  DEPRECATE_EOF: 0x01000000,
  OPTIONAL_RESULTSET_METADATA: 0x02000000,
  ZSTD_COMPRESSION_ALGORITHM: 0x04000000,
  QUERY_ATTRIBUTES: 0x08000000,
  MULTI_FACTOR_AUTHENTICATION: 0x10000000,
  CAPABILITY_EXTENSION: 0x20000000,
  SSL_VERIFY_SERVER_CERT: 0x40000000,
  REMEMBER_OPTIONS: 0x80000000
} as const

export type CapabilityName = keyof typeof Capability

/** The names in `table` of the flags set in `flags`, for error messages and logs. */
const namesOf = <Name extends string>(table: Readonly<Record<Name, number>>, flags: number): Name[] =>
  (Object.keys(table) as Name[]).filter((name) => (flags & table[name]) >>> 0 !== 0)

export const capabilityNames = (flags: number): CapabilityName[] => namesOf(Capability, flags)

export const hasCapability = (flags: number, flag: number): boolean => (flags & flag) >>> 0 !== 0

/**
 * MariaDB's extended capabilities (include/mysql_com.h: bits 32 and up of its 64-bit flags, here shifted down). They
 * sit in the last 4 reserved bytes of the greeting and of the client's answer, and count only when that side leaves
 * CLIENT_MYSQL (LONG_PASSWORD) unset.
 */
export const MariaDbCapability = {
  /** Progress reports (an ERR packet with code 0xFFFF) during long statements, when the client asks for them. */
  PROGRESS: 0x01,
  /** COM_MULTI; deprecated, no longer offered by servers. */
  COM_MULTI: 0x02,
  /** COM_STMT_BULK_EXECUTE (array binding). */
  STMT_BULK_OPERATIONS: 0x04,
  /** Column definitions carry a block of type/format names (json, uuid, inet4, inet6, geometry types). */
  EXTENDED_METADATA: 0x08,
  /** COM_STMT_EXECUTE answers say whether metadata follows and skip it when unchanged (10.6+). */
  CACHE_METADATA: 0x10,
  /** A bulk execute may answer with one result per row (11.5+). */
  BULK_UNIT_RESULTS: 0x20
} as const

export type MariaDbCapabilityName = keyof typeof MariaDbCapability

export const mariadbCapabilityNames = (flags: number): MariaDbCapabilityName[] => namesOf(MariaDbCapability, flags)

/** Server status flags (OK, EOF, HandshakeV10). */
export const Status = {
  IN_TRANS: 0x0001,
  AUTOCOMMIT: 0x0002,
  MORE_RESULTS_EXISTS: 0x0008,
  /** COM_STMT_EXECUTE opened a cursor: the rows come with COM_STMT_FETCH, not in this response. */
  CURSOR_EXISTS: 0x0040,
  LAST_ROW_SENT: 0x0080,
  /** sql_mode NO_BACKSLASH_ESCAPES: a backslash in a string literal is an ordinary character. */
  NO_BACKSLASH_ESCAPES: 0x0200,
  PS_OUT_PARAMS: 0x1000,
  SESSION_STATE_CHANGED: 0x4000
} as const

/** The first payload byte of a client's command (include/my_command.h; MariaDB's COM_STMT_BULK_EXECUTE is 0xFA). */
export const Command = {
  SLEEP: 0x00,
  QUIT: 0x01,
  INIT_DB: 0x02,
  QUERY: 0x03,
  FIELD_LIST: 0x04,
  CREATE_DB: 0x05,
  DROP_DB: 0x06,
  REFRESH: 0x07,
  SHUTDOWN: 0x08,
  STATISTICS: 0x09,
  PROCESS_INFO: 0x0a,
  CONNECT: 0x0b,
  /** Deprecated by MySQL 5.7 but still served by MySQL 8 and MariaDB; libmysqlclient's mysql_kill() sends it. */
  PROCESS_KILL: 0x0c,
  DEBUG: 0x0d,
  PING: 0x0e,
  TIME: 0x0f,
  DELAYED_INSERT: 0x10,
  CHANGE_USER: 0x11,
  BINLOG_DUMP: 0x12,
  TABLE_DUMP: 0x13,
  CONNECT_OUT: 0x14,
  REGISTER_SLAVE: 0x15,
  STMT_PREPARE: 0x16,
  STMT_EXECUTE: 0x17,
  STMT_SEND_LONG_DATA: 0x18,
  STMT_CLOSE: 0x19,
  STMT_RESET: 0x1a,
  SET_OPTION: 0x1b,
  STMT_FETCH: 0x1c,
  DAEMON: 0x1d,
  BINLOG_DUMP_GTID: 0x1e,
  RESET_CONNECTION: 0x1f,
  STMT_BULK_EXECUTE: 0xfa
} as const

/** The payload length that says "more of this payload follows in the next packet". */
export const MAX_PACKET_PAYLOAD = 0xffffff

export const PACKET_HEADER = 4

/** First payload byte of the packets a server sends during and after authentication. */
export const Marker = {
  OK: 0x00,
  AUTH_MORE_DATA: 0x01,
  AUTH_NEXT_FACTOR: 0x02,
  LOCAL_INFILE: 0xfb,
  /** EOF, or AuthSwitchRequest during authentication. */
  EOF: 0xfe,
  ERR: 0xff
} as const

export const AuthPlugin = {
  NATIVE: "mysql_native_password",
  CACHING_SHA2: "caching_sha2_password",
  SHA256: "sha256_password",
  CLEAR: "mysql_clear_password",
  /** MariaDB's PAM dialog: may send the password in clear text. */
  DIALOG: "dialog"
} as const

/** utf8mb4_general_ci: understood by MariaDB and by MySQL since 5.5.3. */
export const UTF8MB4_GENERAL_CI = 45

/** The nonce length of mysql_native_password and caching_sha2_password. */
export const SCRAMBLE_LENGTH = 20
