/**
 * The Kysely-on-Roost contender: the Kysely contender's workloads
 * (`kyselyWorkloads`, the same query-builder calls), with Kysely running on
 * a Roost `Database` through `@roost/db/kysely`'s `RoostDialect`. The
 * database is opened as the Roost contender opens it (same pool size, same
 * default driver), so next to "roost" the figure shows what Kysely's
 * builder and the dialect cost, and next to "kysely" what running Kysely
 * on Roost costs against Kysely's own dialect on the driver.
 *
 * @module
 */
import { Kysely } from "kysely";
import { RoostDialect } from "../../src/kysely.ts";
import type { BenchSetup, Contender } from "./contender.ts";
import { kyselyWorkloads } from "./kysely.ts";
import { openRoost } from "./roost.ts";

/**
 * Kysely over `RoostDialect` on a Roost database with a pool of
 * `setup.poolSize` on the runtime's default driver. Closing it destroys
 * the Kysely instance, then closes the database (which `kysely.destroy()`
 * leaves open).
 */
export async function roostKyselyContender(setup: BenchSetup): Promise<Contender> {
  const { db, driver } = await openRoost(setup);
  const kysely = new Kysely<Record<never, never>>({ dialect: new RoostDialect({ database: db }) });
  return kyselyWorkloads(kysely, setup, { name: "roost-kysely", driver }, async () => {
    await kysely.destroy();
    await db.close();
  });
}
