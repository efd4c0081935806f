/**
 * A PgBouncer of the test process's own in front of the test Postgres
 * server, for the `pgbouncer transaction` and `pgbouncer session` targets
 * (tests/support/targets.ts). Not a test file.
 *
 * One pgbouncer per mode (`pool_mode` is a pgbouncer's, or a named
 * database's, and a database of a test's own has a name nobody knows in
 * advance): each serves `roost_<mode>`, the server's database, and any other
 * database name as the server's database of that name, in its own mode. So
 * a URL's `pooler=<mode>` is always what its pgbouncer does, for a
 * test's own database too (`OwnDatabase`). Each listens on a free
 * 127.0.0.1 port, trusts every client as the server does, and has an admin
 * console (`clients`). Both live in one temporary directory and are stopped,
 * the directory removed, on `stop()` or when the process exits (an orphan of
 * a killed process is removed by the next start). PgBouncer refuses to run
 * as root: as root they run as the `postgres` OS user (through `runuser`).
 */
import { spawn, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { alive, freePort, osUserIds, removeOrphans, tail } from "./local_server.ts";

/** A pool mode of PgBouncer's that Roost's `pooler` option names. */
export type PoolMode = "transaction" | "session";

/** The running PgBouncers, one per mode. */
export interface PgBouncer {
  /** `postgres://user@127.0.0.1:<port>/roost_<mode>`: the server's database through the pgbouncer of that mode. */
  url(mode: PoolMode): string;
  /**
   * How many client connections the pgbouncer of `mode` has to `database`
   * (its admin console's `SHOW CLIENTS`): what an application holds open,
   * whereas the server connections behind them stay open by design.
   */
  clients(mode: PoolMode, database: string): Promise<number>;
  /** Stops them and removes their directory. Idempotent; never throws. */
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

/** Stops the pgbouncers whose pid files are in `dir` and removes `dir`. */
function removeNow(dir: string): void {
  let names: string[] = [];
  try {
    names = readdirSync(dir).filter((name) => name.endsWith(".pid"));
  } catch {
    // already gone
  }
  for (const name of names) {
    try {
      const pid = Number(readFileSync(join(dir, name), "utf8").trim());
      if (pid > 0 && alive(pid)) process.kill(pid, "SIGTERM");
    } catch {
      // never started, or already gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
}

/** What `startPgBouncer` needs to write and run one pgbouncer. */
interface Setup {
  binary: string;
  dir: string;
  ids: [number, number] | undefined;
  user: string;
  /** `host=… port=…` of the server. */
  to: string;
  database: string;
}

/** A started pgbouncer of one mode. */
interface Started {
  port: number;
  stop(): void;
}

/**
 * Writes `<mode>.ini` in the shared directory and starts a pgbouncer of that
 * pool mode on a free port; resolves once it accepts connections.
 */
async function startOne(setup: Setup, mode: PoolMode): Promise<Started> {
  const { binary, dir, ids, user, to, database } = setup;
  const port = await freePort();
  const log = join(dir, `${mode}.log`);
  const ini = join(dir, `${mode}.ini`);
  const text = [
    "; Written by Roost's tests/support/pgbouncer.ts",
    "[databases]",
    `roost_${mode} = ${to} dbname=${database}`,
    `* = ${to}`,
    "[pgbouncer]",
    "listen_addr = 127.0.0.1",
    `listen_port = ${port}`,
    "unix_socket_dir =",
    `logfile = ${log}`,
    `pidfile = ${join(dir, `${mode}.pid`)}`,
    "auth_type = trust",
    `auth_file = ${join(dir, "users.txt")}`,
    // The admin console (database `pgbouncer`), for `clients`.
    `admin_users = ${user}`,
    `pool_mode = ${mode}`,
    // A session-mode client holds a server connection for its life: room for a test's pools at once.
    `default_pool_size = ${mode === "session" ? 30 : 10}`,
    "max_client_conn = 1000",
    // What node-postgres (the neon driver) sends at start-up and PgBouncer would otherwise refuse. Not
    // `options`: Roost's drivers must not send it behind a pooler.
    "ignore_startup_parameters = extra_float_digits",
    "",
  ].join("\n");
  writeFileSync(ini, text, { mode: 0o600 });
  if (ids) chownSync(ini, ...ids);
  const child = asRoot
    ? spawn(runuser, ["-u", "postgres", "--", binary, ini], { stdio: "ignore", cwd: dir })
    : spawn(binary, [ini], { stdio: "ignore", cwd: dir });
  child.unref();
  let exited = false;
  child.once("exit", () => exited = true);
  const stop = () => child.kill();
  for (const started = Date.now(); !(await accepts(port));) {
    if (exited || Date.now() - started > 20_000) {
      stop();
      throw new Error(`pgbouncer (${mode}) ${exited ? "exited" : "did not listen within 20 s"}: ${tail(log)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { port, stop };
}

/**
 * Starts a PgBouncer per pool mode in front of the server at `serverUrl`
 * (trust authentication, as the test server has) and resolves once both
 * accept connections. Throws with the reason (and the log) when one cannot.
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
  const dir = mkdtempSync(join(tmpdir(), `${PREFIX}${process.pid}-`));
  const ids = asRoot ? osUserIds("postgres") : undefined;
  const users = join(dir, "users.txt");
  writeFileSync(users, `"${user}" ""\n`, { mode: 0o600 });
  if (ids) { for (const path of [dir, users]) chownSync(path, ...ids); }

  const children: Started[] = [];
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    process.off("exit", stop);
    globalThis.removeEventListener?.("unload", stop);
    removeNow(dir);
    for (const child of children) child.stop();
  };
  // Node and Bun emit "exit"; `deno test` only dispatches "unload".
  process.on("exit", stop);
  globalThis.addEventListener?.("unload", stop);
  const setup: Setup = { binary, dir, ids, user, to: `host=${host} port=${serverPort}`, database };
  const ports = {} as Record<PoolMode, number>;
  try {
    for (const mode of ["transaction", "session"] as const) {
      const started = await startOne(setup, mode);
      children.push(started);
      ports[mode] = started.port;
    }
  } catch (error) {
    stop();
    throw error;
  }
  const base = (mode: PoolMode) => `postgres://${encodeURIComponent(user)}@127.0.0.1:${ports[mode]}`;
  return {
    url: (mode) => `${base(mode)}/roost_${mode}`,
    clients: async (mode, name) =>
      (await adminRows(ports[mode], user, "SHOW CLIENTS")).filter((row) => row.database === name).length,
    stop,
  };
}

/**
 * The rows a PgBouncer admin console command answers (simple query
 * protocol, the only one the console takes), as text by column name: a
 * start-up as `user` to database `pgbouncer` (trust), one Query, Terminate.
 */
function adminRows(port: number, user: string, command: string): Promise<Record<string, string | null>[]> {
  const cstring = (text: string) => [...new TextEncoder().encode(text), 0];
  const message = (type: string | undefined, body: number[]) => {
    const length = body.length + 4;
    const header = type === undefined ? [] : [type.charCodeAt(0)];
    return Uint8Array.from([
      ...header,
      length >>> 24,
      (length >>> 16) & 255,
      (length >>> 8) & 255,
      length & 255,
      ...body,
    ]);
  };
  const startup = message(undefined, [
    0,
    3,
    0,
    0,
    ...cstring("user"),
    ...cstring(user),
    ...cstring("database"),
    ...cstring("pgbouncer"),
    0,
  ]);
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const decoder = new TextDecoder();
    let buffer = new Uint8Array(0);
    let columns: string[] = [];
    const rows: Record<string, string | null>[] = [];
    let asked = false;
    const fail = (error: Error) => (socket.destroy(), reject(error));
    socket.once("error", fail);
    socket.once("connect", () => socket.write(startup));
    socket.on("data", (chunk: Uint8Array) => {
      const joined = new Uint8Array(buffer.length + chunk.length);
      joined.set(buffer);
      joined.set(chunk, buffer.length);
      buffer = joined;
      const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
      let at = 0;
      while (buffer.length - at >= 5 && buffer.length - at >= 1 + view.getUint32(at + 1)) {
        const type = String.fromCharCode(buffer[at]);
        const end = at + 1 + view.getUint32(at + 1);
        let p = at + 5;
        if (type === "E") return fail(new Error(`pgbouncer admin console: ${decoder.decode(buffer.subarray(p, end))}`));
        if (type === "T") {
          columns = [];
          const count = view.getUint16(p);
          p += 2;
          for (let i = 0; i < count; i++) {
            const nameEnd = buffer.indexOf(0, p);
            columns.push(decoder.decode(buffer.subarray(p, nameEnd)));
            p = nameEnd + 1 + 18; // then table oid, column, type oid, size, modifier, format
          }
        } else if (type === "D") {
          const row: Record<string, string | null> = {};
          p += 2;
          for (const column of columns) {
            const size = view.getInt32(p);
            p += 4;
            row[column] = size < 0 ? null : decoder.decode(buffer.subarray(p, p + size));
            if (size > 0) p += size;
          }
          rows.push(row);
        } else if (type === "Z") {
          if (asked) {
            socket.end(message("X", []));
            resolve(rows);
          } else {
            asked = true;
            socket.write(message("Q", cstring(command)));
          }
        }
        at = end;
      }
      buffer = buffer.slice(at);
    });
  });
}
