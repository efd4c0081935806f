/**
 * An in-memory driver for testing the pool and the router without a
 * database. Each host of a URL is a {@linkcode FakeServer} the test steers:
 * whether connects succeed, fail or hang until released; whether statements
 * answer at once or wait until the test finishes them; which rows they
 * return. Its connections count their pings, closes and destroys, can be
 * marked broken (or `unwatched`), and remember whether they were made
 * read-only, as a replica's are.
 *
 * ```ts
 * const fake = new FakeDriver();
 * const db = new Database("postgres://u@primary/db", { driver: fake, replicas: ["postgres://u@replica/db"] });
 * fake.server("replica").connects = "refuse";
 * ```
 */
import type { DialectName } from "../../src/dialect.ts";
import type { Driver, DriverConnection, ExecuteResult, Row, Rows } from "../../src/driver.ts";
import { ConnectionError, QueryError } from "../../src/errors.ts";
import type { PoolClock, PoolHooks } from "../../src/pool.ts";
import type { DatabaseUrl } from "../../src/url.ts";

/** The statements that make a session read-only, per dialect (see src/dialect.ts). */
const readOnlyStatements = new Set([
  "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
  "SET SESSION TRANSACTION READ ONLY",
  "PRAGMA query_only = ON",
]);

/** A deferred outcome the test decides. */
interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** One statement a fake connection received. */
export class FakeStatement {
  /** Its SQL text. */
  readonly text: string;
  /** Its parameters. */
  readonly params: readonly unknown[];
  /** The connection it ran on. */
  readonly connection: FakeConnection;
  /** Set once it answered or failed. */
  settled = false;
  readonly #outcome = deferred<Row[]>();

  constructor(text: string, params: readonly unknown[], connection: FakeConnection) {
    this.text = text;
    this.params = params;
    this.connection = connection;
  }

  /** What the connection's method awaits. */
  get result(): Promise<Row[]> {
    return this.#outcome.promise;
  }

  /** Answers it with `rows`. */
  finish(rows: Row[] = []): void {
    this.settled = true;
    this.#outcome.resolve(rows);
  }

  /** Fails it with `error`. */
  fail(error: unknown): void {
    this.settled = true;
    this.#outcome.reject(error);
  }
}

/** A connect waiting for the test (`connects = "hang"`). */
export interface HeldConnect {
  /** Lets it succeed. */
  accept(): void;
  /** Fails it with a `ConnectionError`. */
  refuse(message?: string): void;
  /** The signal the pool gave it (see `Driver.connect`); the fake connect ignores it, as a driver that cannot give up. */
  readonly signal: AbortSignal | undefined;
}

/** One fake server: the host part of a URL. */
export class FakeServer {
  /** The host it answers for. */
  readonly host: string;
  /** How the next connects end: at once, with a `ConnectionError`, or when the test settles them (`held`). */
  connects: "accept" | "refuse" | "hang" = "accept";
  /** Connects waiting for the test. */
  readonly held: HeldConnect[] = [];
  /** Connections opened, in order. */
  readonly connections: FakeConnection[] = [];
  /** Every statement received, in order (the read-only set-up included). */
  readonly statements: FakeStatement[] = [];
  /** When true, statements wait until the test finishes or fails them. */
  holdStatements = false;
  /** The rows a statement answers with when it answers at once. */
  answer: (text: string, params: readonly unknown[]) => Row[] = () => [{ value: 1 }];
  /** New connections say they cannot notice a dead socket while idle (see `DriverConnection.unwatched`). */
  unwatched = false;
  /** How many connects were tried. */
  attempts = 0;

  constructor(host: string) {
    this.host = host;
  }

  /** The statements other than a replica's read-only set-up, as text. */
  get queries(): string[] {
    return this.statements.filter((s) => !readOnlyStatements.has(s.text)).map((s) => s.text);
  }

  /** Statements still waiting for the test. */
  get running(): FakeStatement[] {
    return this.statements.filter((s) => !s.settled);
  }

  /** Connections not closed or destroyed. */
  get open(): FakeConnection[] {
    return this.connections.filter((c) => !c.closed);
  }

  /** Opens a connection as the `connects` setting says; a held connect keeps `signal` for the test to look at. */
  connect(signal?: AbortSignal): Promise<FakeConnection> {
    this.attempts++;
    if (this.connects === "refuse") {
      return Promise.reject(new ConnectionError(`fake server ${this.host} refused the connection`));
    }
    const opened = () => {
      const connection = new FakeConnection(this);
      this.connections.push(connection);
      return connection;
    };
    if (this.connects === "accept") return Promise.resolve(opened());
    const pending = deferred<FakeConnection>();
    this.held.push({
      accept: () => pending.resolve(opened()),
      refuse: (message = `fake server ${this.host} refused the connection`) =>
        pending.reject(new ConnectionError(message)),
      signal,
    });
    return pending.promise;
  }
}

/** A fake connection. */
export class FakeConnection implements DriverConnection {
  /** Its server. */
  readonly server: FakeServer;
  /** Its number on the server, from 1. */
  readonly id: number;
  /** Set by the test: the connection knows it is unusable. */
  broken = false;
  /** Whether it cannot notice a dead socket while idle. */
  unwatched: boolean;
  /** Set once it ran a read-only session statement (a replica's set-up). */
  readOnly = false;
  /** Set by the test: pings fail (as a dead socket would). */
  dead = false;
  /** How many times it was pinged, closed and destroyed. */
  pings = 0;
  closes = 0;
  destroys = 0;

  constructor(server: FakeServer) {
    this.server = server;
    this.id = server.connections.length + 1;
    this.unwatched = server.unwatched;
  }

  /** True once closed or destroyed. */
  get closed(): boolean {
    return this.closes + this.destroys > 0;
  }

  #run(text: string, params: readonly unknown[]): Promise<Row[]> {
    if (this.closed) return Promise.reject(new ConnectionError("fake connection is closed"));
    if (this.dead) {
      this.broken = true;
      return Promise.reject(new ConnectionError("fake connection lost"));
    }
    const statement = new FakeStatement(text, params, this);
    this.server.statements.push(statement);
    if (readOnlyStatements.has(text)) {
      this.readOnly = true;
      statement.finish([]);
    } else if (this.readOnly && !/^\s*(select|with|values|show|explain)\b/i.test(text)) {
      statement.fail(new QueryError("cannot execute in a read-only transaction", { code: "25006" }));
    } else if (!this.server.holdStatements) {
      statement.finish(this.server.answer(text, params));
    }
    return statement.result;
  }

  async execute(text: string, params: readonly unknown[]): Promise<ExecuteResult> {
    return { rowCount: (await this.#run(text, params)).length };
  }

  async executeMany(text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult> {
    let rowCount = 0;
    for (const params of paramSets) rowCount += (await this.execute(text, params)).rowCount;
    return { rowCount };
  }

  fetchAll(text: string, params: readonly unknown[]): Promise<Row[]> {
    return this.#run(text, params);
  }

  async fetchOne(text: string, params: readonly unknown[]): Promise<Row | undefined> {
    return (await this.#run(text, params))[0];
  }

  /** The rows as arrays of their values, in key order (the fake's rows are objects). */
  async fetchRows(text: string, params: readonly unknown[]): Promise<Rows> {
    const rows = await this.#run(text, params);
    return { columns: Object.keys(rows[0] ?? {}), rows: rows.map((row) => Object.values(row)) };
  }

  async *stream(text: string, params: readonly unknown[], batchSize: number): AsyncIterableIterator<Row[]> {
    const rows = await this.#run(text, params);
    for (let i = 0; i < rows.length; i += batchSize) yield rows.slice(i, i + batchSize);
  }

  ping(): Promise<void> {
    this.pings++;
    return this.dead ? Promise.reject(new ConnectionError("fake connection lost")) : Promise.resolve();
  }

  close(): Promise<void> {
    this.closes++;
    return Promise.resolve();
  }

  destroy(): Promise<void> {
    this.destroys++;
    return Promise.resolve();
  }
}

/** A driver whose servers live in memory, one per host. */
export class FakeDriver implements Driver {
  readonly name = "fake";
  readonly dialect: DialectName;
  readonly interleavedStreams = false;
  readonly pipelines: boolean;
  readonly #servers = new Map<string, FakeServer>();

  /** A fake driver of `dialect` (default postgres); `pipelines` as `Driver.pipelines`. */
  constructor(options: { dialect?: DialectName; pipelines?: boolean } = {}) {
    this.dialect = options.dialect ?? "postgres";
    this.pipelines = options.pipelines ?? false;
  }

  /** The server for `host`, made on first use. */
  server(host: string): FakeServer {
    let server = this.#servers.get(host);
    if (server === undefined) this.#servers.set(host, server = new FakeServer(host));
    return server;
  }

  connect(url: DatabaseUrl, signal?: AbortSignal): Promise<DriverConnection> {
    return this.server(url.host).connect(signal);
  }
}

/** The hooks `Database` gives its pools, over a fake server's connections, on `clock` (see src/database.ts). */
export function fakePoolHooks(server: FakeServer, clock?: PoolClock): PoolHooks<FakeConnection> {
  return {
    open: (signal) => server.connect(signal),
    close: (connection) => connection.close(),
    destroy: (connection) => connection.destroy(),
    broken: (connection) => connection.broken,
    ping: (connection) => connection.ping(),
    unwatched: (connection) => connection.unwatched,
    ...(clock === undefined ? {} : { clock }),
  };
}

/** Lets every promise already settled run its callbacks (one turn of the event loop; no time passes for the pool). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** What `promise` settled to after one turn of the event loop, or "pending". */
export async function stateOf<T>(promise: Promise<T>): Promise<T | "pending" | "rejected"> {
  let outcome: T | "pending" | "rejected" = "pending";
  promise.then((value) => outcome = value, () => outcome = "rejected");
  await settle();
  return outcome;
}
