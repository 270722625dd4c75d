// The session state a COM_QUERY text leaves on its server connection, as statementEffects (StatementEffects.ts) reads
// it, and which releasing statements undo which kind: what a transaction-pooling session keeps as its pins.

/**
 * What running the text's statements in order leaves a session with is what applying `unpins`, then `pins`, leaves:
 * each kind of state is as the last statement that touches it left it. Lists are absent when empty: a text that
 * touches no session state costs no allocation.
 */
export interface StatementEffects {
  /** Kinds of state the text leaves, each once, first seen first ("user variable", "temporary table"…). */
  readonly pins?: ReadonlyArray<string>
  /** The statements that release state ("UNLOCK TABLES", "RELEASE_ALL_LOCKS"…), each once: see `RELEASES`. */
  readonly unpins?: ReadonlyArray<string>
  /** The database of its (last) USE. */
  readonly use?: string
}

/** What each `unpins` value releases (other pins stay). */
export const RELEASES: Readonly<Record<string, readonly string[]>> = {
  "UNLOCK TABLES": ["LOCK TABLES", "FLUSH TABLES WITH READ LOCK", "FLUSH TABLES FOR EXPORT"],
  RELEASE_ALL_LOCKS: ["GET_LOCK"],
  "XA COMMIT": ["XA transaction"],
  "XA ROLLBACK": ["XA transaction"],
  "BACKUP STAGE END": ["BACKUP STAGE"],
  "BACKUP UNLOCK": ["BACKUP LOCK"],
  "UNLOCK INSTANCE": ["LOCK INSTANCE FOR BACKUP"]
}
