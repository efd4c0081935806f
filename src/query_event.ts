/**
 * What the `onQuery` hook is told after every statement: where it ran, why
 * there, how long it took and how it failed.
 *
 * @module
 */

/** Why a query ran where it did, as reported to `onQuery`. */
export type RouteReason =
  | "write"
  | "read"
  | "replica-scope"
  | "primary-scope"
  | "read-your-writes"
  | "fallback"
  | "held";

/** What the `onQuery` hook receives after every query. Parameters are never included. */
export interface QueryEvent {
  /** Which server ran it. */
  readonly served: "primary" | "replica";
  /** The replica's position in the `replicas` option, when a replica ran it. */
  readonly replica?: number;
  /** The server's URL, password redacted. */
  readonly url: string;
  /** Why the query ran there. */
  readonly reason: RouteReason;
  /** The method that ran it. */
  readonly method: "execute" | "executeMany" | "fetchAll" | "fetchOne" | "fetchRows" | "iterate";
  /** The SQL text as sent (placeholders, no values). */
  readonly sql: string;
  /** The parameters (every set's, in order, for `executeMany`); only with the `debugParameters` option. */
  readonly parameters?: readonly unknown[];
  /** Milliseconds from sending the query to its last row (or its error). */
  readonly duration: number;
  /** The error it failed with; a failed replica read that was retried elsewhere is reported too. */
  readonly error?: unknown;
}

/** Receives a {@linkcode QueryEvent} after every query; errors it throws are ignored. */
export type QueryHook = (event: QueryEvent) => void;
