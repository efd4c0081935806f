/**
 * The version of the installed `@roost/db`, for `roost --version`: read at
 * run time, so the same code answers from the TypeScript sources, from a
 * build compiled to `dist/`, and from JSR.
 *
 * @module
 */
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const packageName = "@roost/db";

/**
 * The package's version: from a file (`file:` URL), the nearest
 * `package.json` named `@roost/db` in `from`'s directory or above it (other
 * `package.json` files on the way, such as one a build puts in `dist/`, are
 * passed over); from JSR (`https://jsr.io/@roost/db/<version>/…`), the
 * version in the URL. `undefined` when neither finds one.
 */
export async function packageVersion(from: string | URL): Promise<string | undefined> {
  const url = new URL(from);
  if (url.protocol !== "file:") {
    return url.pathname.match(/\/@roost\/db\/(\d[^/]*)\//)?.[1];
  }
  let dir = dirname(fileURLToPath(url));
  for (;;) {
    const found = await readPackage(join(dir, "package.json"));
    if (found !== undefined) return found;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** The version in a `package.json` of `@roost/db`, or `undefined` when it is absent, unreadable or another package's. */
async function readPackage(path: string): Promise<string | undefined> {
  let manifest: unknown;
  try {
    manifest = JSON.parse(await readFile(path, "utf8"));
  } catch {
    return undefined;
  }
  const { name, version } = (manifest ?? {}) as { name?: unknown; version?: unknown };
  return name === packageName && typeof version === "string" ? version : undefined;
}
