/**
 * Deno's permission refusals read as the flag that grants them, on errors
 * shaped as Deno throws them (the real refusals, from real Deno processes,
 * are tests/install/jsr.ts's job).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConfigError } from "../../mod.ts";
import { permissionDenied, refusedFlag } from "../../src/drivers/shared/permissions.ts";

/** An error as Deno 2 throws it for a refused permission. */
function refusal(message: string, name = "NotCapable"): Error {
  const error = new Error(message);
  error.name = name;
  return error;
}

describe("Deno permission refusals", () => {
  test("each kind of access reads as its --allow flag, with what was refused", () => {
    const cases = [
      ['Requires env access to "PGAPPNAME", run again with the --allow-env flag', "--allow-env=PGAPPNAME"],
      ['Requires net access to "127.0.0.1:5432", run again with the --allow-net flag', "--allow-net=127.0.0.1:5432"],
      [
        'Requires write access to "/tmp/app/x.db", run again with the --allow-write flag',
        "--allow-write=/tmp/app/x.db",
      ],
      ["Requires ffi access, run again with the --allow-ffi flag", "--allow-ffi"],
      ['Requires sys access to "userInfo", run again with the --allow-sys flag', "--allow-sys=userInfo"],
    ] as const;
    for (const [message, flag] of cases) assert.equal(refusedFlag(refusal(message)), flag, message);
    assert.equal(refusedFlag(refusal('Requires read access to "/x"', "PermissionDenied")), "--allow-read=/x");
  });

  test("a refusal found as another error's cause; anything else is no refusal", () => {
    const wrapped = new Error("connect failed", { cause: refusal('Requires net access to "db:5432"') });
    assert.equal(refusedFlag(wrapped), "--allow-net=db:5432");
    assert.equal(refusedFlag(new Error("Requires net access to nothing")), undefined);
    assert.equal(refusedFlag("NotCapable"), undefined);
    assert.equal(permissionDenied("mysql2", new Error("ECONNREFUSED")), undefined);
  });

  test("the Roost error: ConfigError ROOST_PERMISSION_DENIED naming the driver and the flag", () => {
    const error = permissionDenied("postgres-js", refusal('Requires env access to "PGAPPNAME", run again'));
    assert.ok(error instanceof ConfigError);
    assert.equal(error.code, "ROOST_PERMISSION_DENIED");
    assert.match(error.message, /postgres-js driver .*run with --allow-env=PGAPPNAME/);
  });
});
