/**
 * Bundles a Worker the way wrangler does (esbuild, ESM, the `workerd`
 * export condition, the package's own entry points) and runs it in workerd
 * through miniflare. Node-only: miniflare drives the workerd binary.
 *
 * With `nodejsCompat`, Node built-ins stay imports that workerd provides
 * (CommonJS `require` of them becomes an import, as wrangler does it).
 * Without it, nothing may import a Node built-in except postgres.js, whose
 * three (`node:buffer`, `node:events`, `node:stream`) are swapped for npm
 * polyfills and a stub, as wrangler's legacy `node_compat` mode did: so the
 * core is proven to load where no `node:*` module exists.
 *
 * @module
 */
import { builtinModules } from "node:module";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { Miniflare } from "miniflare";

/** The repository root, where the bundles resolve `@roost/db` from. */
export const root: string = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

const builtins = new Set(builtinModules);

function builtinName(path: string): string | undefined {
  const bare = path.startsWith("node:") ? path.slice(5) : path;
  return builtins.has(bare) || builtins.has(bare.split("/")[0]) ? bare : undefined;
}

/** Node built-ins as workerd's `nodejs_compat` provides them. */
const nodeCompat: esbuild.Plugin = {
  name: "node-compat",
  setup(build) {
    build.onResolve({ filter: /.*/ }, (args) => {
      const bare = builtinName(args.path);
      if (bare === undefined) return undefined;
      if (args.kind === "require-call") return { path: `node:${bare}`, namespace: "node-require" };
      return { path: `node:${bare}`, external: true };
    });
    build.onLoad({ filter: /.*/, namespace: "node-require" }, (args) => ({
      contents: `import builtin from ${JSON.stringify(args.path)}; module.exports = builtin;`,
      loader: "js",
    }));
  },
};

const polyfills: Record<string, string> = {
  buffer: join(root, "node_modules", "buffer", "index.js"),
  events: join(root, "node_modules", "events", "events.js"),
  stream: join(root, "tests", "support", "workerd", "no_stream.ts"),
};

/** No Node built-ins: postgres.js gets polyfills, anything else importing one fails the build. */
const noNodeCompat: esbuild.Plugin = {
  name: "no-node-compat",
  setup(build) {
    build.onResolve({ filter: /.*/ }, (args) => {
      const bare = builtinName(args.path);
      if (bare === undefined) return undefined;
      const fromPostgres = args.importer.includes(join("node_modules", "postgres"));
      const polyfill = polyfills[bare];
      if (fromPostgres && polyfill !== undefined) return { path: polyfill };
      return { errors: [{ text: `${args.path} imported by ${args.importer}: not available without nodejs_compat` }] };
    });
  },
};

/**
 * The package bundles take postgres.js from: `postgres`, or the `postgres-v4`
 * devDependency where this process maps `postgres` to it (tests/run.ts's
 * `node-pg4` runner), so the Worker runs the postgres.js the rest of the run does.
 */
const postgresPackage = import.meta.resolve("postgres").includes("/node_modules/postgres-v4/")
  ? "postgres-v4"
  : "postgres";

/** Options of {@linkcode bundleWorker}. */
export interface BundleOptions {
  /** Bundle for a Worker with the `nodejs_compat` flag. */
  nodejsCompat: boolean;
  /** Minify (as `wrangler deploy --minify`). */
  minify?: boolean;
  /** The project the entry and its packages resolve from; default the repository. */
  project?: string;
}

/** Bundles a Worker module; returns its single ESM file. */
export async function bundleWorker(entry: string, options: BundleOptions): Promise<string> {
  return (await bundleWorkerFiles(entry, options)).text;
}

/** Bundles a Worker module; returns its single ESM file and the files it was built from (relative paths). */
export async function bundleWorkerFiles(
  entry: string,
  options: BundleOptions,
): Promise<{ text: string; inputs: string[] }> {
  // postgres.js 4 stands in for 3.4 under the node-pg4 runner, in the repository's own bundles.
  const alias: Record<string, string> = postgresPackage === "postgres" || options.project !== undefined
    ? {}
    : { postgres: postgresPackage };
  const result = await esbuild.build({
    entryPoints: [entry],
    absWorkingDir: options.project ?? root,
    metafile: true,
    bundle: true,
    write: false,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["module", "main"],
    external: ["cloudflare:*"],
    alias,
    minify: options.minify ?? false,
    plugins: [options.nodejsCompat ? nodeCompat : noNodeCompat],
    logLevel: "silent",
  });
  return { text: result.outputFiles[0].text, inputs: Object.keys(result.metafile.inputs) };
}

/** Options of {@linkcode startWorker}. */
export interface WorkerOptions {
  /** Run with the `nodejs_compat` compatibility flag. */
  nodejsCompat: boolean;
  /** The compatibility date; default 2025-09-15, as examples/wrangler.toml (the first with node:os, which postgres.js 4 imports). */
  compatibilityDate?: string;
  /** Text bindings (`env`). */
  bindings?: Record<string, string>;
  /** Local D1 databases (miniflare's, in memory), bound under these names. */
  d1Databases?: string[];
  /**
   * Hyperdrive bindings (`env.NAME`), each the URL of the database it fronts.
   * Locally miniflare requires a password in it (a trust-authenticated local
   * server ignores it).
   */
  hyperdrives?: Record<string, string>;
  /** Receives everything workerd writes (its logs and the Worker's console). */
  onOutput?: (text: string) => void;
}

/** Starts a bundled Worker in workerd; dispose it with `dispose()`. */
export function startWorker(script: string, options: WorkerOptions): Miniflare {
  return new Miniflare({
    // Listed, not discovered: miniflare would refuse the computed driver imports the bundle keeps (never reached here).
    modules: [{ type: "ESModule", path: "worker.js", contents: script }],
    compatibilityDate: options.compatibilityDate ?? "2025-09-15",
    compatibilityFlags: options.nodejsCompat ? ["nodejs_compat"] : [],
    bindings: options.bindings ?? {},
    d1Databases: options.d1Databases ?? [],
    hyperdrives: options.hyperdrives ?? {},
    handleRuntimeStdio(stdout: Readable, stderr: Readable) {
      const forward = (chunk: Buffer) => options.onOutput?.(chunk.toString());
      stdout.on("data", forward);
      stderr.on("data", forward);
    },
  });
}
