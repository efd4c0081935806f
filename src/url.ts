/**
 * Database URLs: the scheme picks the dialect, the query string carries typed
 * options. The password is kept in a private field and never printed.
 *
 * @module
 */
import type { DialectName } from "./dialect.ts";
import { ConfigError } from "./errors.ts";

/** A URL query-string option's parsed value. */
export type UrlOptionValue = string | number | boolean;

type OptionParser = (raw: string, key: string) => UrlOptionValue;

function oneOf(...allowed: string[]): OptionParser {
  return (raw, key) => {
    if (!allowed.includes(raw)) throw new ConfigError(`URL option "${key}" must be one of ${allowed.join(", ")}`);
    return raw;
  };
}

/**
 * A whole number from 0 to `most`. Durations stop at what a JavaScript
 * timer can wait (`connect_timeout`, in seconds) or the server takes
 * (`statement_timeout`, `busy_timeout`: a 32-bit count of milliseconds):
 * past it a timer fires at once, or every connection fails to open.
 */
function integer(most: number): OptionParser {
  return (raw, key) => {
    const value = /^\d{1,10}$/.test(raw) ? Number(raw) : NaN;
    if (!(value <= most)) throw new ConfigError(`URL option "${key}" must be a whole number from 0 to ${most}`);
    return value;
  };
}

/** The most milliseconds a 32-bit signed count holds: SQLite's busy timeout, Postgres' statement_timeout, a timer. */
export const mostMilliseconds = 2_147_483_647;
/** Milliseconds a timer can wait, in whole seconds. */
const mostSeconds = Math.floor(mostMilliseconds / 1000);

/** Seconds a connect may take when the URL names no `connect_timeout`. */
export const defaultConnectTimeout = 30;

/** A URL's `connect_timeout` in seconds, or {@linkcode defaultConnectTimeout}; 0 sets no deadline (as in libpq). */
export function connectTimeoutSeconds(url: { readonly options?: { readonly connect_timeout?: unknown } }): number {
  const seconds = url.options?.connect_timeout;
  return seconds === undefined ? defaultConnectTimeout : Number(seconds);
}

const boolean: OptionParser = (raw, key) => {
  if (raw === "true" || raw === "on" || raw === "1") return true;
  if (raw === "false" || raw === "off" || raw === "0") return false;
  throw new ConfigError(`URL option "${key}" must be true or false`);
};

const text: OptionParser = (raw) => raw;

/**
 * libpq's `target_session_attrs`: which kind of server a connection of a
 * multi-host URL must reach (see src/hosts.ts).
 */
export type TargetSessionAttrs = "any" | "read-write" | "read-only" | "primary" | "standby" | "prefer-standby";

/** The values of `target_session_attrs`, in the order messages list them. */
const targetSessionAttrs: readonly TargetSessionAttrs[] = [
  "any",
  "read-write",
  "read-only",
  "primary",
  "standby",
  "prefer-standby",
];

/** The options that choose among a URL's hosts, the same for Postgres and MySQL. */
const hostSelection: Record<string, OptionParser> = {
  target_session_attrs: oneOf(...targetSessionAttrs),
  load_balance_hosts: oneOf("disable", "random"),
};

/** The option sets of URLs: one per dialect, PGlite's (a Postgres that takes no server options) and D1's. */
type OptionSet = DialectName | "pglite" | "d1";

/** The query-string options each dialect accepts, with their parsers. */
const optionParsers: Record<OptionSet, Record<string, OptionParser>> = {
  sqlite: {
    mode: oneOf("ro", "rw", "rwc"),
    busy_timeout: integer(mostMilliseconds),
    journal_mode: oneOf("wal", "delete", "truncate", "persist", "memory", "off"),
    foreign_keys: boolean,
    worker: boolean,
  },
  postgres: {
    sslmode: oneOf("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    sslrootcert: text,
    sslcert: text,
    sslkey: text,
    connect_timeout: integer(mostSeconds),
    application_name: text,
    statement_timeout: integer(mostMilliseconds),
    // What kind of session the URL's server gives (a pooler such as PgBouncer in front): src/pooler.ts.
    pooler: oneOf("transaction", "session"),
    // Named (server-side) prepared statements: default off with pooler=transaction, else on.
    prepare: boolean,
    // The neon driver's WebSocket proxy (ws:// or wss://), checked by that driver.
    wsproxy: text,
    ...hostSelection,
  },
  // Nothing of a server applies (TLS, timeouts, application name), and PGlite cannot time a statement.
  pglite: {},
  // A D1 binding is configured in wrangler.toml and in the d1() driver, not in the URL.
  d1: {},
  mysql: {
    sslmode: oneOf("disable", "preferred", "required", "verify_ca", "verify_identity"),
    sslrootcert: text,
    sslcert: text,
    sslkey: text,
    connect_timeout: integer(mostSeconds),
    charset: text,
    statement_timeout: integer(mostMilliseconds),
    ...hostSelection,
  },
};

const schemes: Record<string, DialectName> = {
  "postgres:": "postgres",
  "postgresql:": "postgres",
  "pglite:": "postgres",
  "mysql:": "mysql",
  "mariadb:": "mysql",
  "sqlite:": "sqlite",
  "d1:": "sqlite",
};

const defaultPorts: Record<DialectName, number> = { postgres: 5432, mysql: 3306, sqlite: 0 };

/** `host:port` as a URL writes it (an IPv6 address in brackets). */
export function hostText({ host, port }: HostAddress): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

const inspectCustom = Symbol.for("nodejs.util.inspect.custom");
const denoInspect = Symbol.for("Deno.customInspect");

/** One server of a URL's host list. */
export interface HostAddress {
  /** Host name or IP address (an IPv6 address without brackets). */
  readonly host: string;
  /** TCP port. */
  readonly port: number;
}

/**
 * The parts of a parsed URL, the password excepted. `hosts`, when given
 * (not empty), is the whole host list and overrides `host` and `port`.
 */
export type DatabaseUrlParts =
  & Pick<DatabaseUrl, "dialect" | "scheme" | "host" | "port" | "user" | "database" | "options">
  & { hosts?: readonly HostAddress[] };

/**
 * A parsed, validated database URL. `toString()`, `toJSON()` and inspection
 * show it with the password replaced by `***`.
 */
export class DatabaseUrl {
  /** The dialect the scheme selects. */
  readonly dialect: DialectName;
  /** The scheme as written (`postgresql:`, `mariadb:` …). */
  readonly scheme: string;
  /** Server host (empty for SQLite and PGlite). */
  readonly host: string;
  /** Server port (0 for SQLite and PGlite). */
  readonly port: number;
  /** User name (empty when none). */
  readonly user: string;
  /** Database name on a server; the file path (or `:memory:`) for SQLite; the data directory (or `:memory:`) for PGlite. */
  readonly database: string;
  /** The validated query-string options. */
  readonly options: Readonly<Record<string, UrlOptionValue>>;
  #password: string;
  #hosts: readonly HostAddress[];

  /** Builds a URL from its parts; use {@linkcode parseDatabaseUrl} to parse one. */
  constructor(parts: DatabaseUrlParts, password = "") {
    this.dialect = parts.dialect;
    this.scheme = parts.scheme;
    const hosts = parts.hosts?.length ? parts.hosts : [{ host: parts.host, port: parts.port }];
    this.#hosts = Object.freeze(hosts.map(({ host, port }) => Object.freeze({ host, port })));
    this.host = this.#hosts[0].host;
    this.port = this.#hosts[0].port;
    this.user = parts.user;
    this.database = parts.database;
    this.options = Object.freeze({ ...parts.options });
    this.#password = password;
  }

  /**
   * Every server of the URL, in the order written: one for a plain URL, more
   * for a multi-host one (`postgres://h1:5432,h2:5433/db`), whose first
   * entry is `host` and `port`. A new connection goes to the first that
   * answers and matches `target_session_attrs` (docs/urls-and-tls.md). Not
   * an own property: a copy made by spreading (`{ ...url }`) loses it, so
   * pass it on as `hosts`.
   */
  get hosts(): readonly HostAddress[] {
    return this.#hosts;
  }

  /** The password, for drivers only; never printed. */
  password(): string {
    return this.#password;
  }

  /** True for SQLite's `:memory:` database and PGlite's (`pglite::memory:`). */
  get inMemory(): boolean {
    return (this.dialect === "sqlite" || this.embedded) && this.database === ":memory:";
  }

  /**
   * True for a Cloudflare D1 database (`d1:` URLs), reached through a
   * Worker's binding, which the `d1` driver object carries: no socket, so
   * a pool keeps one connection (one D1 session) and may open one per context.
   */
  get bound(): boolean {
    return this.scheme === "d1:";
  }

  /**
   * True for a database that lives inside this process (`pglite:`
   * URLs, Postgres compiled to WebAssembly): one connection holds it whole,
   * so a pool keeps exactly one.
   */
  get embedded(): boolean {
    return this.scheme === "pglite:";
  }

  /** The URL with the password replaced by `***`. */
  toString(): string {
    const query = Object.entries(this.options).map(([key, value]) => `${key}=${encodeURIComponent(String(value))}`)
      .join("&");
    const suffix = query ? `?${query}` : "";
    if (this.dialect === "sqlite" || this.embedded) return `${this.scheme}${this.database}${suffix}`;
    const auth = this.user ? `${encodeURIComponent(this.user)}${this.#password ? ":***" : ""}@` : "";
    const hosts = this.#hosts.map(hostText).join(",");
    return `${this.scheme}//${auth}${hosts}/${encodeURIComponent(this.database)}${suffix}`;
  }

  /** The redacted URL, so `JSON.stringify` never shows the password. */
  toJSON(): string {
    return this.toString();
  }

  /** Node, Bun: inspection shows the redacted URL. */
  [inspectCustom](): string {
    return `DatabaseUrl <${this.toString()}>`;
  }

  /** Deno: inspection shows the redacted URL. */
  [denoInspect](): string {
    return `DatabaseUrl <${this.toString()}>`;
  }
}

function parseOptions(set: OptionSet, query: string): Record<string, UrlOptionValue> {
  const options: Record<string, UrlOptionValue> = {};
  if (query === "") return options;
  const parsers = optionParsers[set];
  for (const pair of query.split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const key = decode(eq < 0 ? pair : pair.slice(0, eq), "option name", true);
    const raw = decode(eq < 0 ? "" : pair.slice(eq + 1), `option "${key}"`, true);
    const parse = Object.hasOwn(parsers, key) ? parsers[key] : undefined;
    if (!parse) {
      throw new ConfigError(`unknown ${set} URL option "${key}" (known: ${Object.keys(parsers).join(", ")})`);
    }
    if (Object.hasOwn(options, key)) throw new ConfigError(`URL option "${key}" is given twice`);
    options[key] = parse(raw, key);
  }
  return options;
}

/** Percent-decodes part of a URL; `+` is a space only in query-string values (form encoding), a plus elsewhere. */
function decode(value: string, what: string, plusIsSpace = false): string {
  try {
    return decodeURIComponent(plusIsSpace ? value.replaceAll("+", " ") : value);
  } catch {
    throw new ConfigError(`malformed percent-encoding in the URL's ${what}`);
  }
}

function splitQuery(rest: string): [string, string] {
  const at = rest.indexOf("?");
  return at < 0 ? [rest, ""] : [rest.slice(0, at), rest.slice(at + 1)];
}

/** How a URL naming a place on this machine is written: SQLite's files, PGlite's data directories. */
interface LocalForm {
  /** The engine, for messages. */
  name: string;
  /** What the URL names ("file", "directory") and an example name of one. */
  what: string;
  example: string;
  /** The dialect, and the option set its query string takes (see `optionParsers`). */
  dialect: DialectName;
  options: OptionSet;
}

const localForms: Record<string, LocalForm> = {
  "sqlite:": { name: "SQLite", what: "file", example: "app.db", dialect: "sqlite", options: "sqlite" },
  "pglite:": { name: "PGlite", what: "directory", example: "data", dialect: "postgres", options: "pglite" },
};

/**
 * The file or directory (or `:memory:`) a local URL's location names.
 * `:memory:` after any number of slashes is the in-memory database
 * (`sqlite::memory:`, and the `sqlite://:memory:` and `sqlite:///:memory:`
 * other libraries write); one slash or three or more start an absolute path,
 * none a relative one.
 */
function localPath(location: string, scheme: string, form: LocalForm): string {
  const slashes = /^\/*/.exec(location)![0].length;
  if (decode(location.slice(slashes), "path") === ":memory:") return ":memory:";
  if (slashes === 2) {
    throw new ConfigError(
      `a ${form.name} URL has no host: use ${scheme}:memory:, ${scheme}relative/path or ${scheme}///absolute/path`,
    );
  }
  return decode(slashes >= 3 ? location.slice(2) : location, "path");
}

/** True for a path naming the filesystem root itself or a file directly in it (`/app.db`, `//app.db`, `/x/../app.db`). */
function inRoot(path: string): boolean {
  if (!path.startsWith("/")) return false;
  const segments: string[] = [];
  for (const segment of path.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") segments.pop();
    else segments.push(segment);
  }
  return segments.length <= 1;
}

/**
 * A URL naming a place on this machine: a SQLite file, or a PGlite data
 * directory (Postgres in this process, the `pglite` driver), each possibly
 * `:memory:`. A file or directory directly in the filesystem root is refused
 * (`ROOST_SQLITE_ROOT_PATH`, `ROOST_PGLITE_ROOT_PATH`).
 */
function parseLocal(scheme: string, rest: string): DatabaseUrl {
  const form = localForms[scheme];
  const { name, what, example } = form;
  const [location, query] = splitQuery(rest);
  const database = localPath(location, scheme, form);
  if (database === "") {
    throw new ConfigError(
      `a ${name} URL needs a ${what} path or :memory: (${scheme}:memory:, ${scheme}path/to/${example})`,
    );
  }
  if (inRoot(database)) {
    throw new ConfigError(
      `the ${name} path "${database}" is in the filesystem root, which is never meant (${scheme}///${example} is ` +
        `/${example} here but ${example} in SQLAlchemy): for a ${what} relative to the working directory write ` +
        `${scheme}${example}; for an absolute path name its directory, as in ${scheme}///var/data/${example}`,
      { code: `ROOST_${name.toUpperCase()}_ROOT_PATH` },
    );
  }
  const options = parseOptions(form.options, query);
  return new DatabaseUrl({ dialect: form.dialect, scheme, host: "", port: 0, user: "", database, options });
}

/** A D1 URL: `d1:`, or `d1:NAME` naming the binding (for messages; the binding itself comes with the driver). */
function parseD1(rest: string): DatabaseUrl {
  const [name, query] = splitQuery(rest);
  if (!/^([A-Za-z_][A-Za-z0-9_]*)?$/.test(name)) {
    throw new ConfigError(
      "a D1 URL is d1: or d1:BINDING (the binding's name); the binding goes in driver: d1(env.DB)",
    );
  }
  const options = parseOptions("d1", query);
  return new DatabaseUrl({ dialect: "sqlite", scheme: "d1:", host: "", port: 0, user: "", database: name, options });
}

/** One entry of a URL's host list (`host`, `host:port`, `[::1]:port`); empty means localhost in a one-host URL. */
function parseHost(entry: string, dialect: DialectName, scheme: string, single: boolean): HostAddress {
  if (entry === "" && !single) throw new ConfigError("the URL's host list has an empty entry");
  let parsed: URL;
  try {
    // The WHATWG parser checks the name and the port; its errors quote the input, so they are not kept.
    parsed = new URL(`roost://${entry}`);
  } catch {
    throw new ConfigError(`malformed ${dialect} URL (expected ${scheme}//user:password@host:port,…/database)`);
  }
  let port = defaultPorts[dialect];
  if (parsed.port !== "") {
    port = Number(parsed.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ConfigError("the URL's port must be 1-65535");
  }
  return { host: parsed.hostname.replace(/^\[(.*)\]$/, "$1") || "localhost", port };
}

function parseServer(dialect: DialectName, scheme: string, rest: string): DatabaseUrl {
  if (!rest.startsWith("//")) {
    throw new ConfigError(`a ${dialect} URL looks like ${scheme}//user:password@host:port/database`);
  }
  // The authority is user:password@host:port, where libpq also takes a host list (host1:port1,host2:port2).
  const authority = /^\/\/([^/?#]*)/.exec(rest)![1];
  const at = authority.lastIndexOf("@");
  const entries = authority.slice(at + 1).split(",");
  const hosts = entries.map((entry) => parseHost(entry, dialect, scheme, entries.length === 1));
  let parsed: URL;
  try {
    // The WHATWG parser splits the user info and query; its errors quote the input, so they are not kept.
    parsed = new URL(`roost://${authority.slice(0, at + 1)}h${rest.slice(2 + authority.length)}`);
  } catch {
    throw new ConfigError(`malformed ${dialect} URL (expected ${scheme}//user:password@host:port/database)`);
  }
  // The path as written: the WHATWG parser would resolve a database named `.` or `..` away.
  const path = /^\/\/[^/?#]*\/?([^?#]*)/.exec(rest)?.[1] ?? "";
  if (path.includes("/")) throw new ConfigError("the URL's path must be just the database name");
  const options = parseOptions(dialect, parsed.search.replace(/^\?/, ""));
  const parts = {
    dialect,
    scheme,
    host: hosts[0].host,
    port: hosts[0].port,
    hosts,
    user: decode(parsed.username, "user name"),
    database: decode(path, "database name"),
    options,
  };
  return new DatabaseUrl(parts, decode(parsed.password, "password"));
}

/**
 * Parses and validates a database URL.
 *
 * Accepted forms: `postgres://user:pass@host:5432/db?sslmode=require`,
 * `postgresql://…`, `mysql://…`, `mariadb://…`, `sqlite::memory:` (also
 * `sqlite://:memory:` and `sqlite:///:memory:`), `sqlite:relative/path.db`,
 * `sqlite:///absolute/path.db`, and for PGlite (Postgres in this process, the
 * `pglite` driver) `pglite::memory:`, `pglite:relative/dir` and
 * `pglite:///absolute/dir`, and for Cloudflare D1 (the `d1` driver, given
 * the binding) `d1:` or `d1:BINDING`. Unknown or mistyped options throw
 * {@linkcode ConfigError}; so does a SQLite file directly in the filesystem
 * root (`sqlite:///app.db`: code `ROOST_SQLITE_ROOT_PATH`), which other
 * libraries read as a relative path. No message ever contains the password.
 *
 * @example
 * ```ts
 * import { parseDatabaseUrl } from "@roost/db";
 * const url = parseDatabaseUrl("postgres://app:secret@localhost/app");
 * console.log(String(url)); // postgres://app:***@localhost:5432/app
 * ```
 */
export function parseDatabaseUrl(url: string): DatabaseUrl {
  if (typeof url !== "string") throw new ConfigError("the database URL must be a string");
  const colon = url.indexOf(":");
  const scheme = colon < 0 ? "" : url.slice(0, colon + 1).toLowerCase();
  const dialect = Object.hasOwn(schemes, scheme) ? schemes[scheme] : undefined;
  if (!dialect) {
    throw new ConfigError(
      `unsupported database URL scheme${
        /^[a-z][a-z0-9+.-]*:$/.test(scheme) ? ` "${scheme}"` : ""
      } (use postgres:, postgresql:, mysql:, mariadb:, sqlite:, pglite: or d1:)`,
    );
  }
  const rest = url.slice(colon + 1);
  if (scheme === "d1:") return parseD1(rest);
  return Object.hasOwn(localForms, scheme) ? parseLocal(scheme, rest) : parseServer(dialect, scheme, rest);
}
