/**
 * The drivers loaded from JSR (deno-postgres, deno-sqlite): Deno only, and a
 * clear `ROOST_DRIVER_UNAVAILABLE` error where JSR cannot be reached. Written
 * to pass both where JSR is reachable (the driver then works) and where it is
 * not; in CI, where tests/run.ts serves the local JSR mirror, the drivers must
 * work.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConfigError, ConnectionError, Database, type DriverName, sql } from "../../mod.ts";
import { denoPostgres } from "../../src/drivers/postgres/deno_postgres.ts";
import { denoSqlite } from "../../src/drivers/sqlite/deno_sqlite.ts";
import { inCi, serverUrls } from "../support/support.ts";

const onDeno = "Deno" in globalThis && !("Bun" in globalThis);
const postgresUrl = serverUrls.postgres;

const drivers = [
  { name: "deno-postgres", object: denoPostgres, url: postgresUrl, specifier: "jsr:@db/postgres@^0.19" },
  { name: "deno-sqlite", object: denoSqlite, url: "sqlite::memory:", specifier: "jsr:@db/sqlite@^0.13" },
] as const;

/** The first query's outcome: the value, or the error. */
async function firstQuery(db: Database): Promise<{ value?: unknown; error?: unknown; ms: number }> {
  const started = Date.now();
  try {
    return { value: await db.fetchVal(sql`select cast(${2n ** 62n + 1n} as bigint) as v`), ms: Date.now() - started };
  } catch (error) {
    return { error, ms: Date.now() - started };
  } finally {
    await db.close();
  }
}

function assertUnavailable(error: unknown, specifier: string): void {
  assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
  assert.equal(error.code, "ROOST_DRIVER_UNAVAILABLE");
  assert.ok(error.message.includes(specifier), error.message);
  assert.match(error.message, /JSR could not be reached or the package could not be loaded \(.+\)/);
  assert.ok([...error.message].every((char) => char >= " "), "the reason is one clean line");
}

describe("JSR drivers", () => {
  for (const { name, object, url, specifier } of drivers) {
    if (onDeno) {
      test(`${name} by name: the first query works, or fails fast with ROOST_DRIVER_UNAVAILABLE`, async () => {
        const db = new Database(url, { driver: name as DriverName }); // nothing connects yet
        const { value, error, ms } = await firstQuery(db);
        // CI serves the packages from the local JSR mirror (tests/run.ts): there the driver must work.
        if (inCi) assert.equal(error, undefined, `in CI ${name} must load and connect: ${error}`);
        if (error === undefined) {
          assert.equal(value, 2n ** 62n + 1n);
        } else if (error instanceof ConnectionError && !inCi && name === "deno-postgres") {
          // JSR reached, but no Postgres server here: nothing more to check.
        } else {
          assertUnavailable(error, specifier);
          assert.ok(ms < 25_000, `the failed import took ${ms} ms`);
        }
      });

      test(`${name} as a driver object behaves the same`, async () => {
        const { error } = await firstQuery(new Database(url, { driver: object }));
        if (error !== undefined && !(error instanceof ConnectionError && !inCi && name === "deno-postgres")) {
          assertUnavailable(error, specifier);
        }
      });
    } else {
      test(`${name} by name is refused on this runtime when the Database is created`, () => {
        assert.throws(
          () => new Database(url, { driver: name as DriverName }),
          (error: unknown) => error instanceof ConfigError && /runs on deno, not on/.test(error.message),
        );
      });

      test(`${name} as a driver object loads here but refuses to connect`, async () => {
        const { error } = await firstQuery(new Database(url, { driver: object }));
        assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
        assert.equal(error.code, "ROOST_DRIVER_UNAVAILABLE");
        assert.match(error.message, new RegExp(`the ${name} driver runs only on Deno`));
      });
    }
  }
});
