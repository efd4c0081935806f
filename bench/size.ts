/**
 * What Roost adds to an edge bundle: the Worker entry (`edge.ts`, which
 * `@roost/db` resolves to under the `workerd`, `worker` and `edge-light`
 * conditions) with the postgres.js adapter (postgres.js itself left out),
 * bundled for Workers and minified as `wrangler deploy --minify` would, then
 * gzipped. The main entry (`mod.ts`, which adds the driver registry) is
 * measured too, for comparison, and so is the Worker entry with each other
 * Worker driver (D1's, whose database is a binding: no library to leave out).
 *
 *   node bench/size.ts            the totals and the bytes per module
 *   node bench/size.ts --json     the figures as JSON
 *
 * @module
 */
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import * as esbuild from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** The measured bundle. */
export interface SizeReport {
  /** Minified bytes. */
  minified: number;
  /** Minified and gzipped bytes (gzip level 9). */
  gzipped: number;
  /** Minified bytes each module contributes, largest first. */
  modules: { path: string; bytes: number }[];
  /** What the bundle still imports (only the driver, when the core needs no Node built-in). */
  externals: string[];
}

/** The Worker drivers measured: their module and export, and the library each leaves to the bundle. */
export const workerDrivers = {
  "postgres-js": { module: "./src/drivers/postgres/postgres_js.ts", exported: "postgresJs" },
  "d1": { module: "./src/drivers/sqlite/d1.ts", exported: "d1" },
} as const;

/**
 * Bundles and measures an entry (default the Worker entry, `edge.ts`) with
 * a Worker driver's adapter (default postgres.js's).
 */
export async function measureCoreSize(
  entry: "edge.ts" | "mod.ts" = "edge.ts",
  driver: keyof typeof workerDrivers = "postgres-js",
): Promise<SizeReport> {
  const { module, exported } = workerDrivers[driver];
  const result = await esbuild.build({
    stdin: {
      contents: `export * from "./${entry}";\nexport { ${exported} } from "${module}";\n`,
      resolveDir: root,
      loader: "ts",
    },
    bundle: true,
    write: false,
    minify: true,
    metafile: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    // The driver and what the runtime provides are not Roost's bytes.
    external: ["postgres", "node:*", "cloudflare:*"],
    // The registry's lazy driver imports (mod.ts only; literal so Deno's tools see them): each driver is a chunk of
    // an app's own, not the core's bytes.
    plugins: [{
      name: "registry-drivers-external",
      setup(build) {
        build.onResolve(
          { filter: /^\.\// },
          (args) =>
            args.kind === "dynamic-import" && args.importer.endsWith(join("src", "drivers", "mod.ts"))
              ? { path: args.path, external: true }
              : undefined,
        );
      },
    }],
    logLevel: "silent",
  });
  const bytes = result.outputFiles[0].contents;
  const output = Object.values(result.metafile.outputs)[0];
  const modules = Object.entries(output.inputs)
    .map(([path, input]) => ({ path: relative(root, join(root, path)), bytes: input.bytesInOutput }))
    .filter((module) => module.bytes > 0)
    .sort((a, b) => b.bytes - a.bytes);
  const externals = [...new Set(output.imports.map((entry) => entry.path))].sort();
  return { minified: bytes.length, gzipped: gzipSync(bytes, { level: 9 }).length, modules, externals };
}

/** A whole Worker's database part on one driver: Roost, the adapter and the driver's package. */
export interface DriverBundleReport {
  /** Minified and gzipped bytes of the whole (gzip level 9). */
  gzipped: number;
  /** Minified bytes of the whole. */
  minified: number;
  /** Minified bytes of the adapter (`src/drivers/…`) alone. */
  adapter: number;
  /** Minified bytes of the driver's npm package. */
  library: number;
  /** What the bundle still imports. */
  externals: string[];
}

/**
 * Bundles the Worker entry with a driver that runs in Workers without
 * `nodejs_compat`, its package included (as a Worker ships it): the neon
 * driver and `@neondatabase/serverless`.
 */
export async function measureDriverBundle(): Promise<DriverBundleReport> {
  const adapterPath = "src/drivers/postgres/neon.ts";
  const library = "node_modules/@neondatabase/serverless/";
  const result = await esbuild.build({
    stdin: {
      contents: `export * from "./edge.ts";\nexport { neon } from "./${adapterPath}";\n`,
      resolveDir: root,
      loader: "ts",
    },
    bundle: true,
    write: false,
    minify: true,
    metafile: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["module", "main"],
    external: ["node:*", "cloudflare:*"],
    logLevel: "silent",
  });
  const bytes = result.outputFiles[0].contents;
  const output = Object.values(result.metafile.outputs)[0];
  const inputs = Object.entries(output.inputs).map(([path, input]) =>
    [relative(root, join(root, path)), input] as const
  );
  const sum = (match: (path: string) => boolean) =>
    inputs.filter(([path]) => match(path)).reduce((total, [, input]) => total + input.bytesInOutput, 0);
  return {
    gzipped: gzipSync(bytes, { level: 9 }).length,
    minified: bytes.length,
    adapter: sum((path) => path === adapterPath),
    library: sum((path) => path.startsWith(library)),
    externals: [...new Set(output.imports.map((entry) => entry.path))].sort(),
  };
}

if (import.meta.main ?? process.argv[1] === fileURLToPath(import.meta.url)) {
  const report = await measureCoreSize();
  const main = await measureCoreSize("mod.ts");
  const d1 = await measureCoreSize("edge.ts", "d1");
  // The driver's own modules: what it adds to a core that any driver brings.
  const d1Own = d1.modules.filter((module) => !report.modules.some((core) => core.path === module.path));
  const d1Summary = { minified: d1.minified, gzipped: d1.gzipped, driverModules: d1Own };
  const neon = await measureDriverBundle();
  if (process.argv.includes("--json")) {
    console.log(
      JSON.stringify(
        { ...report, main: { minified: main.minified, gzipped: main.gzipped }, d1: d1Summary, neon },
        null,
        2,
      ),
    );
  } else {
    const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
    console.log(
      `edge.ts (the Worker entry) + postgres.js adapter: ${report.gzipped} bytes min+gzip (${kib(report.gzipped)}), ` +
        `${report.minified} bytes minified`,
    );
    console.log(
      `mod.ts (with the driver registry) + postgres.js adapter: ${main.gzipped} bytes min+gzip ` +
        `(${kib(main.gzipped)}), ${main.minified} bytes minified`,
    );
    console.log(
      `edge.ts + d1 driver (D1 is a binding: nothing else to bundle): ${d1.gzipped} bytes min+gzip ` +
        `(${kib(d1.gzipped)}), ${d1.minified} bytes minified; the d1 driver's own modules: ` +
        d1Own.map(({ path, bytes }) => `${path} ${bytes}`).join(", ") + " bytes minified",
    );
    console.log(
      `edge.ts + neon driver + @neondatabase/serverless (a whole Worker's database part): ${neon.gzipped} bytes ` +
        `min+gzip (${kib(neon.gzipped)}), ${neon.minified} bytes minified, of which the neon adapter ` +
        `${neon.adapter} and @neondatabase/serverless ${neon.library}`,
    );
    for (const { path, bytes } of report.modules) console.log(`${String(bytes).padStart(7)}  ${path}`);
  }
}
