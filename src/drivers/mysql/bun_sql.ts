/**
 * Bun.SQL speaking MySQL and MariaDB: the MySQL flavour of the Bun.SQL
 * client (`shared/bun_sql.ts`), built from the MySQL pieces every MySQL
 * driver uses. Exported to users through `@roost/db/drivers/bun-sql`.
 *
 * @module
 */
import type { Driver } from "../../driver.ts";
import { exactInteger } from "../shared/values.ts";
import { executeBatched, inBatches } from "../shared/batch.ts";
import { bunSqlDriver, type Flavour } from "../shared/bun_sql.ts";
import { connectionLost, ownCode, sanitizedCause } from "../shared/errors.ts";
import { demandsTls } from "../shared/tls.ts";
import { connectTimeoutSeconds } from "../../url.ts";
import { serverOffersTls } from "./greeting.ts";
import { fatalMysqlErrors, mysqlErrorNames, redactMysqlValues } from "./errors.ts";
import { startMysqlSession } from "./session.ts";
import { mysqlParam, tinyintBoolean } from "./values.ts";

const tiny = 1;
const date = 10;

/**
 * The column types Bun.SQL reads as numbers (TINYINT, SMALLINT, INT, FLOAT,
 * DOUBLE, MEDIUMINT, YEAR; not BIGINT), Dates (TIMESTAMP, DATE, DATETIME) or
 * strings (TIME, DECIMAL).
 */
const plainTypes = new Set([1, 2, 3, 4, 5, 9, 13, 7, 10, 12, 11, 246]);

/**
 * The string types (VARCHAR, VAR_STRING, STRING: CHAR, VARCHAR, ENUM, SET),
 * which Bun.SQL reads as strings unless they are binary (BINARY, VARBINARY:
 * Buffers). Only those without MySQL's BINARY_FLAG are taken as plain (a
 * column of a `_bin` collation has it too, and is looked at needlessly);
 * TEXT and BLOB types are always looked at.
 */
const stringTypes = new Set([15, 253, 254]);
const binaryFlag = 128;

/** A Date Bun.SQL made of a DATE as its `YYYY-MM-DD` text (anything else as it is). */
function dateText(value: unknown): unknown {
  return value instanceof Date && !Number.isNaN(value.getTime()) ? value.toISOString().slice(0, 10) : value;
}

/** The fields of a Bun.SQL MySQL error a cause keeps: `code` is Bun's own (`ERR_MYSQL_…`, `SELF_SIGNED_CERT_IN_CHAIN`). */
const causeFields = ["code", "errno", "sqlState"];

const mysqlFlavour: Flavour = {
  dialect: "mysql",
  errors: {
    dialect: "mysql",
    cause: (error) => sanitizedCause(error, causeFields, redactMysqlValues),
    redact: redactMysqlValues,
    classify(error) {
      // A server error has a positive number; Bun's own errors (a certificate that does not verify) carry errno 0.
      const errno = typeof error.errno === "number" && error.errno > 0 ? error.errno : undefined;
      const state = typeof error.sqlState === "string" ? error.sqlState : undefined;
      const own = ownCode(error);
      return {
        code: errno === undefined ? own : mysqlErrorNames[errno] ?? state ?? String(errno),
        fatal: (errno !== undefined && fatalMysqlErrors.has(errno)) || connectionLost(own),
      };
    },
  },
  session: () => ({}),
  backendId: "CONNECTION_ID()",
  setUp: startMysqlSession,
  // Bun.SQL's "Authentication failed" with no server error number is its word for a server without TLS under
  // sslmode=required and stricter, and for its own failed TLS upgrade: the server's greeting tells them apart.
  async connectCode(url, code) {
    if (code !== "ERR_MYSQL_AUTHENTICATION_FAILED" || !demandsTls(url)) return code;
    const offers = await serverOffersTls(url.host, url.port, Math.min(connectTimeoutSeconds(url) || 5, 5));
    return offers === false ? "ROOST_TLS_NOT_OFFERED" : code;
  },
  param: mysqlParam,
  // DATE (Bun.SQL reads a Date at UTC midnight) as its text; TINYINT(1), which is what BOOLEAN means, as a boolean.
  convert: ({ type, length }) => type === date ? dateText : type === tiny && length === 1 ? tinyintBoolean : undefined,
  plain: ({ type, flags }) =>
    plainTypes.has(type) || (stringTypes.has(type) && flags !== undefined && (flags & binaryFlag) === 0),
  outcome(result) {
    const outcome: { rowCount: number; lastInsertId?: number | bigint } = { rowCount: result.affectedRows ?? 0 };
    if (result.lastInsertRowid) outcome.lastInsertId = exactInteger(result.lastInsertRowid);
    return outcome;
  },
  // A single-row insert becomes multi-row inserts; anything else runs once per set.
  executeMany: (calls, text, paramSets) => executeBatched(text, paramSets, calls.execute),
  // Bun.SQL has no row stream for MySQL: the rows are read first, then handed out in batches.
  async *stream(calls, text, params, batchSize, _placement, arrays) {
    yield* inBatches((arrays ? calls.arrays : calls.run)(text, params), batchSize);
  },
};

/** Bun.SQL speaking MySQL and MariaDB. */
export const bunSqlMysql: Driver = bunSqlDriver(mysqlFlavour);
