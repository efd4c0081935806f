/**
 * The two manifests agree: package.json's exports (the compiled build) and
 * deno.json's self-imports come from deno.json's exports (scripts/exports.ts),
 * and both manifests describe the package the same way.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { compiledPath, drift, packageExports, readManifests } from "../../scripts/exports.ts";

describe("package manifests", () => {
  test("package.json's exports and deno.json's imports follow deno.json's exports", () => {
    assert.deepEqual(drift(readManifests()), []);
  });

  test("a drifted manifest is reported", () => {
    const manifests = readManifests();
    const exports = { ...manifests.npm.exports };
    delete exports["./drivers/bun-sql"];
    const imports = { ...manifests.deno.imports };
    delete imports["@roost/db/drivers/deno-sqlite"];
    const problems = drift({ deno: { ...manifests.deno, imports }, npm: { ...manifests.npm, exports } });
    assert.equal(problems.length, 2, problems.join("\n"));
  });

  test("every export has its compiled module and declarations; name, version, licence and description match", () => {
    const { deno, npm } = readManifests();
    assert.deepEqual(Object.keys(npm.exports), [...Object.keys(deno.exports), "./package.json"]);
    assert.deepEqual(packageExports(deno.exports)["./drivers/bun-sql"], {
      types: "./dist/src/drivers/bun_sql.d.ts",
      default: "./dist/src/drivers/bun_sql.js",
    });
    assert.throws(() => compiledPath("src/x.ts", "js"), /must name a \.ts file/);
    for (const field of ["name", "version", "license", "description"]) assert.equal(deno[field], npm[field], field);
    assert.equal(npm.main, "./dist/mod.js");
    assert.equal(npm.types, "./dist/mod.d.ts");
  });

  test("the Worker entry: @roost/db/edge on JSR and npm, and what the edge conditions pick for @roost/db on npm", () => {
    const { deno, npm } = readManifests();
    assert.equal(deno.exports["./edge"], "./edge.ts");
    const main = npm.exports["."] as Record<string, string>;
    // Conditions match in order: declarations first, the edge conditions before the default.
    assert.deepEqual(Object.keys(main), ["types", "workerd", "worker", "edge-light", "default"]);
    for (const condition of ["workerd", "worker", "edge-light"]) assert.equal(main[condition], "./dist/edge.js");
    assert.equal(main.default, "./dist/mod.js");
  });
});
