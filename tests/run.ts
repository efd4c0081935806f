/**
 * Builds the npm package's JavaScript (scripts/build.ts), runs the
 * behavioural suite on Deno, Bun and Node, one after the other, then the
 * install tests (tests/install/: the packed package in fresh projects, on
 * every runtime; the JSR package in fresh Deno apps), and fails when any of
 * them fails. `npm test` calls it.
 *
 *   node tests/run.ts                                  every runner (not the opt-in ones)
 *   node tests/run.ts --runtime=deno,bun,install       some of them
 *   node tests/run.ts --runtime=bun-pg4,deno-pg4       opt-in: postgres.js 4.x on Bun and Deno
 *
 * `node-pg4` runs the suite's Postgres targets once more on Node with
 * postgres.js 4.x (the `postgres-v4` devDependency, loaded wherever
 * `postgres` is imported through tests/support/postgres_v4.ts), so the postgres-js
 * driver is tested on both lines it supports; the other runners use 3.4.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { startJsrRegistry } from "./support/jsr_registry.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name: string) => {
  const local = join(root, "node_modules", ".bin", name);
  return existsSync(local) ? local : name;
};

const reports = mkdtempSync(join(tmpdir(), "roost-junit-"));
process.on("exit", () => rmSync(reports, { recursive: true, force: true }));

// PGlite's first in-memory database in each test process runs initdb (seconds of CPU); the driver keeps the fresh
// cluster it dumps in this file (ROOST_PGLITE_TEMPLATE, docs/drivers.md) and the processes after load it instead.
// The file lives as long as the run.
const pgliteTemplate = join(reports, "pglite-template.tar");
const reportPath = (name: string) => join(reports, `${name}.xml`);

interface Runner {
  command: string;
  args: string[];
  /** Set over this process's environment. */
  env?: Record<string, string>;
  /** How a test's full name (`describe > test`) is read from a JUnit test case. */
  fullName(name: string, classname: string): string;
  /** Reads the pass/fail/skip counts from the runner's closing lines. */
  counts(output: string): Counts;
  /** Run only when named in `--runtime=`. */
  optional?: boolean;
  /**
   * The arguments of a type check run first with the same command and
   * environment, given the test run's; when it fails, the tests do not run
   * and the runner fails.
   */
  typeCheck?: (args: string[]) => string[];
}

interface Counts {
  passed: number;
  failed: number;
  skipped: number;
}

const number = (output: string, pattern: RegExp) => Number(output.match(pattern)?.[1] ?? 0);

/**
 * What node-pg4 runs of its files: the tests named after a Postgres target
 * (`[postgres · postgres-js]`, `[postgres standby · postgres-js]`,
 * `[example postgres · node]`, `[workerd postgres · postgres-js]`,
 * `[postgres-js]`, `[postgres · every driver at once]`: each name has its
 * target in brackets, its describe's or its own) and faults' check that no
 * rejection went unhandled. The other tests of the same files (SQL
 * splitting, URL parsing, option errors, fake drivers, the SQLite, MySQL and
 * D1 examples) are not about postgres.js: the node runner runs them, and
 * node-pg4 no longer a second time.
 */
const postgresTestsOnly = [
  String.raw`--test-name-pattern=\[[^\]]*postgres[^\]]*\]`,
  "--test-name-pattern=the whole file",
];

const runners: Record<string, Runner> = {
  deno: {
    command: bin("deno"),
    // --no-lock: the JSR mirror's checksums differ from the public registry's, and the project commits no deno.lock.
    // --no-check, after the same files were type-checked once (typeCheck): with checking on, Deno checks a worker's
    // module again each time a test starts a worker thread (about 1 s each; the SQLite worker target took 283 s).
    args: ["test", "-A", "--no-lock", "--no-check", `--junit-path=${reportPath("deno")}`, "tests/"],
    typeCheck: (args) =>
      args.flatMap((arg) => arg === "--no-check" ? ["--no-run"] : arg.startsWith("--junit") ? [] : [arg]),
    // Deno reports each describe as a case of its own and each test as a step named `describe > test`.
    fullName: (name) => name.includes(" > ") ? name : "",
    counts: (out) => ({
      // Deno counts each describe as a test and each test inside it as a step;
      // so every test of the suite lives inside a describe. A test skipped with
      // node:test's `skip` option (tests/support/support.ts skipUnless) is an ignored
      // step: "0 ignored (35 steps)". Skip tests, never a describe: Deno would
      // count a skipped describe as one ignored test, Node and Bun not at all.
      passed: number(out, /\| \d+ passed \((\d+) steps?\)/),
      failed: number(out, /\| \d+ failed \((\d+) steps?\)/) || number(out, /\| (\d+) failed/),
      skipped: number(out, /\| \d+ ignored \((\d+) steps?\)/),
    }),
  },
  bun: {
    command: bin("bun"),
    args: [
      "--config=bun-compat/bunfig.toml",
      "test",
      // Bun's default of 5 s per test is shorter than the pool and fault tests need, and its bunfig setting is not read.
      "--timeout=60000",
      "--reporter=junit",
      `--reporter-outfile=${reportPath("bun")}`,
      "tests/",
    ],
    fullName: (name, classname) => `${classname} > ${name}`,
    counts: (out) => ({
      passed: number(out, /^\s*(\d+) pass$/m),
      failed: number(out, /^\s*(\d+) fail$/m),
      skipped: number(out, /^\s*(\d+) skip$/m),
    }),
  },
  node: nodeRunner("node", {}),
  // Through NODE_OPTIONS, so the Node processes the tests start (examples, fixtures, the CLI) load 4.x too.
  "node-pg4": nodeRunner("node-pg4", {
    NODE_OPTIONS: [
      process.env.NODE_OPTIONS,
      `--import=${pathToFileURL(join(root, "tests", "support", "postgres_v4.ts"))}`,
    ]
      .filter(Boolean).join(" "),
    ROOST_TEST_DRIVERS: "postgres-js",
    // The PgBouncer targets run on the node runner; 4.x's differences are not about poolers.
    ROOST_TEST_PGBOUNCER: "off",
  }, [...postgresTestsOnly, ...perTargetFiles()]),
};

/** postgres.js 4.x's entry module, where bun-pg4 and deno-pg4 map `postgres`. */
const v4Entry = join(root, "node_modules", "postgres-v4", "src", "index.js");

/**
 * Opt-in, not in `npm test` (which keeps to node-pg4, to stay short: these
 * take about 70 s and 90 s more): the same files on Bun and Deno with
 * postgres.js 4.x, `postgres` mapped to node_modules/postgres-v4 by a
 * tsconfig `paths` override (Bun) or an import map (Deno, without type
 * checking, as the map points at JavaScript; tests/unit/postgres_versions.test.ts
 * type-checks the driver). Unlike node-pg4's, the mapping does not reach the
 * processes tests start, which load 3.4.
 */
runners["bun-pg4"] = {
  ...runners.bun,
  args: [
    `--tsconfig-override=${
      writeConfig("bun-pg4.tsconfig.json", { compilerOptions: { paths: { postgres: [v4Entry] } } })
    }`,
    ...runners.bun.args.flatMap((arg) => arg === "tests/" ? perTargetFiles() : [arg.replace("bun.xml", "bun-pg4.xml")]),
  ],
  env: { ROOST_TEST_DRIVERS: "postgres-js", ROOST_TEST_PGBOUNCER: "off" },
  optional: true,
};
runners["deno-pg4"] = {
  ...runners.deno,
  // The deno runner type-checks the same files against 3.4; 4.x's typings are tests/unit/postgres_versions.test.ts's.
  typeCheck: undefined,
  args: runners.deno.args.flatMap((arg) =>
    arg === "test"
      ? ["test", `--import-map=${writeConfig("deno-pg4.imports.json", denoImportsWithV4())}`]
      : arg === "tests/"
      ? perTargetFiles()
      : [arg.replace("deno.xml", "deno-pg4.xml")]
  ),
  env: { ROOST_TEST_DRIVERS: "postgres-js", ROOST_TEST_PGBOUNCER: "off" },
  optional: true,
};

/** Writes a JSON file into the reports' temporary directory; returns its path. */
function writeConfig(name: string, content: unknown): string {
  const path = join(reports, name);
  writeFileSync(path, JSON.stringify(content));
  return path;
}

/** deno.json's import map (its relative targets made absolute), with `postgres` mapped to 4.x. */
function denoImportsWithV4(): { imports: Record<string, string> } {
  const { imports } = JSON.parse(readFileSync(join(root, "deno.json"), "utf8")) as { imports: Record<string, string> };
  const absolute = Object.entries(imports).map(([key, target]) =>
    [key, target.startsWith("./") ? pathToFileURL(join(root, target)).href : target] as const
  );
  return { imports: { ...Object.fromEntries(absolute), postgres: pathToFileURL(v4Entry).href } };
}

/**
 * The test files whose tests run per target (behaviour tests that call
 * tests/support/targets.ts's `targets(…)`), the ones a run limited to one
 * driver needs.
 */
function perTargetFiles(): string[] {
  const behaviour = join(root, "tests", "behaviour");
  return readdirSync(behaviour)
    .filter((name) => name.endsWith(".test.ts"))
    .filter((name) => /\btargets\(/.test(readFileSync(join(behaviour, name), "utf8")))
    .sort()
    .map((name) => `tests/behaviour/${name}`);
}

// The packed package in fresh projects, and the JSR package in fresh Deno apps (tests/install/): they spawn every
// runtime themselves, so they run once, on Node, last.
runners.install = nodeRunner("install", {}, ["tests/install/packaged.ts", "tests/install/jsr.ts"]);

/** `node --test` over `files` (the whole suite), with `env` set. */
function nodeRunner(name: string, env: Record<string, string>, files = ["tests/**/*.test.ts"]): Runner {
  return {
    command: bin("node"),
    args: [
      "--test",
      "--test-reporter=spec",
      "--test-reporter-destination=stdout",
      "--test-reporter=junit",
      `--test-reporter-destination=${reportPath(name)}`,
      ...files,
    ],
    env,
    fullName: (name, classname) => `${classname} > ${name}`,
    counts: (out) => ({
      passed: number(out, /^ℹ pass (\d+)$/m),
      failed: number(out, /^ℹ fail (\d+)$/m) + number(out, /^ℹ cancelled (\d+)$/m),
      skipped: number(out, /^ℹ skipped (\d+)$/m),
    }),
  };
}

const requested = process.argv.find((arg) => arg.startsWith("--runtime="))?.slice("--runtime=".length);
const chosen = requested ? requested.split(",") : Object.keys(runners).filter((name) => !runners[name].optional);
for (const name of chosen) {
  if (!(name in runners)) {
    console.error(`unknown runtime "${name}" (known: ${Object.keys(runners).join(", ")})`);
    process.exit(2);
  }
}

function run(
  name: string,
  runner: Runner,
): Promise<{ code: number; counts: Counts; output: string; seconds: number }> {
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  const env = { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0", ROOST_PGLITE_TEMPLATE: pgliteTemplate, ...runner.env };
  const command = (args: string[]) => [runner.command.replace(root + "/", ""), ...args].join(" ");
  if (runner.typeCheck !== undefined) {
    const args = runner.typeCheck(runner.args);
    console.log(`\n=== ${name} type check: ${command(args)}\n`);
    const checked = spawnSync(runner.command, args, { cwd: root, env, stdio: "inherit" });
    if (checked.status !== 0) {
      console.error(`${name}: the type check failed; its tests did not run`);
      const none = { passed: 0, failed: 0, skipped: 0 };
      return Promise.resolve({ code: checked.status ?? 1, counts: none, output: "", seconds: seconds() });
    }
  }
  console.log(`\n=== ${name}: ${command(runner.args)}\n`);
  return new Promise((resolve) => {
    const child = spawn(runner.command, runner.args, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk) => {
      output += chunk;
      process.stdout.write(chunk);
    });
    child.stderr.on("data", (chunk) => {
      output += chunk;
      process.stderr.write(chunk);
    });
    child.on("error", (error) => {
      console.error(`${name}: could not start ${runner.command}: ${error.message} (run npm ci first)`);
      resolve({ code: 127, counts: { passed: 0, failed: 0, skipped: 0 }, output, seconds: seconds() });
    });
    child.on(
      "close",
      (code) => resolve({ code: code ?? 1, counts: runner.counts(output), output, seconds: seconds() }),
    );
  });
}

const entities: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
const unescapeXml = (text: string) =>
  text.replace(
    /&(#x[0-9a-f]+|#\d+|\w+);/gi,
    (whole, entity: string) =>
      entity[0] === "#"
        ? String.fromCodePoint(Number(entity[1] === "x" ? `0${entity.slice(1)}` : entity.slice(1)))
        : entities[entity] ?? whole,
  );
const attribute = (attributes: string, name: string) =>
  unescapeXml(attributes.match(new RegExp(`\\b${name}="([^"]*)"`))?.[1] ?? "");

/**
 * Counts a runtime's results per target, read from its JUnit report: the
 * `[place · driver]` in a test's name, or "core" for tests of no database.
 */
function countsByTarget(runner: Runner, report: string): Map<string, Counts> {
  const byTarget = new Map<string, Counts>();
  if (!existsSync(report)) return byTarget;
  const xml = readFileSync(report, "utf8");
  // Attributes are read quote by quote: Node's report leaves a ">" in a test's name unescaped.
  for (const match of xml.matchAll(/<testcase\b((?:[^>"]|"[^"]*")*?)(?:\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const [, attributes, body = ""] = match;
    const fullName = runner.fullName(attribute(attributes, "name"), attribute(attributes, "classname"));
    if (fullName === "") continue;
    const target = fullName.match(/\[([^\]]+ · [^\]]+)\]/)?.[1] ?? "core";
    const counts = byTarget.get(target) ?? { passed: 0, failed: 0, skipped: 0 };
    if (/<(failure|error)\b/.test(body)) counts.failed++;
    else if (/<skipped\b/.test(body)) counts.skipped++;
    else counts.passed++;
    byTarget.set(target, counts);
  }
  return byTarget;
}

interface XmlElement {
  tag: string;
  attributes: string;
  children: XmlElement[];
}

/** The report's testsuite and testcase elements as a tree (the rest of the XML is not read). */
function junitTree(xml: string): XmlElement {
  const top: XmlElement = { tag: "", attributes: "", children: [] };
  const open = [top];
  // Attributes are read quote by quote, as in countsByTarget.
  for (
    const [, closing, tag, attributes, selfClosing] of xml.matchAll(
      /<(\/?)(testsuites|testsuite|testcase)\b((?:[^>"]|"[^"]*")*?)(\/?)>/g,
    )
  ) {
    if (closing) {
      if (open.length > 1) open.pop();
      continue;
    }
    const element: XmlElement = { tag, attributes, children: [] };
    open[open.length - 1].children.push(element);
    if (!selfClosing) open.push(element);
  }
  return top;
}

/**
 * Where a runner's time went, read from the `time` attributes of its JUnit
 * report: seconds per test file and per target. Each runner writes them
 * differently: Bun times each file's suite (with a `file`), Node each
 * describe's suite (its cases name the `file`), Deno each describe as a case
 * of its file's suite (named after the file; the steps inside, under
 * another suite, name no file and are not counted twice). Time a file spends
 * outside its tests (starting its process, probing the targets) is in none.
 */
function timesOf(report: string): { files: Map<string, number>; targets: Map<string, number> } {
  const files = new Map<string, number>();
  const targets = new Map<string, number>();
  if (!existsSync(report)) return { files, targets };
  const fileOf = (element: XmlElement, inherited: string): string => {
    const own = attribute(element.attributes, "file");
    if (own !== "") return own;
    const name = attribute(element.attributes, "name");
    if (element.tag === "testsuite" && /^\.?\/?tests\//.test(name)) return name;
    if (inherited !== "") return inherited;
    if (element.tag !== "testsuite") return "";
    for (const child of element.children) {
      const file = fileOf(child, "");
      if (file !== "") return file;
    }
    return "";
  };
  const add = (into: Map<string, number>, key: string, seconds: number) =>
    into.set(key, (into.get(key) ?? 0) + seconds);
  // Each walk counts the outermost timed element of a file (or of a target) and does not go further down.
  const walk = (element: XmlElement, inherited: string, byFile: boolean) => {
    const file = element.tag === "testsuites" ? "" : fileOf(element, inherited);
    const time = Number(attribute(element.attributes, "time") || NaN);
    const target = attribute(element.attributes, "name").match(/\[([^\]]+ · [^\]]+)\]/)?.[1];
    if (file !== "" && !Number.isNaN(time) && (byFile || target !== undefined)) {
      if (byFile) add(files, file.replace(root + "/", "").replace(/^\.\//, ""), time);
      else add(targets, target!, time);
      return;
    }
    for (const child of element.children) walk(child, file, byFile);
  };
  const tree = junitTree(readFileSync(report, "utf8"));
  walk(tree, "", true);
  walk(tree, "", false);
  return { files, targets };
}

const minutes = (seconds: number) =>
  `${Math.floor(Math.round(seconds) / 60)}m${String(Math.round(seconds) % 60).padStart(2, "0")}s`;

/** The `count` largest entries, as `  12.3s name` lines. */
const slowest = (times: Map<string, number>, count: number) =>
  [...times].sort(([, a], [, b]) => b - a).slice(0, count).map(([name, seconds]) =>
    `  ${seconds.toFixed(1).padStart(6)}s ${name}`
  );

/** The targets tests/support/targets.ts left out on this runtime (`SKIPPING [place · driver]: why`), once each. */
function skippedTargets(output: string): Map<string, string> {
  const skipped = new Map<string, string>();
  for (const [, target, why] of output.matchAll(/^SKIPPING \[([^\]]+)\]:? (.*)$/gm)) skipped.set(target, why);
  return skipped;
}

interface Result {
  name: string;
  code: number;
  counts: Counts;
  byTarget: Map<string, Counts>;
  skipped: Map<string, string>;
  seconds: number;
}

// The suites import the package by name in places (examples, bundled Workers), which resolves to the build.
console.log("=== build: node scripts/build.ts");
const build = spawnSync(bin("node"), ["scripts/build.ts"], { cwd: root, stdio: "inherit" });
if (build.status !== 0) {
  console.error("build failed: the suites would run against a stale or missing dist/");
  process.exit(1);
}

// The Deno drivers (deno-postgres, deno-sqlite) load their JSR packages from the local mirror when there is one,
// for the Deno runner only; without it they use the public registry, and where that cannot be reached they skip
// (outside CI) or fail (in CI: tests/support/targets.ts).
const registry = chosen.includes("deno") ? await startJsrRegistry(root, process.env) : undefined;
if (registry !== undefined) {
  console.log(`=== JSR: serving ${registry.mirror} at ${registry.env.JSR_URL} for the Deno runner`);
  runners.deno.env = { ...runners.deno.env, ...registry.env };
  // The Deno-only tests (Deno.test with jsr:@std/assert, served by the same registry).
  runners.deno.args = [...runners.deno.args, "tests/deno/jsr_drivers.deno.ts"];
  process.on("exit", () => registry.stop());
} else if (chosen.includes("deno")) {
  console.log(
    "=== JSR: no local mirror (../shared/jsr or ROOST_JSR_MIRROR): tests/deno/ not run; the Deno drivers use jsr.io",
  );
}

const results: Result[] = [];
for (const name of chosen) {
  const { code, counts, output, seconds } = await run(name, runners[name]);
  if (name === "deno") registry?.stop();
  const byTarget = countsByTarget(runners[name], reportPath(name));
  results.push({ name, code, counts, byTarget, skipped: skippedTargets(output), seconds });
}

// Where CI time goes: each runner's wall time, and its slowest files and targets (time inside their tests).
console.log("\n=== time per runner: slowest test files and targets");
for (const { name, seconds } of results) {
  const { files, targets } = timesOf(reportPath(name));
  console.log(`${name}: ${minutes(seconds)} wall`);
  if (files.size > 0) console.log([` slowest files (of ${files.size}):`, ...slowest(files, 15)].join("\n"));
  if (targets.size > 0) console.log([" slowest targets:", ...slowest(targets, 5)].join("\n"));
}

console.log("\n=== per runner x target (place · driver; for install: runtime · form)");
for (const { name, byTarget, skipped } of results) {
  for (const [target, counts] of [...byTarget].sort(([a], [b]) => a.localeCompare(b))) {
    console.log(
      `${name.padEnd(8)} ${
        target.padEnd(32)
      } ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`,
    );
  }
  for (const [target, why] of skipped) console.log(`${name.padEnd(8)} ${target.padEnd(32)} not run: ${why}`);
}

console.log("\n=== summary");
const total: Counts = { passed: 0, failed: 0, skipped: 0 };
let ok = true;
for (const { name, code, counts, seconds } of results) {
  const failedRun = code !== 0 || counts.failed > 0 || counts.passed === 0;
  if (failedRun) ok = false;
  total.passed += counts.passed;
  total.failed += counts.failed + (failedRun && counts.failed === 0 ? 1 : 0);
  total.skipped += counts.skipped;
  console.log(
    `${name}: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped in ${minutes(seconds)}` +
      (code === 0 ? "" : ` (exit code ${code})`),
  );
}
console.log(
  `total: ${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped in ${
    minutes(results.reduce((sum, { seconds }) => sum + seconds, 0))
  }`,
);
process.exit(ok ? 0 : 1);
