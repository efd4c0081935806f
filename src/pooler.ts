/**
 * What a Postgres URL's `pooler` and `prepare` options mean for the core and
 * the drivers (docs/poolers.md). Behind a pooler in transaction mode
 * (PgBouncer's `pool_mode = transaction`), a client connection gets a server
 * session for one transaction at a time: whatever outlives a transaction
 * (SET, named prepared statements, advisory locks, WITH HOLD cursors) lands
 * on a session other clients share next.
 *
 * @module
 */
import { ConfigError } from "./errors.ts";
import type { DatabaseUrl } from "./url.ts";

/** True when `url` says its server hands out a session per transaction (`pooler=transaction`). */
export function transactionPooled(url: DatabaseUrl): boolean {
  return url.options.pooler === "transaction";
}

/**
 * Whether drivers may use named (server-side) prepared statements on
 * `url`'s server: the URL's `prepare`, else not behind a transaction pooler
 * (PgBouncer before 1.21 does not carry them from one server session to the next).
 */
export function namedStatements(url: DatabaseUrl): boolean {
  const { prepare } = url.options;
  return prepare === undefined ? !transactionPooled(url) : prepare === true;
}

/**
 * `url` itself, refused (`ConfigError`, code `ROOST_POOLER_SESSION_STATE`)
 * when it asks behind a transaction pooler for a statement timeout: a
 * session's SET would land on a server session other clients get next, and
 * not on the ones this client's later statements get.
 */
export function checkPooled(url: DatabaseUrl): DatabaseUrl {
  if (transactionPooled(url) && url.options.statement_timeout !== undefined) {
    throw new ConfigError(
      "statementTimeout (statement_timeout) is a session setting, which pooler=transaction cannot keep: set it on the " +
        "role or database (ALTER ROLE … SET statement_timeout), or use pooler=session or the server's own URL",
      { code: "ROOST_POOLER_SESSION_STATE" },
    );
  }
  return url;
}
