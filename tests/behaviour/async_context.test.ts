/**
 * Async context where the runtime hides it: Roost loaded on Node with
 * `process.getBuiltinModule` removed (as on Workers with `nodejs_compat`
 * before 2024-09-23), and with `node:async_hooks` refused too (as on Workers
 * without it, or an unknown runtime). tests/support/fixtures/hidden_async_context.ts
 * does the hiding in a process of its own; the workerd suite checks the same
 * in workerd itself. Node only: hiding needs Node's module hooks.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { runScript, runtime, skipUnless } from "../support/support.ts";

const onNode = skipUnless(runtime === "node", "hiding AsyncLocalStorage needs Node's module hooks");

async function probe(mode: "imported" | "absent"): Promise<Record<string, unknown>> {
  const run = await runScript("tests/support/fixtures/hidden_async_context.ts", [mode]);
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout);
}

describe("async context hidden on [sqlite file · node-sqlite]", () => {
  test(
    "where AsyncLocalStorage can only be imported, the first db.* call waits for it and scopes follow it",
    onNode,
    async () => {
      const seen = await probe("imported");
      const works = {
        bare: { ok: 1 },
        bareConnection: { ok: 2 },
        inContext: { ok: 3 },
        handle: { ok: 4 },
        iterate: { ok: 5 },
        replica: { ok: 6 },
        primary: { ok: 7 },
      };
      assert.deepEqual(seen, {
        available: true,
        pendingAtFirstCall: true,
        first: { ok: 1 },
        alone: works,
        beside: works,
        // The holding task's own db.* call ran in its transaction.
        held: { ok: { ok: 9 } },
        forcedBare: { ok: { rowCount: 0 } },
        forcedHandle: { ok: 1 },
      });
    },
  );

  test(
    "where there is none, db.* is refused inside and outside scopes alike, whatever another task holds open",
    onNode,
    async () => {
      const seen = await probe("absent");
      // The same answers alone and while another task holds a context and a transaction open.
      assert.deepEqual(seen.beside, seen.alone);
      const refused = { name: "ConfigError", code: "ROOST_NO_ASYNC_CONTEXT" };
      assert.deepEqual(seen, {
        available: false,
        pendingAtFirstCall: true,
        first: refused,
        alone: {
          bare: refused,
          bareConnection: refused,
          inContext: refused,
          handle: { ok: 4 },
          iterate: refused,
          replica: refused,
          primary: refused,
        },
        beside: seen.alone,
        held: { ok: refused },
        // forceRollback: db.* follows the same rule; the handles, savepoints included, work.
        forcedBare: refused,
        forcedHandle: { ok: 1 },
      });
    },
  );
});
