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

/** The flags set in `flags`, by name, for error messages and logs. */
export const capabilityNames = (flags: number): CapabilityName[] =>
  (Object.keys(Capability) as CapabilityName[]).filter((name) => (flags & Capability[name]) >>> 0 !== 0)

export const hasCapability = (flags: number, flag: number): boolean => (flags & flag) >>> 0 !== 0

/** Server status flags (OK, EOF, HandshakeV10). */
export const Status = {
  IN_TRANS: 0x0001,
  AUTOCOMMIT: 0x0002,
  MORE_RESULTS_EXISTS: 0x0008,
  SESSION_STATE_CHANGED: 0x4000
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
