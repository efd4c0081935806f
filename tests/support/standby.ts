/**
 * A real PostgreSQL hot standby of the test server, for tests that need a
 * read-only replica. Not a test file: tests import `createStandby`.
 *
 * It copies the primary with `pg_basebackup`, starts the copy on a free port
 * in a temporary directory and removes it on `destroy()` or when the process
 * exits. The primary must use trust authentication on 127.0.0.1; replication
 * connections are allowed by appending one line to its pg_hba.conf if needed.
 * When the process runs as root, every Postgres tool runs as the `postgres`
 * OS user (through `runuser`); otherwise as the current user.
 */
import { execFile, spawnSync } from "node:child_process";
import {
  appendFileSync,
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  promises as fsp,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { freePort, osUserIds, poll, removeOrphans, tail } from "./local_server.ts";

/** A running hot standby of the test Postgres server. */
export interface Standby {
  /** postgres://postgres@127.0.0.1:<port>/<database> of the standby (same database name as the primary URL). */
  readonly url: string;
  /** The TCP port the standby listens on (127.0.0.1). */
  readonly port: number;
  /** Stops the standby (pg_ctl stop -m fast, waits). Idempotent. */
  stop(): Promise<void>;
  /** Starts it again after stop() and waits until it accepts connections and is in recovery. Idempotent. */
  start(): Promise<void>;
  /** Stops it (immediate) and removes its directory. Idempotent; never throws. */
  destroy(): Promise<void>;
  /** Promotes it to a primary (pg_ctl promote, waits until it accepts writes). */
  promote(): Promise<void>;
}

/** How the standby is configured. */
export interface StandbyOptions {
  /** recovery_min_apply_delay in ms (0 = none). */
  applyDelay?: number;
}

/** The line added to the primary's pg_hba.conf when replication connections are refused. */
const HBA_LINE = "host replication all 127.0.0.1/32 trust";
/** Settings a hot standby must not set lower than its primary. */
const AT_LEAST_PRIMARY = [
  "max_connections",
  "max_locks_per_transaction",
  "max_prepared_transactions",
  "max_wal_senders",
  "max_worker_processes",
];

const asRoot = process.getuid?.() === 0;
/** Data directories are named `roost-standby-<pid of the owning process>-XXXXXX`. */
const PREFIX = "roost-standby-";

interface Server {
  host: string;
  port: number;
  user: string;
  database: string;
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));
const quote = (value: string) => `'${value.replaceAll("'", "''")}'`;

/** runuser lives in /usr/sbin, which a minimal PATH (`env -i`, some CI shells) leaves out. */
const runuser =
  ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser", "/bin/runuser"].find((path) => existsSync(path)) ??
    "runuser";

/** A command line that runs `file` as the postgres OS user when we are root. */
function asPostgres(file: string, args: string[]): [string, string[]] {
  return asRoot ? [runuser, ["-u", "postgres", "--", file, ...args]] : [file, args];
}

const execOptions = (timeout: number) => ({
  cwd: "/",
  timeout,
  env: { ...process.env, PGCONNECT_TIMEOUT: "5" },
});

/** Runs a tool as postgres; resolves with its exit code and output, never rejects. */
function exec(file: string, args: string[], timeout: number): Promise<Result> {
  const [command, argv] = asPostgres(file, args);
  return new Promise((resolve) => {
    execFile(command, argv, { ...execOptions(timeout), encoding: "utf8" }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
      const killed = error?.killed ? `killed after ${timeout / 1000} s` : "";
      resolve({ code, stdout: stdout.trim(), stderr: stderr.trim() || killed || (error?.message ?? "") });
    });
  });
}

/** Runs a tool as postgres and returns its stdout; rejects with its stderr when it fails. */
async function run(file: string, args: string[], timeout = 30_000): Promise<string> {
  const result = await exec(file, args, timeout);
  if (result.code !== 0) throw new Error(`${file} exited with ${result.code}: ${result.stderr}`);
  return result.stdout;
}

/** Runs `fn`, prefixing any error with the step that failed. */
async function step<T>(name: string, fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw new Error(`createStandby: ${name} failed: ${messageOf(error)}`, { cause: error });
  }
}

/** psql on PATH, or next to pg_config's binaries. */
function findPsql(): string {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    if (dir && existsSync(join(dir, "psql"))) return join(dir, "psql");
  }
  const bindir = spawnSync("pg_config", ["--bindir"], { encoding: "utf8" }).stdout?.trim();
  if (bindir && existsSync(join(bindir, "psql"))) return join(bindir, "psql");
  throw new Error("psql not found on PATH or in pg_config --bindir");
}

/** Runs one statement with psql and returns its unaligned output. */
function query(psql: string, server: Server, sql: string): Promise<string> {
  const args = ["-X", "-h", server.host, "-p", String(server.port), "-U", server.user, "-d", server.database];
  return run(psql, [...args, "-v", "ON_ERROR_STOP=1", "-Atc", sql], 10_000);
}

/** Resolves when a physical replication connection to the server succeeds; rejects with psql's error. */
async function replicate(psql: string, server: Server): Promise<boolean> {
  const conninfo =
    `host=${server.host} port=${server.port} user=${server.user} dbname=${server.database} replication=true`;
  await run(psql, ["-X", conninfo, "-Atc", "IDENTIFY_SYSTEM"], 10_000);
  return true;
}

/** Runs `fn` holding an exclusive lock file shared by every process on this machine. */
async function withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const path = join(tmpdir(), name);
  const deadline = Date.now() + 90_000;
  for (;;) {
    try {
      closeSync(openSync(path, "wx"));
      break;
    } catch (error) {
      if ((error as { code?: string }).code !== "EEXIST") throw error;
      const age = Date.now() - (statSync(path, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > 60_000) rmSync(path, { force: true }); // left by a crashed process
      else if (Date.now() > deadline) throw new Error(`timed out waiting for the lock ${path}`);
      else await sleep(100);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(path, { force: true });
  }
}

/** Makes sure the primary accepts replication connections from 127.0.0.1 (see HBA_LINE). */
async function allowReplication(psql: string, primary: Server): Promise<void> {
  if (await replicate(psql, primary).catch(() => false)) return;
  await withLock("roost-standby-hba.lock", async () => {
    if (await replicate(psql, primary).catch(() => false)) return;
    const rules = await query(
      psql,
      primary,
      "select count(*) from pg_hba_file_rules where 'replication' = any(database)",
    );
    if (rules === "0") {
      const file = await query(psql, primary, "show hba_file");
      const text = readFileSync(file, "utf8");
      appendFileSync(file, `${text === "" || text.endsWith("\n") ? "" : "\n"}${HBA_LINE}\n`);
    }
    await query(psql, primary, "select pg_reload_conf()");
    await poll("the primary to allow replication connections", 10_000, () => replicate(psql, primary));
  });
}

/** The directory holding pg_basebackup and pg_ctl for the server's major version. */
async function binaries(psql: string, primary: Server): Promise<string> {
  const version = Number(await query(psql, primary, "show server_version_num"));
  const debian = `/usr/lib/postgresql/${Math.floor(version / 10000)}/bin`;
  if (existsSync(join(debian, "pg_basebackup"))) return debian;
  const bindir = spawnSync("pg_config", ["--bindir"], { encoding: "utf8" }).stdout?.trim() ?? "";
  if (bindir && existsSync(join(bindir, "pg_basebackup"))) return bindir;
  throw new Error(`pg_basebackup not found in ${debian} nor in pg_config --bindir (${bindir || "no pg_config"})`);
}

/** Stops the server in `dir` at once and removes `dir`, synchronously (for exit handlers). */
function removeNow(pgCtl: string, dir: string): void {
  spawnSync(...asPostgres(pgCtl, ["-D", dir, "-m", "immediate", "-w", "stop"]), {
    ...execOptions(30_000),
    stdio: "ignore",
  });
  rmSync(dir, { recursive: true, force: true });
}

/** Creates and starts a standby of the server at primaryUrl (e.g. postgres://postgres@127.0.0.1:5432/test). Throws an Error with a clear message (including the tool's stderr) when it cannot. */
export async function createStandby(primaryUrl: string, options: StandbyOptions = {}): Promise<Standby> {
  const applyDelay = options.applyDelay ?? 0;
  if (!Number.isFinite(applyDelay) || applyDelay < 0) throw new Error(`createStandby: bad applyDelay ${applyDelay}`);
  const parsed = await step(`parsing the primary URL ${primaryUrl}`, () => new URL(primaryUrl));
  const user = decodeURIComponent(parsed.username) || "postgres";
  const primary: Server = {
    host: parsed.hostname || "127.0.0.1",
    port: Number(parsed.port || 5432),
    user,
    database: decodeURIComponent(parsed.pathname.slice(1)) || user,
  };
  const psql = await step("finding psql", findPsql);
  await step("allowing replication connections on the primary", () => allowReplication(psql, primary));
  const bin = await step("finding the Postgres binaries", () => binaries(psql, primary));
  const limits = await step("reading the primary's settings", async () => {
    const names = AT_LEAST_PRIMARY.map(quote).join(", ");
    const rows = await query(psql, primary, `select name, setting from pg_settings where name in (${names})`);
    return new Map(rows.split("\n").map((row) => row.split("|") as [string, string]));
  });
  const ids = asRoot ? await step("looking up the postgres OS user", () => osUserIds("postgres")) : undefined;
  const own = (path: string) => {
    if (ids) chownSync(path, ...ids);
  };
  const port = await step("finding a free port", freePort);

  const pgCtl = join(bin, "pg_ctl");
  await step("removing orphaned standbys", () => removeOrphans(PREFIX, (dir) => removeNow(pgCtl, dir)));
  const dir = mkdtempSync(join(tmpdir(), `${PREFIX}${process.pid}-`));
  const log = join(dir, "server.log");
  const self: Server = { host: "127.0.0.1", port, user, database: primary.database };
  let destroyed = false;

  // Node and Bun emit "exit"; `deno test` only dispatches "unload".
  const onExit = () => {
    if (destroyed) return;
    destroyed = true;
    removeNow(pgCtl, dir);
  };
  process.on("exit", onExit);
  globalThis.addEventListener?.("unload", onExit);

  const running = async () => (await exec(pgCtl, ["-D", dir, "status"], 10_000)).code === 0;
  const ready = () =>
    poll(
      "the standby to accept connections in recovery",
      30_000,
      async () => (await query(psql, self, "select pg_is_in_recovery()")) === "t",
    );
  const startServer = async () => {
    const result = await exec(pgCtl, ["-D", dir, "-l", log, "-w", "-t", "60", "start"], 90_000);
    if (result.code !== 0) throw new Error(`pg_ctl start exited with ${result.code}: ${result.stderr}\n${tail(log)}`);
    await ready();
  };

  const standby: Standby = {
    url: `postgres://${encodeURIComponent(user)}@127.0.0.1:${port}/${encodeURIComponent(primary.database)}`,
    port,
    async stop() {
      if (destroyed || !(await running())) return;
      await run(pgCtl, ["-D", dir, "-m", "fast", "-w", "-t", "60", "stop"], 90_000);
    },
    async start() {
      if (destroyed) throw new Error("Standby.start: the standby was destroyed");
      if (await running()) await ready();
      else await startServer();
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      process.off("exit", onExit);
      globalThis.removeEventListener?.("unload", onExit);
      await exec(pgCtl, ["-D", dir, "-m", "immediate", "-w", "stop"], 30_000);
      await fsp.rm(dir, { recursive: true, force: true }).catch(() => {});
    },
    async promote() {
      await run(pgCtl, ["-D", dir, "-w", "-t", "60", "promote"], 90_000);
      await poll(
        "the promoted standby to leave recovery",
        30_000,
        async () => (await query(psql, self, "select pg_is_in_recovery()")) === "f",
      );
    },
  };

  try {
    await step("preparing the data directory", () => {
      chmodSync(dir, 0o700);
      own(dir);
    });
    await step("pg_basebackup", () =>
      run(join(bin, "pg_basebackup"), [
        ...["-h", primary.host, "-p", String(primary.port), "-U", user, "-D", dir],
        ...["-X", "stream", "-R", "-c", "fast", "--no-sync", "-w", "-l", "roost-standby"],
      ], 120_000));
    await step("writing the standby's configuration", () => {
      const setting = (name: string, value: string | number) => `${name} = ${value}`;
      const atLeast = (name: string, value: number) => Math.max(value, Number(limits.get(name) ?? 0));
      const conf = [
        "# Written by Roost's tests/support/standby.ts",
        setting("port", port),
        setting("listen_addresses", "'127.0.0.1'"),
        setting("unix_socket_directories", quote(dir)),
        setting("cluster_name", quote(`roost-standby-${port}`)),
        setting("hot_standby", "on"),
        setting("hot_standby_feedback", "off"),
        setting("max_connections", atLeast("max_connections", 40)),
        ...AT_LEAST_PRIMARY.filter((name) => name !== "max_connections").map((name) => setting(name, atLeast(name, 0))),
        setting("shared_buffers", "'16MB'"),
        setting("fsync", "off"),
        setting("ssl", "off"),
        ...(applyDelay > 0 ? [setting("recovery_min_apply_delay", quote(`${Math.round(applyDelay)}ms`))] : []),
      ];
      // pg_basebackup -R appended primary_conninfo here; drop anything else the primary set with ALTER SYSTEM,
      // since this file overrides postgresql.conf (a copied port or listen_addresses would clash).
      const auto = join(dir, "postgresql.auto.conf");
      const kept = readFileSync(auto, "utf8").split("\n").filter((line) => /^\s*(#|primary_conninfo\s*=)/.test(line));
      const files: [string, string][] = [
        ["postgresql.conf", conf.join("\n")],
        ["postgresql.auto.conf", kept.join("\n")],
        ["pg_hba.conf", "local all all trust\nhost all all 127.0.0.1/32 trust"],
        ["pg_ident.conf", ""],
      ];
      for (const [name, text] of files) {
        writeFileSync(join(dir, name), `${text}\n`, { mode: 0o600 });
        own(join(dir, name));
      }
    });
    await step("starting the standby", startServer);
    return standby;
  } catch (error) {
    await standby.destroy();
    throw error;
  }
}

/** A Postgres server of its own, for tests that stop or promote servers (the shared one must never be stopped). */
export interface TestPrimary {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  readonly url: string;
  /** The TCP port it listens on (127.0.0.1). */
  readonly port: number;
  /** Stops it (pg_ctl stop -m fast: sessions end, the server goes away). Idempotent. */
  stop(): Promise<void>;
  /** Stops it (immediate) and removes its directory. Idempotent; never throws. */
  destroy(): Promise<void>;
}

/** Data directories of primaries are named `roost-primary-<pid of the owning process>-XXXXXX`. */
const PRIMARY_PREFIX = "roost-primary-";

/** The directory holding initdb and pg_ctl: the newest Debian cluster version's, or pg_config's. */
function serverBinaries(): string {
  const versions = existsSync("/usr/lib/postgresql")
    ? readdirSync("/usr/lib/postgresql").filter((name) => /^\d+$/.test(name)).sort((a, b) => Number(b) - Number(a))
    : [];
  for (const version of versions) {
    const dir = `/usr/lib/postgresql/${version}/bin`;
    if (existsSync(join(dir, "initdb"))) return dir;
  }
  const bindir = spawnSync("pg_config", ["--bindir"], { encoding: "utf8" }).stdout?.trim() ?? "";
  if (bindir && existsSync(join(bindir, "initdb"))) return bindir;
  throw new Error(
    `initdb not found in /usr/lib/postgresql/*/bin nor in pg_config --bindir (${bindir || "no pg_config"})`,
  );
}

/**
 * Creates and starts a Postgres server of its own (initdb in a temporary
 * directory, a free port, trust authentication, replication allowed), to be
 * the primary of {@linkcode createStandby}. Removed on `destroy()` or when
 * the process exits. Throws an Error naming the step that failed.
 */
export async function createPrimary(): Promise<TestPrimary> {
  const psql = await step("finding psql", findPsql);
  const bin = await step("finding initdb", serverBinaries);
  const pgCtl = join(bin, "pg_ctl");
  const ids = asRoot ? await step("looking up the postgres OS user", () => osUserIds("postgres")) : undefined;
  const port = await step("finding a free port", freePort);
  removeOrphans(PRIMARY_PREFIX, (dir) => removeNow(pgCtl, dir));
  const dir = mkdtempSync(join(tmpdir(), `${PRIMARY_PREFIX}${process.pid}-`));
  const data = join(dir, "data");
  const log = join(dir, "server.log");
  const user = "postgres";
  const self: Server = { host: "127.0.0.1", port, user, database: "postgres" };
  let destroyed = false;
  const onExit = () => {
    if (destroyed) return;
    destroyed = true;
    removeNow(pgCtl, data);
    rmSync(dir, { recursive: true, force: true });
  };
  process.on("exit", onExit);
  globalThis.addEventListener?.("unload", onExit);
  const running = async () => (await exec(pgCtl, ["-D", data, "status"], 10_000)).code === 0;
  const primary: TestPrimary = {
    url: `postgres://${user}@127.0.0.1:${port}/postgres`,
    port,
    async stop() {
      if (destroyed || !(await running())) return;
      await run(pgCtl, ["-D", data, "-m", "fast", "-w", "-t", "60", "stop"], 90_000);
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      process.off("exit", onExit);
      globalThis.removeEventListener?.("unload", onExit);
      await exec(pgCtl, ["-D", data, "-m", "immediate", "-w", "stop"], 30_000);
      await fsp.rm(dir, { recursive: true, force: true }).catch(() => {});
    },
  };
  try {
    await step("preparing the directory", () => {
      chmodSync(dir, 0o700);
      if (ids) chownSync(dir, ...ids);
    });
    await step(
      "initdb",
      () =>
        run(join(bin, "initdb"), [
          "-D",
          data,
          "-U",
          user,
          "--auth=trust",
          "-E",
          "UTF8",
          "--no-sync",
          "--no-instructions",
        ], 120_000),
    );
    await step("writing the configuration", () => {
      const conf = [
        "# Written by Roost's tests/support/standby.ts",
        `port = ${port}`,
        "listen_addresses = '127.0.0.1'",
        `unix_socket_directories = ${quote(dir)}`,
        `cluster_name = 'roost-primary-${port}'`,
        "wal_level = replica",
        "max_wal_senders = 5",
        "hot_standby = on",
        "max_connections = 40",
        "shared_buffers = '16MB'",
        "fsync = off",
        "ssl = off",
      ];
      appendFileSync(join(data, "postgresql.conf"), `\n${conf.join("\n")}\n`);
      writeFileSync(
        join(data, "pg_hba.conf"),
        `local all all trust\nhost all all 127.0.0.1/32 trust\n${HBA_LINE}\n`,
        { mode: 0o600 },
      );
      if (ids) chownSync(join(data, "pg_hba.conf"), ...ids);
    });
    await step("starting the primary", async () => {
      const result = await exec(pgCtl, ["-D", data, "-l", log, "-w", "-t", "60", "start"], 90_000);
      if (result.code !== 0) throw new Error(`pg_ctl start exited with ${result.code}: ${result.stderr}\n${tail(log)}`);
      await poll(
        "the primary to accept connections",
        30_000,
        async () => (await query(psql, self, "select pg_is_in_recovery()")) === "f",
      );
    });
    return primary;
  } catch (error) {
    await primary.destroy();
    throw error;
  }
}

/**
 * Changes a running standby's recovery_min_apply_delay to `ms` (ALTER SYSTEM
 * on the standby, then a reload; it lasts across stop() and start()).
 */
export async function setApplyDelay(standby: Standby, ms: number): Promise<void> {
  if (!Number.isInteger(ms) || ms < 0) throw new Error(`setApplyDelay: bad delay ${ms}`);
  const url = new URL(standby.url);
  const user = decodeURIComponent(url.username) || "postgres";
  const server: Server = {
    host: "127.0.0.1",
    port: standby.port,
    user,
    database: decodeURIComponent(url.pathname.slice(1)) || user,
  };
  const psql = findPsql();
  await query(psql, server, `alter system set recovery_min_apply_delay = '${ms}ms'`);
  await query(psql, server, "select pg_reload_conf()");
}
