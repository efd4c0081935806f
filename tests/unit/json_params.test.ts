/**
 * bun-sql's json/jsonb parameters (src/drivers/postgres/json_params.ts):
 * which texts are asked about, how placeholders are cast, what is sent and
 * how much is remembered. The server's side is in
 * tests/behaviour/types.test.ts.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  castJsonPlaceholders,
  JsonParams,
  maxPlans,
  probeStatement,
  probeTarget,
} from "../../src/drivers/postgres/json_params.ts";

/** An error with a SQLSTATE, as a statement's translated error carries it. */
const error = (code: string) => Object.assign(new Error(code), { code });

/** A probe's answer as Bun.SQL gives it: the DO's empty result, then the setting's row. */
const answer = (types: string) => Promise.resolve([[], [{ types }]]);

describe("bun-sql json parameters", () => {
  test("texts PREPARE takes are asked about; a DECLARE through its query; others never", () => {
    for (const text of ["select $1", "  (select $1)", "-- c\n/* d /* e */ */ WITH x as (select 1) select $1"]) {
      assert.equal(probeTarget(text), text);
    }
    for (const text of ["insert", "update", "delete", "values", "table", "merge"]) {
      assert.equal(probeTarget(`${text} x`), `${text} x`);
    }
    assert.equal(probeTarget("DECLARE c NO SCROLL CURSOR WITH HOLD FOR select $1"), "select $1");
    assert.equal(probeTarget('declare "a b" binary cursor for (select $1)'), "(select $1)");
    for (
      const text of ["call p($1)", "do $$ begin end $$", "selection", "'select' $1", "declare c cursor for call p()"]
    ) {
      assert.equal(probeTarget(text), undefined, text);
    }
  });

  test("json placeholders are cast from text; those in strings, identifiers and comments are left alone", () => {
    const types = new Map([[1, "jsonb"], [3, "json"]]);
    assert.equal(
      castJsonPlaceholders(
        `select $1, $2, $3, $1, $10, '$1', "$1", E'\\'$1', $$ $1 $$, $t$$1$t$, a$1 /* $1 */ -- $1`,
        types,
      ),
      `select ($1::text::jsonb), $2, ($3::text::json), ($1::text::jsonb), $10, '$1', "$1", E'\\'$1', $$ $1 $$, $t$$1$t$, a$1 /* $1 */ -- $1`,
    );
  });

  test("the probe quotes the text with a tag it does not hold", () => {
    const probe = probeStatement("select $roost_q$x$roost_q$, $1");
    assert.ok(probe.includes("$roost_q1$select $roost_q$x$roost_q$, $1$roost_q1$"), probe);
    assert.match(probe, /^DO \$roost_do\$/);
    assert.match(probe, /DEALLOCATE roost_probe_\d+/);
  });

  test("values: JSON text for json parameters, untouched elsewhere; known texts cost no question", async () => {
    const params = new JsonParams();
    const asked: string[] = [];
    const simple = (text: string) => (asked.push(text), answer("{23,3802,114,25}"));
    const text = "insert into t values ($1, $2, $3, $4)";
    assert.equal(params.ready(text, [1, "{}", null, "x"]), undefined, "a string: the server is asked first");
    await params.learn(text, simple);
    const values: unknown[] = [1, '{"a":1}', 42, "x"];
    assert.equal(params.ready(text, values), "insert into t values ($1, ($2::text::jsonb), ($3::text::json), $4)");
    assert.deepEqual(values, [1, '{"a":1}', "42", "x"]);
    const others: unknown[] = [2, { a: [1] }, [1, "b"], "y"];
    params.ready(text, others);
    assert.deepEqual(others, [2, '{"a":[1]}', '[1,"b"]', "y"]);
    const rest: unknown[] = [3, null, 12n, "z"];
    params.ready(text, rest);
    assert.deepEqual(rest, [3, null, "12", "z"]);
    assert.equal(asked.length, 1);
    // Only nulls, objects and arrays: Bun.SQL binds them by the rule whatever the types, nothing to look up.
    assert.equal(params.ready("select $1, $2", [null, { a: 1 }]), "select $1, $2");
    // A text the server cannot tell about (the probe kept no types) is sent as it is, and not asked about again
    // unless it fails (a table it names may exist by then).
    await params.learn("select $1 + $2", () => answer(""));
    assert.equal(params.ready("select $1 + $2", [1, 2]), "select $1 + $2");
    assert.equal(params.failed("select $1 + $2", error("42P01")), false);
    assert.equal(params.ready("select $1 + $2", [1, 2]), undefined, "asked again after it failed");
    assert.equal(params.ready("call p($1)", ["x"]), "call p($1)", "never asked about");
    // What the server told stands through ordinary errors; a type mismatch (a column's type changed) forgets it.
    assert.equal(params.failed(text, error("23505")), false);
    assert.notEqual(params.ready(text, [1, "{}", null, "x"]), undefined);
    assert.equal(params.failed(text, error("42804")), true);
    assert.equal(params.ready(text, [1, "{}", null, "x"]), undefined, "forgotten: asked again");
  });

  test("a connection remembers a bounded number of texts", async () => {
    const params = new JsonParams();
    for (let i = 0; i < maxPlans * 2 + 10; i++) {
      await params.learn(`select $1::jsonb as v${i}`, () => answer("{3802}"));
      assert.ok(params.size <= maxPlans, `${params.size} after ${i + 1}`);
    }
    assert.ok(params.size > 0);
  });
});
