/**
 * deno-postgres's `Client` as Roost configures it: the part of the library
 * the driver uses, typed here (the package is loaded at run time), the
 * client's options from a URL, and TLS with `sslmode` carried out as Roost
 * promises (no silent fall-back to plain text).
 *
 * @module
 */
import { ConfigError, messageOf } from "../../errors.ts";
import type { DatabaseUrl } from "../../url.ts";
import { tlsRequest } from "../shared/tls.ts";
import { decoders } from "./deno_postgres_decoders.ts";
import { postgresSessionParameters } from "./session.ts";

/** A parameter as deno-postgres sends it: text, binary (a Uint8Array, for bytea) or SQL NULL. */
export type EncodedParam = string | Uint8Array | null;

/** The options of deno-postgres's `Client` this driver sets. */
export interface PgClientOptions {
  hostname: string;
  port: number;
  host_type: "tcp";
  user?: string;
  password?: string;
  database?: string;
  applicationName?: string;
  /** Server settings sent at startup (`--name=value`). */
  options?: Record<string, string>;
  tls: { enabled: boolean; enforce: boolean; caCertificates: string[] };
  /** `attempts: 0`: connect once, and never reconnect behind Roost's back. */
  connection: { attempts: number };
  /** `debug: false`: deno-postgres logs neither queries nor the server's notices. */
  controls: { debug: boolean; decoders: Record<number, (text: string) => unknown> };
}

/** What `queryArray` returns: rows as arrays, the command's row count, the columns. */
export interface PgArrayResult {
  rows: unknown[][];
  rowCount?: number;
  readonly rowDescription?: { columns: readonly { name: string }[] };
}

/** The part of deno-postgres's `Client` this driver uses. */
export interface PgClient {
  readonly connected: boolean;
  readonly session?: { readonly pid?: number };
  connect(): Promise<void>;
  queryArray(query: {
    text: string;
    args?: unknown[];
    encoder?: (value: unknown, index: number) => EncodedParam;
  }): Promise<PgArrayResult>;
  end(): Promise<void>;
}

/** The `@db/postgres` module, typed by the part this driver uses. */
export interface PostgresModule {
  Client: new (options: PgClientOptions) => PgClient;
}

/** The TLS options of a client that connects in plain text. */
const plainText: PgClientOptions["tls"] = { enabled: false, enforce: false, caCertificates: [] };

/**
 * `sslmode` as deno-postgres's TLS options. Deno always verifies the
 * server's certificate chain and host name, so `require` and `verify-ca`
 * verify as much as `verify-full`; `sslrootcert` adds a CA certificate (an
 * unreadable file is a `ConfigError`). TLS is always enforced: the library's
 * own fall-back to plain text after a failed certificate check is never
 * used (see {@link TlsFallbackClient} for `prefer` and `allow`).
 */
function tlsOptions(url: DatabaseUrl): PgClientOptions["tls"] {
  if (url.options.sslmode === undefined || url.options.sslmode === "disable") return plainText;
  if (url.options.sslcert !== undefined || url.options.sslkey !== undefined) {
    throw new ConfigError("deno-postgres cannot present a client certificate (sslcert, sslkey): use postgres-js");
  }
  const request = tlsRequest(url);
  return { enabled: true, enforce: true, caCertificates: request.ca === undefined ? [] : [request.ca] };
}

/** The library's message when the server answers the TLS request with "no". */
const tlsRefusedByServer = /isn't accepting TLS/;

/** The library's message when the TLS handshake fails on the server's certificate. */
const certificateRejected = /certificate/i;

/**
 * A client for `sslmode=prefer` or `allow`: it asks for TLS, enforced, and
 * connects in plain text only when the server has no TLS at all. A server
 * that offers TLS with a certificate Deno cannot verify is a connection
 * error, never a silent fall-back to plain text (the library's own
 * fall-back also writes to stderr). Every mode's certificate failure names
 * what to change.
 */
export class TlsFallbackClient implements PgClient {
  #client: PgClient;
  readonly #make: (tls: PgClientOptions["tls"]) => PgClient;
  readonly #prefer: boolean;

  constructor(make: (tls: PgClientOptions["tls"]) => PgClient, tls: PgClientOptions["tls"], prefer: boolean) {
    this.#make = make;
    this.#prefer = prefer && tls.enabled;
    this.#client = make(tls);
  }

  get connected(): boolean {
    return this.#client.connected;
  }

  get session(): PgClient["session"] {
    return this.#client.session;
  }

  async connect(): Promise<void> {
    try {
      await this.#client.connect();
    } catch (error) {
      const message = messageOf(error);
      if (this.#prefer && tlsRefusedByServer.test(message)) {
        await this.#client.end().catch(() => {});
        this.#client = this.#make(plainText);
        return await this.#client.connect();
      }
      if (certificateRejected.test(message) && !tlsRefusedByServer.test(message)) {
        throw new Error(
          `${message} (deno-postgres verifies the server's certificate and host name in every sslmode, ` +
            "and never falls back to plain text when the check fails: name the server's CA with sslrootcert " +
            "and connect by a host name its certificate lists, or use postgres-js)",
          { cause: error },
        );
      }
      throw error;
    }
  }

  queryArray(query: Parameters<PgClient["queryArray"]>[0]): Promise<PgArrayResult> {
    return this.#client.queryArray(query);
  }

  end(): Promise<void> {
    return this.#client.end();
  }
}

/** The deno-postgres client options for a URL: host, credentials, TLS, connect timeout and session parameters (see `pooledSessionSetup`). */
export function clientOptions(url: DatabaseUrl): PgClientOptions {
  const { application_name, ...parameters } = postgresSessionParameters(url);
  const options: PgClientOptions = {
    hostname: url.host,
    port: url.port,
    host_type: "tcp",
    user: url.user || undefined,
    password: url.password() || undefined,
    // As libpq and postgres.js: no database named, the user's.
    database: url.database || url.user || undefined,
    tls: tlsOptions(url),
    connection: { attempts: 0 },
    controls: { debug: false, decoders },
    // PgBouncer refuses an `options` start-up parameter (and would not forward it), the one way deno-postgres has
    // to send these: behind a pooler they are set after connecting in session mode, and not at all in
    // transaction mode (docs/poolers.md).
    options: url.options.pooler === undefined ? parameters : {},
  };
  if (application_name !== undefined) options.applicationName = application_name;
  return options;
}

/**
 * The statements that set a session's parameters behind `pooler=session`,
 * where `clientOptions` leaves them out of the start-up message; none
 * without a pooler (sent at start-up) or behind `pooler=transaction` (a SET
 * would land on a server session the pooler's other clients share).
 */
export function pooledSessionSetup(url: DatabaseUrl): string[] {
  if (url.options.pooler !== "session") return [];
  const { application_name: _, ...parameters } = postgresSessionParameters(url);
  return Object.entries(parameters).map(([name, value]) => `SET ${name} TO '${value.replaceAll("'", "''")}'`);
}
