/**
 * Which Postgres statements may be a server cursor's query
 * (src/drivers/postgres/cursor.ts, `mayBeCursor`). The others are read whole
 * without a DECLARE: inside the caller's transaction a refused DECLARE would
 * abort it (tests/behaviour/scope.test.ts, "iterate of a write with
 * RETURNING …", shows it on every Postgres driver).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { mayBeCursor } from "../../src/drivers/postgres/cursor.ts";

test("queries may be cursors; writes, SHOW, CALL and a WITH naming a write are read whole", () => {
  for (
    const text of [
      "select 1",
      "  \n\tSELECT * FROM t",
      "-- a note\nselect 1",
      "/* a note */ values (1), (2)",
      "TABLE t",
      "(select 1) union all (select 2)",
      "with recent as (select * from t) select * from recent",
      "select * from t for update",
    ]
  ) assert.equal(mayBeCursor(text), true, text);
  for (
    const text of [
      "insert into t values (1) returning id",
      "UPDATE t SET n = 1 RETURNING *",
      "delete from t returning id",
      "merge into t using s on t.id = s.id when matched then delete",
      "show search_path",
      "call do_things()",
      "SET search_path TO x",
      "with gone as (delete from t returning id) select id from gone",
      "WITH x AS (UPDATE t SET n = 1 RETURNING n) SELECT * FROM x",
      "selection", // a word that only begins like a keyword
      "",
    ]
  ) assert.equal(mayBeCursor(text), false, text);
});

test("leading whitespace and comments are read in linear time", () => {
  for (const lead of [" ".repeat(10_000), "/* x */".repeat(2_000), "-- x\n".repeat(2_000)]) {
    assert.equal(mayBeCursor(`${lead}select 1`), true);
    assert.equal(mayBeCursor(`${lead}insert into t values (1)`), false);
  }
});
