/**
 * A commit whose outcome is unknown: a proxy between Roost and the server
 * forwards a transaction's COMMIT and then cuts the connection, so the
 * server commits while the client never hears back. The call must reject
 * with `CommitUnknownError` (a `ConnectionError`) and the rows must be there.
 * Where the connection is lost before COMMIT is sent, or at a savepoint's
 * RELEASE (which commits nothing), the error is a plain `ConnectionError`
 * and nothing is committed. On every Postgres and MySQL driver.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { connect, createServer, type Server, type Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { Kysely } from "kysely";
import { CommitUnknownError, ConnectionError, Database, type DialectName, type QueryEvent, sql } from "../../mod.ts";
import { RoostDialect } from "../../src/kysely.ts";
import { uniqueName } from "../support/support.ts";
import { serverDialects, serverPlaces, targets } from "../support/targets.ts";

/** True when `chunk`, read as whole messages of `dialect`'s protocol from its start, holds one that runs a statement. */
function runsStatement(chunk: Uint8Array, dialect: DialectName): boolean {
  const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  for (let at = 0; at < chunk.length;) {
    if (dialect === "postgres") {
      // Type byte and int32 length: 'Q' is a simple query, 'E' executes a bound statement.
      if (at + 5 > chunk.length) return false;
      if (chunk[at] === 0x51 || chunk[at] === 0x45) return true;
      at += 1 + view.getInt32(at + 1);
    } else {
      // int24 length, sequence byte, command: COM_QUERY (0x03) or COM_STMT_EXECUTE (0x17).
      if (at + 5 > chunk.length) return false;
      if (chunk[at + 4] === 0x03 || chunk[at + 4] === 0x17) return true;
      at += 4 + (chunk[at] | chunk[at + 1] << 8 | chunk[at + 2] << 16);
    }
  }
  return false;
}

/** When the proxy cuts: after forwarding the statement that runs `text`, or instead of forwarding the one holding it. */
type Cut = { after: string } | { instead: string };

/**
 * A TCP proxy on 127.0.0.1 to a server, for one client connection at a time.
 * Armed with a {@linkcode Cut}, it watches what the client sends: `after`
 * forwards the first message running a statement once `text` has been seen
 * (a prepared COMMIT is sent as text first, then executed), half-closes the
 * server side so the server reads it to the end, drops the server's answer
 * and destroys the client side; `instead` drops the chunk holding `text`
 * and destroys both sides. `cut` settles once the server has closed its side.
 */
class CuttingProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #dialect: DialectName;
  #arm: Cut | undefined;
  #seen = false;
  #serverClosed!: () => void;
  /** Settles when the server side of the cut connection has closed (it has read and run what it was sent). */
  cut: Promise<void> = new Promise((resolve) => this.#serverClosed = resolve);
  port = 0;

  constructor(host: string, port: number, dialect: DialectName) {
    this.#dialect = dialect;
    this.#server = createServer((client) => {
      const upstream = connect(port, host);
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket);
        socket.on("error", () => {});
        socket.on("close", () => this.#sockets.delete(socket));
      }
      let cut = false;
      upstream.on("data", (chunk: Uint8Array) => cut || client.write(chunk));
      upstream.on("close", () => cut ? this.#serverClosed() : client.destroy());
      client.on("close", () => cut || upstream.destroy());
      client.on("data", (chunk: Uint8Array) => {
        if (cut) return;
        const arm = this.#arm;
        const text = Buffer.from(chunk).toString("latin1");
        if (arm !== undefined && "instead" in arm && text.includes(arm.instead)) {
          cut = true;
          client.destroy();
          upstream.destroy();
          return;
        }
        if (arm !== undefined && "after" in arm && (this.#seen ||= text.includes(arm.after))) {
          if (runsStatement(chunk, this.#dialect)) {
            cut = true;
            upstream.end(chunk);
            client.destroy();
            return;
          }
        }
        upstream.write(chunk);
      });
    });
  }

  /** Starts listening on a free port. */
  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    this.port = (this.#server.address() as { port: number }).port;
    return this;
  }

  /** Cuts the connection at the next match of `cut`. */
  arm(cut: Cut): void {
    this.#arm = cut;
  }

  /** Closes every socket and stops listening. */
  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** What a promise rejected with; fails if it resolved. */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof Error, String(error));
    return error;
  }
  assert.fail("expected the call to reject");
}

/** `url` with 127.0.0.1:`port` for its host. */
function atPort(url: string, port: number): string {
  const parsed = new URL(url);
  parsed.hostname = "127.0.0.1";
  parsed.port = String(port);
  return parsed.toString();
}

const rows = 500;
const paramSets = Array.from({ length: rows }, (_, i) => [i, `row ${i}`]);

// A proxy on the server's socket: PGlite has neither (it is Postgres inside this process).
for (const target of targets({ dialects: serverDialects, places: serverPlaces })) {
  describe(`a connection lost at COMMIT ${target.label}`, () => {
    const direct = new Database(target.url, { driver: target.driver, pool: { max: 1 } });
    const table = uniqueName("commit_cut");
    const marker = uniqueName("cut_here");
    const server = new URL(target.url);
    let proxy: CuttingProxy;
    let db: Database;
    let events: QueryEvent[];

    before(async () => {
      await direct.execute(sql`create table ${sql.ident(table)} (n integer, label varchar(40))`);
    });
    after(async () => {
      await direct.execute(sql`drop table if exists ${sql.ident(table)}`);
      await direct.close();
    });

    /** A fresh proxy and an instance through it (fresh connections, so each prepares COMMIT anew). */
    async function open(options: { forceRollback?: boolean } = {}): Promise<void> {
      proxy = await new CuttingProxy(server.hostname, Number(server.port), target.dialect).listen();
      events = [];
      db = new Database(atPort(target.url, proxy.port), {
        driver: target.driver,
        onQuery: (event) => events.push(event),
        ...options,
      });
      await direct.execute(sql`delete from ${sql.ident(table)}`);
      await db.connect();
    }

    async function done(): Promise<void> {
      await db.close();
      await proxy.close();
    }

    const count = async () => Number(await direct.fetchVal(sql`select count(*) from ${sql.ident(table)}`));
    const insert = sql`insert into ${sql.ident(table)} (n, label) values (${0}, ${"row"})`;

    /** The rejection is the marked error, carrying no parameter, and the server committed every row. */
    async function assertCommittedUnknown(error: Error, expected: number): Promise<void> {
      assert.ok(
        error instanceof CommitUnknownError,
        `expected CommitUnknownError, got ${error.name}: ${error.message}`,
      );
      assert.ok(error instanceof ConnectionError);
      assert.equal((error as CommitUnknownError).code, "ROOST_COMMIT_UNKNOWN");
      assert.match(error.message, /whether the transaction committed is unknown/);
      assert.doesNotMatch(error.message, /row 1/);
      await proxy.cut;
      assert.equal(await count(), expected, "the server committed the rows");
      assert.deepEqual(events.filter((event) => event.error !== undefined).map((e) => e.sql), []);
    }

    test("db.transaction(): the commit's outcome is unknown, the rows are committed", async () => {
      await open();
      try {
        const error = await rejection(db.transaction(async (tx) => {
          for (let i = 0; i < 3; i++) await tx.execute(insert);
          proxy.arm({ after: "COMMIT" });
        }));
        await assertCommittedUnknown(error, 3);
      } finally {
        await done();
      }
    });

    test(`executeMany (${rows} rows): its final commit's outcome is unknown, the rows are committed`, async () => {
      await open();
      try {
        proxy.arm({ after: "COMMIT" });
        const error = await rejection(db.executeMany(insert, paramSets));
        await assertCommittedUnknown(error, rows);
      } finally {
        await done();
      }
    });

    test("begin() and tx.commit(): the commit's outcome is unknown, the rows are committed", async () => {
      await open();
      try {
        const tx = await db.begin();
        await tx.execute(insert);
        proxy.arm({ after: "COMMIT" });
        await assertCommittedUnknown(await rejection(tx.commit()), 1);
        assert.equal(tx.active, false);
      } finally {
        await done();
      }
    });

    test("Kysely's transaction through Roost: the commit's outcome is unknown, the rows are committed", async () => {
      await open();
      const kysely = new Kysely<Record<string, { n: number; label: string }>>({
        dialect: new RoostDialect({ database: db }),
      });
      try {
        const error = await rejection(
          kysely.transaction().execute(async (trx) => {
            await trx.insertInto(table).values({ n: 1, label: "k" }).execute();
            proxy.arm({ after: "COMMIT" });
          }),
        );
        await assertCommittedUnknown(error, 1);
      } finally {
        await kysely.destroy();
        await done();
      }
    });

    test("lost before COMMIT is sent: a plain ConnectionError from tx.commit(), nothing committed", async () => {
      await open();
      try {
        const tx = await db.begin();
        await tx.execute(insert);
        proxy.arm({ instead: marker });
        await rejection(tx.fetchVal(sql.unsafe(`select '${marker}'`)));
        const error = await rejection(tx.commit());
        assert.ok(!(error instanceof CommitUnknownError), `${error.name}: ${error.message}`);
        assert.equal(await count(), 0);
      } finally {
        await done();
      }
    });

    test("lost at executeMany's insert, before COMMIT: a plain ConnectionError, nothing committed", async () => {
      await open();
      try {
        proxy.arm({ instead: table });
        const error = await rejection(db.executeMany(insert, paramSets));
        assert.ok(error instanceof ConnectionError && !(error instanceof CommitUnknownError), String(error));
        assert.equal(await count(), 0);
      } finally {
        await done();
      }
    });

    test("lost at a savepoint's RELEASE (not a commit): a plain ConnectionError, nothing committed", async () => {
      await open();
      try {
        const error = await rejection(db.transaction(async (tx) => {
          await tx.transaction(async (sp) => {
            await sp.execute(insert);
            proxy.arm({ after: "RELEASE" });
          });
        }));
        assert.ok(error instanceof ConnectionError && !(error instanceof CommitUnknownError), String(error));
        await proxy.cut;
        assert.equal(await count(), 0);
      } finally {
        await done();
      }
    });

    test("forceRollback: a transaction's end is a RELEASE, so a lost connection is a plain ConnectionError", async () => {
      await open({ forceRollback: true });
      try {
        proxy.arm({ after: "RELEASE" });
        const error = await rejection(db.transaction(async (tx) => {
          await tx.execute(insert);
        }));
        assert.ok(error instanceof ConnectionError && !(error instanceof CommitUnknownError), String(error));
        await proxy.cut;
        assert.equal(await count(), 0);
      } finally {
        await done();
      }
    });
  });
}
