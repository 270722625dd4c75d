import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { RELEASES, statementEffects } from "../../../src/codec/mysql/StatementEffects.ts"

/** The first kind a text pins (most texts pin one). */
const pins = (sql: string) => statementEffects(sql).pins?.[0]

describe("statementEffects", () => {
  it.each([
    "SELECT 1",
    "select * from t where a = 'x' for update",
    "INSERT INTO t VALUES (1, 'SET @x = 1')",
    "UPDATE t SET a = 1 WHERE b = 2",
    "START TRANSACTION",
    "BEGIN",
    "COMMIT",
    "SET autocommit = 0",
    "set AUTOCOMMIT=1",
    "SET @@autocommit = 1",
    "SET SESSION autocommit = 0",
    "SET @@session.autocommit = 0",
    "SET `autocommit` = 0",
    "SET GLOBAL max_connections = 10",
    "SET @@global.max_connections = 10",
    "SET PERSIST max_connections = 10",
    "SET GLOBAL TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SET PASSWORD = PASSWORD('x')",
    "SET PASSWORD FOR 'app'@'%' = PASSWORD('x')",
    "SET DEFAULT ROLE admin FOR app@localhost",
    "SET STATEMENT max_statement_time = 1 FOR SELECT SLEEP(2)",
    "SELECT @@session.sql_mode, @@version",
    "SELECT RELEASE_LOCK('l')",
    "SELECT get_lock FROM t",
    "SELECT LAST_INSERT_ID()",
    "SELECT last_insert_id ( )",
    "CREATE TABLE temporary_things (a INT)",
    "CREATE USER 'u'@'%' IDENTIFIED BY 'p'",
    "GRANT SELECT ON db.* TO app@'%'",
    "DROP USER u@localhost",
    "DROP TEMPORARY TABLE IF EXISTS t",
    "DEALLOCATE PREPARE s",
    "EXECUTE s",
    "SHOW TABLES",
    "FLUSH TABLES",
    "CALL p()",
    "KILL QUERY 12"
  ])("does not pin: %s", (sql) => {
    expect(statementEffects(sql)).toEqual({})
  })

  it.each([
    ["SET @x = 1", "user variable"],
    ["set @x := 1, @y = 2", "user variable"],
    ["SELECT @x", "user variable"],
    ["SELECT a INTO @x FROM t", "user variable"],
    ["SELECT @`odd name`, @'q', @\"dq\"", "user variable"],
    ["UPDATE t SET a = @rownum := @rownum + 1", "user variable"],
    ["SET sql_mode = ''", "session variable"],
    ["SET SESSION sql_mode = 'ANSI'", "session variable"],
    ["SET LOCAL wait_timeout = 5", "session variable"],
    ["SET @@sql_mode = ''", "session variable"],
    ["SET @@session.time_zone = '+00:00'", "session variable"],
    ["SET @@local.time_zone = '+00:00'", "session variable"],
    ["SET autocommit = 0, sql_mode = ''", "session variable"],
    ["SET GLOBAL a = 1, SESSION b = 2", "session variable"],
    ["SET @@global.a = 1, b = 2", "session variable"],
    ["SET `sql_mode` = ''", "session variable"],
    ["SET NAMES utf8mb4", "SET NAMES"],
    ["SET NAMES 'utf8mb4' COLLATE 'utf8mb4_bin'", "SET NAMES"],
    ["SET CHARACTER SET latin1", "SET NAMES"],
    ["SET CHARSET latin1", "SET NAMES"],
    ["SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "SET TRANSACTION"],
    ["SET SESSION TRANSACTION READ ONLY", "session variable"],
    ["SET ROLE admin", "SET ROLE"],
    ["SET STATEMENT max_statement_time = 1 FOR SET @x = 1", "user variable"],
    ["CREATE TEMPORARY TABLE t (a INT)", "temporary table"],
    ["create or replace temporary table t select 1", "temporary table"],
    ["CREATE TEMPORARY TABLE IF NOT EXISTS t LIKE u", "temporary table"],
    ["LOCK TABLES t READ", "LOCK TABLES"],
    ["lock table t write, u read", "LOCK TABLES"],
    ["FLUSH TABLES WITH READ LOCK", "FLUSH TABLES WITH READ LOCK"],
    ["FLUSH TABLES t FOR EXPORT", "FLUSH TABLES FOR EXPORT"],
    ["SELECT GET_LOCK('l', 10)", "GET_LOCK"],
    ["DO get_lock ('l', 0)", "GET_LOCK"],
    ["SELECT IF(GET_LOCK('l', 1), 'y', 'n')", "GET_LOCK"],
    ["PREPARE s FROM 'SELECT 1'", "PREPARE"],
    ["SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 1", "SQL_CALC_FOUND_ROWS"],
    ["UPDATE seq SET id = LAST_INSERT_ID(id + 1)", "LAST_INSERT_ID(expr)"],
    ["XA START 'x'", "XA transaction"],
    ["HANDLER t OPEN", "HANDLER"],
    ["BACKUP STAGE START", "BACKUP STAGE"],
    ["BACKUP LOCK t", "BACKUP LOCK"],
    ["LOCK INSTANCE FOR BACKUP", "LOCK INSTANCE FOR BACKUP"]
  ])("pins: %s", (sql, what) => {
    expect(statementEffects(sql).pins).toEqual([what])
  })

  it.each([
    ["UNLOCK TABLES", "UNLOCK TABLES"],
    ["unlock table", "UNLOCK TABLES"],
    ["SELECT RELEASE_ALL_LOCKS()", "RELEASE_ALL_LOCKS"],
    ["XA COMMIT 'x'", "XA COMMIT"],
    ["XA ROLLBACK 'x'", "XA ROLLBACK"],
    ["BACKUP STAGE END", "BACKUP STAGE END"],
    ["BACKUP UNLOCK", "BACKUP UNLOCK"],
    ["UNLOCK INSTANCE", "UNLOCK INSTANCE"]
  ])("unpins: %s", (sql, what) => {
    expect(statementEffects(sql)).toEqual({ unpins: [what] })
    expect(Object.keys(RELEASES)).toContain(what)
  })

  it("reads every statement of a multi-statement text", () => {
    expect(statementEffects("SELECT 1; SET @a = 1; SELECT 2")).toEqual({ pins: ["user variable"] })
    expect(statementEffects("SELECT 1;;; ;CREATE TEMPORARY TABLE x (a int);")).toEqual({ pins: ["temporary table"] })
    expect(statementEffects("USE a; USE b; SELECT 1")).toEqual({ use: "b" })
  })

  it("reports every kind a text pins, each once, in the order they first appear", () => {
    expect(statementEffects("LOCK TABLES t READ; SET @x = 1")).toEqual({ pins: ["LOCK TABLES", "user variable"] })
    expect(statementEffects("SET @a = 1, sql_mode = ''; SELECT @a, GET_LOCK('l', 1); SET @b = 2")).toEqual({
      pins: ["user variable", "session variable", "GET_LOCK"]
    })
    expect(statementEffects("CREATE TEMPORARY TABLE x (a INT); PREPARE s FROM 'SELECT 1'; SET NAMES utf8")).toEqual({
      pins: ["temporary table", "PREPARE", "SET NAMES"]
    })
  })

  it("leaves what the statements leave in order: a release undoes only the pins before it", () => {
    // Made and undone in the text: only the release is left to report (the session resets the connection for it).
    expect(statementEffects("LOCK TABLES t WRITE; INSERT INTO t VALUES (1); UNLOCK TABLES")).toEqual({
      unpins: ["UNLOCK TABLES"]
    })
    // Undone, then made again: it stays.
    expect(statementEffects("UNLOCK TABLES; LOCK TABLES t READ")).toEqual({
      pins: ["LOCK TABLES"],
      unpins: ["UNLOCK TABLES"]
    })
    expect(statementEffects("LOCK TABLES t READ; UNLOCK TABLES; LOCK TABLE u WRITE")).toEqual({
      pins: ["LOCK TABLES"],
      unpins: ["UNLOCK TABLES"]
    })
    // A release undoes its own kinds only: the user variable stays.
    expect(statementEffects("LOCK TABLES t READ; SET @x = 1; UNLOCK TABLES")).toEqual({
      pins: ["user variable"],
      unpins: ["UNLOCK TABLES"]
    })
    expect(
      statementEffects("FLUSH TABLES WITH READ LOCK; SELECT GET_LOCK('l', 1); UNLOCK TABLES; DO RELEASE_ALL_LOCKS()")
    ).toEqual({ unpins: ["UNLOCK TABLES", "RELEASE_ALL_LOCKS"] })
    expect(statementEffects("XA START 'x'; XA COMMIT 'x'; XA START 'y'; XA ROLLBACK 'y'; UNLOCK TABLES")).toEqual({
      unpins: ["XA COMMIT", "XA ROLLBACK", "UNLOCK TABLES"]
    })
  })

  it("answers one shared object, allocated once, for every text that touches no session state", () => {
    const none = statementEffects("SELECT 1")
    expect(statementEffects("UPDATE t SET a = 1; SELECT 'SET @x'")).toBe(none)
    expect(Object.isFrozen(none)).toBe(true)
  })

  it.each([
    ["USE t2", "t2"],
    ["use `my db`", "my db"],
    ["USE `we``ird`", "we`ird"],
    ["  /* hi */ USE -- comment\n t1 ;", "t1"],
    ["# first\nUSE t1", "t1"],
    ["/*!40101 USE t1 */", "t1"],
    ["USE Übung", "Übung"],
    ["USE t2; SELECT @@port", "t2"]
  ])("finds the database of %j", (sql, db) => {
    expect(statementEffects(sql).use).toBe(db)
  })

  it("skips strings, quoted names and comments", () => {
    for (const sql of [
      "SELECT '@x'",
      'SELECT "@x"',
      "SELECT 'it''s @x'",
      "SELECT 'a\\'@x'",
      "SELECT `@x` FROM t",
      "SELECT 1 /* SET @x = 1 */",
      "SELECT 1 -- SET @x = 1",
      "SELECT 1 # LOCK TABLES t READ",
      "SELECT 'GET_LOCK(1)'",
      "/* LOCK TABLES */ SELECT 1",
      "SELECT 1 /*+ SET_VAR(sort_buffer_size = 16M) */"
    ]) {
      expect(statementEffects(sql), sql).toEqual({})
    }
    // "--" without a space after it is two minus signs, not a comment.
    expect(pins("SELECT 1--@x")).toBe("user variable")
  })

  it("reads strings with NO_BACKSLASH_ESCAPES as the server does", () => {
    // Without escapes 'a\' is a whole string, and what follows it is code.
    expect(statementEffects("SELECT 'a\\', @x", true).pins).toEqual(["user variable"])
    expect(statementEffects("SELECT 'a\\', @x").pins).toBeUndefined()
  })

  it("reads executable comments as code, as MySQL and MariaDB run them", () => {
    expect(pins("/*!40101 SET NAMES utf8 */")).toBe("SET NAMES")
    expect(pins("/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;")).toBe("user variable")
    expect(pins("/*M!100100 LOCK TABLES t READ */")).toBe("LOCK TABLES")
    expect(pins("SELECT 1 /*! , GET_LOCK('x', 1) */")).toBe("GET_LOCK")
    expect(pins("/*!50001 CREATE TEMPORARY TABLE t (a int) */")).toBe("temporary table")
  })

  it("skips the bodies of stored programs, which run later", () => {
    const procedure = `CREATE DEFINER=\`root\`@\`localhost\` PROCEDURE p(IN a INT)
      BEGIN
        DECLARE x INT DEFAULT 0;
        SET @counter = @counter + 1;
        SET sql_mode = '';
        IF a > 0 THEN CREATE TEMPORARY TABLE tmp (b INT); END IF;
        CASE a WHEN 1 THEN SELECT 1; ELSE BEGIN SELECT 2; END; END CASE;
        lbl: LOOP LEAVE lbl; END LOOP lbl;
        SET x = CASE WHEN a THEN 1 ELSE 2 END;
      END`
    expect(statementEffects(procedure)).toEqual({})
    expect(statementEffects(`${procedure}; SET @after = 1`)).toEqual({ pins: ["user variable"] })
    expect(statementEffects("CREATE FUNCTION f() RETURNS INT RETURN @x; SELECT 1")).toEqual({})
    expect(statementEffects("CREATE DEFINER = app@'%' TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET @n = 1")).toEqual(
      {}
    )
    expect(statementEffects("CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO SET @x = 1")).toEqual({})
  })

  it("reads the statements of an anonymous block, which runs now", () => {
    expect(pins("BEGIN NOT ATOMIC SET sql_mode = ''; SELECT 1; END")).toBe("session variable")
    expect(pins("BEGIN NOT ATOMIC IF 1 THEN CREATE TEMPORARY TABLE t (a INT); END IF; END")).toBe("temporary table")
  })

  it("tells user@host account names from user variables", () => {
    expect(statementEffects("CREATE USER app@localhost")).toEqual({})
    expect(statementEffects("SHOW GRANTS FOR 'app'@'%'")).toEqual({})
    expect(statementEffects("RENAME USER `a`@`h` TO `b`@`h`")).toEqual({})
    expect(pins("SELECT 1 FROM t WHERE a = @b")).toBe("user variable")
  })

  it("never throws and always answers lists of distinct known kinds, whatever the text (fast-check)", () => {
    const pieces = fc.constantFrom(
      "SET ",
      "@",
      "@@",
      "'",
      '"',
      "`",
      "/*",
      "*/",
      "/*!",
      "/*M!",
      "--",
      "-- ",
      "#",
      "\n",
      ";",
      "(",
      ")",
      ",",
      ".",
      "=",
      "\\",
      "USE ",
      "LOCK ",
      "CREATE ",
      "TEMPORARY ",
      "PROCEDURE ",
      "BEGIN ",
      "END ",
      "CASE ",
      "GET_LOCK",
      "x",
      " "
    )
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 80 }),
          fc.array(pieces, { maxLength: 40 }).map((a) => a.join(""))
        ),
        fc.boolean(),
        (sql, noBackslashEscapes) => {
          const { pins, unpins, use, ...other } = statementEffects(sql, noBackslashEscapes)
          expect(other).toEqual({})
          if (use !== undefined) expect(typeof use).toBe("string")
          for (const list of [pins, unpins]) {
            if (list === undefined) continue
            expect(list.length).toBeGreaterThan(0)
            expect(new Set(list).size).toBe(list.length)
            for (const v of list) expect(typeof v).toBe("string")
          }
          for (const u of unpins ?? []) expect(Object.keys(RELEASES)).toContain(u)
        }
      ),
      { numRuns: 3000 }
    )
  })

  it("pins any text that assigns a user variable, wherever it stands among other statements (fast-check)", () => {
    const harmless = fc.constantFrom("SELECT 1", "SELECT 'a;b'", "UPDATE t SET a = 1", "/* c */ SELECT 2", "COMMIT")
    fc.assert(
      fc.property(fc.array(harmless, { maxLength: 5 }), fc.array(harmless, { maxLength: 5 }), (before, after) => {
        const sql = [...before, "SET @v = 1", ...after].join("; ")
        expect(statementEffects(sql).pins).toEqual(["user variable"])
        expect(statementEffects([...before, ...after].join("; "))).toEqual({})
      })
    )
  })
})
