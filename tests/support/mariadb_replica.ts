/**
 * A real MariaDB primary and replica (GTID replication), for tests that need
 * a read-only replica of a MySQL-dialect server. Not a test file: tests
 * import `createMariaDbPair`.
 *
 * Why a pair of its own rather than a replica of the test server at
 * 127.0.0.1:3306: a replica needs its primary's binary log, that server runs
 * without one (log_bin=0), and turning it on means restarting a server other
 * tests are using. So this starts two fresh `mariadbd` processes, each with a
 * data directory made by `mariadb-install-db` in one temporary directory and
 * a free port on 127.0.0.1: the primary with the binary log, the replica
 * with `read_only=1`, replicating through `MASTER_USE_GTID=slave_pos`. Both
 * are removed on `destroy()` or when the process exits (and a later run
 * removes those of a process that died without its exit handler). Run as
 * root, mariadbd drops to the `mysql` OS user (`--user=mysql`).
 *
 * Tests connect as `roost`, a user with every privilege on the `test`
 * database and REPLICA MONITOR (to read `SHOW REPLICA STATUS`), but neither
 * SUPER nor READ ONLY ADMIN, so `read_only=1` refuses its writes on the
 * replica. `root` (no password, 127.0.0.1) administers both.
 *
 * For fail-over tests `fencePrimary`, `promote` and `demote` swap the roles
 * by hand (the primary's `read_only` on; the replica caught up, its
 * replication stopped and its `read_only` off; and back): both servers are
 * the pair's own, so no other test's server is made read-only.
 */
import { spawn } from "node:child_process";
import { chownSync, mkdirSync, mkdtempSync, promises as fsp, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { alive, findTool, freePort, osUserIds, poll, removeOrphans, runTool, tail } from "./local_server.ts";

/** A running MariaDB primary and its replica. */
export interface MariaDbPair {
  /** mysql://roost@127.0.0.1:<port>/test of the primary. */
  readonly primaryUrl: string;
  /** mysql://roost@127.0.0.1:<port>/test of the replica. */
  readonly replicaUrl: string;
  /** The primary's TCP port (127.0.0.1). */
  readonly primaryPort: number;
  /** The replica's TCP port (127.0.0.1). */
  readonly replicaPort: number;
  /** Runs SQL as root on the primary (the `mariadb` client's batch output, tab-separated). */
  primarySql(sql: string): Promise<string>;
  /** Runs SQL as root on the replica (the `mariadb` client's batch output, tab-separated). */
  replicaSql(sql: string): Promise<string>;
  /** Turns the primary's global `read_only` on (fenced: `roost`'s writes are refused) or off again. */
  fencePrimary(on: boolean): Promise<void>;
  /**
   * Promotes the replica by hand, as a fail-over does once the primary is
   * fenced: waits until it has applied everything in the primary's binary
   * log, stops replication and turns its `read_only` off.
   */
  promote(): Promise<void>;
  /**
   * Undoes promote(): the replica read-only and replicating again (from where
   * it stopped). What was written on it while promoted stays there only.
   */
  demote(): Promise<void>;
  /** Delays applying each replicated transaction by `seconds` (CHANGE MASTER TO MASTER_DELAY); 0 applies at once. */
  setDelay(seconds: number): Promise<void>;
  /** Stops the replica's mariadbd (a clean shutdown) and waits until it has exited. Idempotent. */
  stopReplica(): Promise<void>;
  /** Starts the replica again after stopReplica() and waits until it accepts connections and replicates. */
  startReplica(): Promise<void>;
  /** Stops both servers and removes their directory. Idempotent; never throws. */
  destroy(): Promise<void>;
}

/** How the pair is configured. */
export interface MariaDbPairOptions {
  /** MASTER_DELAY of the replica, in whole seconds (0 = none). */
  delay?: number;
}

const asRoot = process.getuid?.() === 0;
/** Directories are named `roost-mariadb-<pid of the owning process>-XXXXXX`. */
const PREFIX = "roost-mariadb-";
const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** The pid in a mariadbd pid file, if the file exists and names a live process. */
function livePid(pidFile: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Kills the servers of a pair directory at once and removes it, synchronously (for exit handlers). */
function removeNow(dir: string): void {
  for (const name of ["primary", "replica"]) {
    const pid = livePid(join(dir, `${name}.pid`));
    if (pid !== undefined) process.kill(pid, "SIGKILL");
  }
  rmSync(dir, { recursive: true, force: true });
}

/** Settings both servers share: small, fast to start, nothing a test does not need. */
const COMMON = [
  "--bind-address=127.0.0.1",
  "--skip-name-resolve",
  "--innodb-buffer-pool-size=16M",
  "--innodb-log-file-size=8M",
  "--innodb-flush-log-at-trx-commit=2",
  "--performance-schema=OFF",
  "--character-set-server=utf8mb4",
  "--collation-server=utf8mb4_general_ci",
  "--max-connections=200",
];

/**
 * Creates and starts a MariaDB primary and replica. Throws an Error with a
 * clear message (including the server's log) when it cannot.
 */
export async function createMariaDbPair(options: MariaDbPairOptions = {}): Promise<MariaDbPair> {
  const delay = options.delay ?? 0;
  if (!Number.isInteger(delay) || delay < 0) throw new Error(`createMariaDbPair: bad delay ${delay}`);
  const sbin = ["/usr/sbin", "/usr/local/sbin", "/usr/bin"];
  const mariadbd = findTool(["mariadbd", "mysqld"], sbin);
  const installDb = findTool(["mariadb-install-db", "mysql_install_db"], ["/usr/bin", "/usr/local/bin"]);
  const client = findTool(["mariadb", "mysql"], ["/usr/bin", "/usr/local/bin"]);
  const ids = asRoot ? osUserIds("mysql") : undefined;
  removeOrphans(PREFIX, removeNow);
  const dir = mkdtempSync(join(tmpdir(), `${PREFIX}${process.pid}-`));
  if (ids) chownSync(dir, ...ids);
  let destroyed = false;
  // Node and Bun emit "exit"; `deno test` only dispatches "unload".
  const onExit = () => {
    if (destroyed) return;
    destroyed = true;
    removeNow(dir);
  };
  process.on("exit", onExit);
  globalThis.addEventListener?.("unload", onExit);

  const [primaryPort, replicaPort] = [await freePort(), await freePort()];
  const user = asRoot ? ["--user=mysql"] : [];
  const serverArgs = (name: "primary" | "replica", port: number, own: string[]) => [
    "--no-defaults",
    `--datadir=${join(dir, name)}`,
    `--port=${port}`,
    `--socket=${join(dir, `${name}.sock`)}`,
    `--pid-file=${join(dir, `${name}.pid`)}`,
    `--log-error=${join(dir, `${name}.err`)}`,
    `--tmpdir=${join(dir, `${name}-tmp`)}`,
    ...user,
    ...COMMON,
    ...own,
  ];
  const args = {
    primary: serverArgs("primary", primaryPort, [
      "--server-id=1",
      `--log-bin=${join(dir, "primary", "binlog")}`,
      "--binlog-format=ROW",
      "--sync-binlog=0",
    ]),
    replica: serverArgs("replica", replicaPort, [
      "--server-id=2",
      "--read-only=1",
      `--relay-log=${join(dir, "replica", "relay")}`,
    ]),
  };
  const ports = { primary: primaryPort, replica: replicaPort };
  const sqlAs = (name: "primary" | "replica", login: string, text: string, names = false) =>
    runTool(client, [
      ...["-h127.0.0.1", `-P${ports[name]}`, `-u${login}`, "--connect-timeout=5"],
      names ? "-sre" : "-Nsre",
      text,
    ], 15_000);
  /** Each running server's exit, which resolves when its process has ended. */
  const running: Partial<Record<"primary" | "replica", { pid: number; exit: Promise<void> }>> = {};

  const startServer = async (name: "primary" | "replica") => {
    const child = spawn(mariadbd, args[name], { cwd: "/", stdio: "ignore", detached: true });
    child.unref();
    let exited: string | undefined;
    const exit = new Promise<void>((resolve) =>
      child.once("exit", (code, signal) => {
        exited = `mariadbd (${name}) exited with ${code ?? signal}`;
        resolve();
      })
    );
    if (child.pid === undefined) throw new Error(`could not start ${mariadbd}`);
    running[name] = { pid: child.pid, exit };
    try {
      await poll(`the ${name} to accept connections`, 60_000, async () => {
        if (exited) throw new Error(exited);
        return (await sqlAs(name, "root", "select 1")) === "1";
      });
    } catch (error) {
      throw new Error(`${messageOf(error)}\n${tail(join(dir, `${name}.err`))}`);
    }
  };
  const stopServer = async (name: "primary" | "replica") => {
    const server = running[name];
    if (server === undefined) return;
    process.kill(server.pid, "SIGTERM");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the ${name} did not shut down within 60 s`)), 60_000);
    });
    await Promise.race([server.exit, late]).finally(() => clearTimeout(timer));
    running[name] = undefined;
  };
  const replicating = () =>
    poll("the replica's IO and SQL threads to run", 30_000, async () => {
      const status = await sqlAs("replica", "root", "show replica status\\G", true);
      if (/Slave_IO_Running: Yes/.test(status) && /Slave_SQL_Running: Yes/.test(status)) return true;
      throw new Error(status.split("\n").filter((line) => /Running:|Last_.*Error: ./.test(line)).join("; "));
    });

  const pair: MariaDbPair = {
    primaryUrl: `mysql://roost@127.0.0.1:${primaryPort}/test`,
    replicaUrl: `mysql://roost@127.0.0.1:${replicaPort}/test`,
    primaryPort,
    replicaPort,
    primarySql: (text) => sqlAs("primary", "root", text),
    replicaSql: (text) => sqlAs("replica", "root", text),
    async fencePrimary(on) {
      await sqlAs("primary", "root", `set global read_only = ${on ? 1 : 0}`);
    },
    async promote() {
      const position = await sqlAs("primary", "root", "select @@global.gtid_binlog_pos");
      // master_gtid_wait answers 0 once the replica has applied `position`, -1 when its own 1 s timeout passes.
      await poll(
        `the replica to apply the primary's binary log up to ${position}`,
        30_000 + delay * 1_000,
        async () => (await sqlAs("replica", "root", `select master_gtid_wait('${position}', 1)`)) === "0",
      );
      await sqlAs("replica", "root", "stop replica; set global read_only = 0");
    },
    async demote() {
      await sqlAs("replica", "root", "set global read_only = 1; start replica");
      await replicating();
    },
    async setDelay(seconds) {
      await sqlAs("replica", "root", `stop replica; change master to master_delay = ${seconds}; start replica`);
      await replicating();
    },
    stopReplica: () => stopServer("replica"),
    async startReplica() {
      if (destroyed) throw new Error("MariaDbPair.startReplica: the pair was destroyed");
      if (running.replica === undefined) await startServer("replica");
      await replicating();
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      process.off("exit", onExit);
      globalThis.removeEventListener?.("unload", onExit);
      await Promise.all([stopServer("primary").catch(() => {}), stopServer("replica").catch(() => {})]);
      removeNow(dir); // kills what did not shut down
      await fsp.rm(dir, { recursive: true, force: true }).catch(() => {});
    },
  };

  const step = async (name: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (error) {
      throw new Error(`createMariaDbPair: ${name} failed: ${messageOf(error)}`, { cause: error });
    }
  };
  try {
    await step("mariadb-install-db", () =>
      Promise.all((["primary", "replica"] as const).map((name) => {
        // Each server has a temporary directory of its own: two bootstraps sharing /tmp collide on temporary tables.
        for (const sub of [name, `${name}-tmp`]) {
          mkdirSync(join(dir, sub));
          if (ids) chownSync(join(dir, sub), ...ids);
        }
        return runTool(installDb, [
          "--no-defaults",
          `--datadir=${join(dir, name)}`,
          `--tmpdir=${join(dir, `${name}-tmp`)}`,
          ...user,
          "--auth-root-authentication-method=normal",
          "--skip-test-db",
          "--skip-name-resolve",
          "--innodb-buffer-pool-size=16M",
          "--innodb-log-file-size=8M",
        ], 120_000);
      })));
    await step("starting the servers", () => Promise.all([startServer("primary"), startServer("replica")]));
    await step("starting replication", async () => {
      await sqlAs(
        "replica",
        "root",
        `change master to master_host = '127.0.0.1', master_port = ${primaryPort}, master_user = 'root', ` +
          `master_use_gtid = slave_pos, master_connect_retry = 1, master_delay = ${delay}; start replica`,
      );
      await replicating();
    });
    await step("creating the test database and user on the primary", () =>
      sqlAs(
        "primary",
        "root",
        "create database test; create user roost@'127.0.0.1'; " +
          "grant all on test.* to roost@'127.0.0.1'; grant replica monitor on *.* to roost@'127.0.0.1'",
      ));
    await step("waiting for the user to reach the replica", () =>
      poll(
        "the roost user on the replica",
        30_000 + delay * 1_000,
        async () => (await sqlAs("replica", "roost", "select 1")) === "1",
      ));
    return pair;
  } catch (error) {
    await pair.destroy();
    throw error;
  }
}
