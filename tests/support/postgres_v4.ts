/**
 * Preloaded with `node --import ./tests/postgres_v4.ts` (or in NODE_OPTIONS,
 * so that the Node processes a test starts load it too): makes every import of
 * `postgres` (Roost's postgres-js driver, and the tests that use postgres.js
 * directly) load postgres.js 4.x, installed as the devDependency alias
 * `postgres-v4`, instead of the 3.4 that `postgres` names. tests/run.ts's
 * `node-pg4` runner runs the Postgres targets of the suite this way.
 */
import { registerHooks } from "node:module";

registerHooks({
  resolve(specifier, context, nextResolve) {
    if (specifier === "postgres" || specifier.startsWith("postgres/")) {
      return nextResolve(`postgres-v4${specifier.slice("postgres".length)}`, context);
    }
    return nextResolve(specifier, context);
  },
});
