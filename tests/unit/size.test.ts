/**
 * The edge bundle's size: `mod.ts` with the postgres.js adapter, minified
 * and gzipped (bench/size.ts), against a budget, and proof that the core
 * imports nothing but the driver: no `node:*` module. Driven from Node,
 * where esbuild is measured; the other runtimes skip it.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { runtime, skipUnless } from "../support/support.ts";

/**
 * The ceiling this suite holds the core to today. DESIGN.md's target is
 * 8 KiB; the core is more than twice that (see docs/edge.md
 * for where the bytes go), so this guards against growth while the gap is
 * open. Raised from 17 KiB for the reliability work: placeholder counting,
 * parameter redaction, statement timeouts and verified TLS (about 1.7 KiB),
 * then from 19 KiB for pagination, `db.schema` and `forceRollback` (about
 * 2 KiB; table definitions and migrations stay outside, in their own entries),
 * then from 21.5 KiB for the crossings of issue 19 (about 2.6 KiB): the pool's
 * sharing rule, streams that give their connection back, session set-up
 * after the driver's and ending cut-off sessions on the server, the
 * async-context lookup and the Workers warning, CommitUnknownError, the
 * driver-unavailable messages and the SQLite root-path check. Raised from
 * 24 KiB by issue 22's restructuring (24,253 → about 24,600 bytes, no new
 * behaviour): the core split into modules with one job each (executor,
 * dispatcher, router, servers, the pool's waiters, lending and clock) and
 * the drivers' shared pieces compress a little worse than one long file
 * did. About 5 KiB of the total is the text of error messages.
 */
const budget = 24.5 * 1024;

describe("edge bundle size", () => {
  test(
    `mod.ts + postgres.js adapter stay within ${budget} bytes min+gzip and import no Node built-in`,
    skipUnless(runtime === "node", "measured from Node"),
    async () => {
      const { measureCoreSize } = await import("../../bench/size.ts");
      const report = await measureCoreSize();
      console.log(`core + postgres.js adapter: ${report.gzipped} bytes min+gzip, ${report.minified} minified`);
      assert.ok(report.gzipped <= budget, `${report.gzipped} bytes min+gzip exceeds the budget of ${budget}`);
      assert.deepEqual(report.externals, ["postgres"]);
    },
  );
});
