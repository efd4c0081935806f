/**
 * Runs the behavioural suite on Deno, Bun and Node, one after the other, and
 * fails when any of them fails. `npm test` calls it.
 *
 *   node tests/run.ts                      every runtime
 *   node tests/run.ts --runtime=deno,bun   some of them
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name: string) => {
  const local = join(root, "node_modules", ".bin", name);
  return existsSync(local) ? local : name;
};

interface Runner {
  command: string;
  args: string[];
  /** Reads the pass/fail/skip counts from the runner's closing lines. */
  counts(output: string): Counts;
}

interface Counts {
  passed: number;
  failed: number;
  skipped: number;
}

const number = (output: string, pattern: RegExp) => Number(output.match(pattern)?.[1] ?? 0);

const runners: Record<string, Runner> = {
  deno: {
    command: bin("deno"),
    args: ["test", "-A", "tests/"],
    counts: (out) => ({
      // Deno counts each describe as a test and each test inside it as a step;
      // so every test of the suite lives inside a describe.
      passed: number(out, /\| \d+ passed \((\d+) steps?\)/),
      failed: number(out, /\| \d+ failed \((\d+) steps?\)/) || number(out, /\| (\d+) failed/),
      skipped: number(out, /\| \d+ ignored \((\d+) steps?\)/),
    }),
  },
  bun: {
    command: bin("bun"),
    args: ["--config=bun-compat/bunfig.toml", "test", "tests/"],
    counts: (out) => ({
      passed: number(out, /^\s*(\d+) pass$/m),
      failed: number(out, /^\s*(\d+) fail$/m),
      skipped: number(out, /^\s*(\d+) skip$/m),
    }),
  },
  node: {
    command: bin("node"),
    args: ["--test", "tests/**/*.test.ts"],
    counts: (out) => ({
      passed: number(out, /^ℹ pass (\d+)$/m),
      failed: number(out, /^ℹ fail (\d+)$/m) + number(out, /^ℹ cancelled (\d+)$/m),
      skipped: number(out, /^ℹ skipped (\d+)$/m),
    }),
  },
};

const requested = process.argv.find((arg) => arg.startsWith("--runtime="))?.slice("--runtime=".length);
const chosen = requested ? requested.split(",") : Object.keys(runners);
for (const name of chosen) {
  if (!(name in runners)) {
    console.error(`unknown runtime "${name}" (known: ${Object.keys(runners).join(", ")})`);
    process.exit(2);
  }
}

function run(name: string, runner: Runner): Promise<{ code: number; counts: Counts }> {
  console.log(`\n=== ${name}: ${[runner.command.replace(root + "/", ""), ...runner.args].join(" ")}\n`);
  return new Promise((resolve) => {
    const child = spawn(runner.command, runner.args, {
      cwd: root,
      env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
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
      resolve({ code: 127, counts: { passed: 0, failed: 0, skipped: 0 } });
    });
    child.on("close", (code) => resolve({ code: code ?? 1, counts: runner.counts(output) }));
  });
}

const results: { name: string; code: number; counts: Counts }[] = [];
for (const name of chosen) results.push({ name, ...await run(name, runners[name]) });

console.log("\n=== summary");
const total: Counts = { passed: 0, failed: 0, skipped: 0 };
let ok = true;
for (const { name, code, counts } of results) {
  const failedRun = code !== 0 || counts.failed > 0 || counts.passed === 0;
  if (failedRun) ok = false;
  total.passed += counts.passed;
  total.failed += counts.failed + (failedRun && counts.failed === 0 ? 1 : 0);
  total.skipped += counts.skipped;
  console.log(
    `${name}: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped` +
      (code === 0 ? "" : ` (exit code ${code})`),
  );
}
console.log(`total: ${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
process.exit(ok ? 0 : 1);
