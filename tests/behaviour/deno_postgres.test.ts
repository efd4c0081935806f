/**
 * deno-postgres (jsr:@db/postgres) specifics that the cross-driver files do
 * not cover. Runs where the suite has a deno-postgres target (Deno with JSR
 * or the local mirror reachable); skipped elsewhere.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { sql } from "../../mod.ts";
import { skipUnless } from "../support/support.ts";
import { targets } from "../support/targets.ts";

const target = targets({ drivers: ["deno-postgres"] })[0];

describe("deno-postgres", () => {
  test(
    "statements with parameters are not held back by Nagle's algorithm: 100 in a row take under 2 s (4.4 s before)",
    skipUnless(target !== undefined, "no deno-postgres target here (Deno with JSR reachable only)"),
    async () => {
      // The library writes Parse, Bind, Describe, Execute and Sync separately; without TCP_NODELAY each such
      // statement waited ~40 ms for the server's delayed ACK (4 s for 100), with it well under 1 ms on loopback.
      const db = target!.open({ pool: { max: 1 } });
      try {
        await db.fetchVal(sql`select 1`);
        const started = Date.now();
        for (let i = 0; i < 100; i++) assert.equal(await db.fetchVal(sql`select ${i}::int as v`), i);
        const ms = Date.now() - started;
        console.log(`${target!.label}: 100 statements with a parameter in ${ms} ms`);
        assert.ok(ms < 2_000, `100 statements with a parameter took ${ms} ms`);
      } finally {
        await db.close();
      }
    },
  );
});
