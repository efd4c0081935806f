/**
 * A PgBouncer of the test process's own in front of the test Postgres
 * server, for the `pgbouncer transaction` and `pgbouncer session` targets
 * (tests/support/targets.ts). Not a test file.
 *
 * One pgbouncer serves both modes, as two database names of its own:
 * `roost_transaction` (`pool_mode = transaction`) and `roost_session`
 * (`pool_mode = session`), both the server's database. Any other database
 * name reaches the server's database of that name in transaction mode. It
 * listens on a free 127.0.0.1 port, trusts every client as the server does,
 * lives in a temporary directory and is stopped, its directory removed, on
 * `stop()` or when the process exits (an orphan of a killed process is
 * removed by the next start). PgBouncer refuses to run as root: as root it
 * runs as the `postgres` OS user (through `runuser`).
 */
import { spawn, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { alive, freePort, osUserIds, removeOrphans, tail } from "./local_server.ts";

/** A running PgBouncer. */
export interface PgBouncer {
  /** The port it listens on (127.0.0.1). */
  readonly port: number;
  /** `postgres://user@127.0.0.1:<port>/roost_<mode>`: the server's database through the pool of that mode. */
  url(mode: "transaction" | "session"): string;
  /** Stops it and removes its directory. Idempotent; never throws. */
  stop(): void;
}

/** Directories are named `roost-pgbouncer-<pid of the owning process>-XXXXXX`. */
const PREFIX = "roost-pgbouncer-";
const asRoot = process.getuid?.() === 0;
/** runuser lives in /usr/sbin, which a minimal PATH leaves out. */
const runuser = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"].find((path) => existsSync(path)) ??
  "runuser";

/** The pgbouncer binary (Debian's package puts it in /usr/sbin), or undefined when it is not installed. */
export function pgbouncerBinary(): string | undefined {
  const known = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer", "/usr/local/bin/pgbouncer"].find((path) =>
    existsSync(path)
  );
  if (known) return known;
  const found = spawnSync("sh", ["-c", "command -v pgbouncer"], { encoding: "utf8" }).stdout?.trim();
  return found ? found : undefined;
}

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => (socket.destroy(), resolve(false)));
  });

/** Stops the pgbouncer whose pid file is in `dir` and removes `dir`. */
function removeNow(dir: string): void {
  try {
    const pid = Number(readFileSync(join(dir, "pgbouncer.pid"), "utf8").trim());
    if (pid > 0 && alive(pid)) process.kill(pid, "SIGTERM");
  } catch {
    // never started, or already gone
  }
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Starts a PgBouncer in front of the server at `serverUrl` (trust
 * authentication, as the test server has) and resolves once it accepts
 * connections. Throws with the reason (and its log) when it cannot.
 */
export async function startPgBouncer(serverUrl: string): Promise<PgBouncer> {
  const binary = pgbouncerBinary();
  if (binary === undefined) throw new Error("pgbouncer is not installed (Debian: apt-get install pgbouncer)");
  const server = new URL(serverUrl);
  const user = decodeURIComponent(server.username) || "postgres";
  const database = decodeURIComponent(server.pathname.slice(1)) || user;
  const host = server.hostname || "127.0.0.1";
  const serverPort = server.port || "5432";
  removeOrphans(PREFIX, removeNow);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), `${PREFIX}${process.pid}-`));
  const ids = asRoot ? osUserIds("postgres") : undefined;
  const log = join(dir, "pgbouncer.log");
  const to = `host=${host} port=${serverPort}`;
  const files: [string, string][] = [
    ["users.txt", `"${user}" ""\n`],
    [
      "pgbouncer.ini",
      [
        "; Written by Roost's tests/support/pgbouncer.ts",
        "[databases]",
        `roost_transaction = ${to} dbname=${database} pool_mode=transaction`,
        `roost_session = ${to} dbname=${database} pool_mode=session pool_size=30`,
        `* = ${to}`,
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        `listen_port = ${port}`,
        "unix_socket_dir =",
        `logfile = ${log}`,
        `pidfile = ${join(dir, "pgbouncer.pid")}`,
        "auth_type = trust",
        `auth_file = ${join(dir, "users.txt")}`,
        "pool_mode = transaction",
        "default_pool_size = 10",
        "max_client_conn = 1000",
        // What node-postgres (the neon driver) sends at start-up and PgBouncer would otherwise refuse. Not
        // `options`: Roost's drivers must not send it behind a pooler.
        "ignore_startup_parameters = extra_float_digits",
        "",
      ].join("\n"),
    ],
  ];
  for (const [name, text] of files) writeFileSync(join(dir, name), text, { mode: 0o600 });
  if (ids) { for (const name of [".", ...files.map(([name]) => name)]) chownSync(join(dir, name), ...ids); }

  const ini = join(dir, "pgbouncer.ini");
  const child = asRoot
    ? spawn(runuser, ["-u", "postgres", "--", binary, ini], { stdio: "ignore", cwd: dir })
    : spawn(binary, [ini], { stdio: "ignore", cwd: dir });
  child.unref();
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    process.off("exit", stop);
    globalThis.removeEventListener?.("unload", stop);
    removeNow(dir);
    child.kill();
  };
  // Node and Bun emit "exit"; `deno test` only dispatches "unload".
  process.on("exit", stop);
  globalThis.addEventListener?.("unload", stop);
  let exited = false;
  child.once("exit", () => exited = true);
  for (const started = Date.now(); !(await accepts(port));) {
    if (exited || Date.now() - started > 20_000) {
      const why = `pgbouncer ${exited ? "exited" : "did not listen within 20 s"}: ${tail(log)}`;
      stop();
      throw new Error(why);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const base = `postgres://${encodeURIComponent(user)}@127.0.0.1:${port}`;
  return { port, url: (mode) => `${base}/roost_${mode}`, stop };
}
