/**
 * A private PostgreSQL server with TLS, for tests/behaviour/tls.test.ts. Not a test
 * file: the test imports `startTlsServer`.
 *
 * It generates, with the `openssl` CLI, a CA, a server certificate for the
 * DNS name `localhost` only (not for the IP 127.0.0.1) signed by that CA, a
 * second one from that CA for another name only (`db.roost.invalid`, which
 * `presentCertificateFor` swaps in), a client certificate for the user
 * {@linkcode CERT_USER}, and an unrelated second CA; runs `initdb` into a
 * temporary directory; and starts the server on a free port of 127.0.0.1
 * with `ssl = on`. Authentication is trust, over
 * TLS or not, except for two users: {@linkcode CERT_USER} must present a
 * client certificate, and {@linkcode TLS_ONLY_USER} is refused without TLS.
 * When the process runs as root, every Postgres tool runs as the `postgres`
 * OS user (through `runuser`), as in tests/support/standby.ts. `destroy()` stops the
 * server and removes the directory; so does process exit, and the next start
 * removes servers whose process died without either.
 */
import { execFile, spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  promises as fsp,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { freePort, osUserIds, poll, removeOrphans, tail } from "./local_server.ts";

/** The user that must log in with a client certificate (its CN). */
export const CERT_USER = "roost_tls_cert";
/** The user the server refuses without TLS. */
export const TLS_ONLY_USER = "roost_tls_only";

/** A running private TLS Postgres server. */
export interface TlsServer {
  /** The TCP port it listens on (127.0.0.1). */
  readonly port: number;
  /** PEM file of the CA that signed the server's (and the client's) certificate. */
  readonly caFile: string;
  /** PEM file of a CA that signed nothing this server uses. */
  readonly otherCaFile: string;
  /** PEM certificate and key of {@linkcode CERT_USER}, signed by `caFile`'s CA. */
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
  /** PEM certificate (for `localhost`, signed by `caFile`'s CA) and key the server presents as it starts. */
  readonly serverCertFile: string;
  readonly serverKeyFile: string;
  /**
   * Makes the server present the certificate for `localhost` (as it starts)
   * or one signed by the same CA for another name only (`db.roost.invalid`):
   * its files are swapped and `pg_reload_conf()` reloads them; this resolves
   * once the postmaster has (a new session's `pg_conf_load_time()` is past
   * the one before), so every connection opened after it gets the new one.
   */
  presentCertificateFor(name: "localhost" | "another host"): Promise<void>;
  /** `postgres://<user>@<host>:<port>/postgres?<options>`, the options percent-encoded. */
  url(host: string, options?: Record<string, string>, user?: string): string;
  /** Stops the server at once and removes its directory. Idempotent; never throws. */
  destroy(): Promise<void>;
}

const asRoot = process.getuid?.() === 0;
/** Directories are named `roost-tls-<pid of the owning process>-XXXXXX`. */
const PREFIX = "roost-tls-";

const runuser =
  ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser", "/bin/runuser"].find((path) => existsSync(path)) ??
    "runuser";

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** Runs a program (as postgres when `postgres` is set and we are root); rejects with its stderr when it fails. */
function run(file: string, args: string[], options: { postgres?: boolean; timeout?: number } = {}): Promise<string> {
  const timeout = options.timeout ?? 30_000;
  const [command, argv] = options.postgres && asRoot
    ? [runuser, ["-u", "postgres", "--", file, ...args]]
    : [file, args];
  return new Promise((resolve, reject) => {
    execFile(command, argv, { cwd: "/", timeout, encoding: "utf8" }, (error, stdout, stderr) => {
      if (error) {
        const why = error.killed ? `killed after ${timeout / 1000} s` : stderr.trim() || error.message;
        reject(new Error(`${file} ${args.join(" ")} failed: ${why}`));
      } else {
        resolve(stdout.trim());
      }
    });
  });
}

/** The directory holding initdb and pg_ctl. */
function binaries(): string {
  const candidates = ["/usr/lib/postgresql/15/bin"];
  const bindir = spawnSync("pg_config", ["--bindir"], { encoding: "utf8" }).stdout?.trim();
  if (bindir) candidates.push(bindir);
  const found = candidates.find((dir) => existsSync(join(dir, "initdb")) && existsSync(join(dir, "pg_ctl")));
  if (found === undefined) throw new Error(`initdb and pg_ctl not found in ${candidates.join(" or ")}`);
  return found;
}

/** Gives `path` to the postgres OS user (when we are root). */
function own(path: string, ids: [number, number] | undefined): void {
  if (ids) chownSync(path, ...ids);
}

/** Stops the server in `data` at once and removes `dir`, synchronously (for exit handlers). */
function removeNow(pgCtl: string, dir: string): void {
  const data = join(dir, "data");
  if (existsSync(join(data, "postmaster.pid"))) {
    const args = ["-D", data, "-m", "immediate", "-w", "stop"];
    const [command, argv] = asRoot ? [runuser, ["-u", "postgres", "--", pgCtl, ...args]] : [pgCtl, args];
    spawnSync(command, argv, { cwd: "/", timeout: 30_000, stdio: "ignore" });
  }
  rmSync(dir, { recursive: true, force: true });
}

/** Generates the CAs and certificates into `dir` with the openssl CLI. */
async function certificates(dir: string): Promise<void> {
  const file = (name: string) => join(dir, name);
  const key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const ca = (name: string, subject: string) =>
    run("openssl", [
      ...["req", "-x509", ...key, "-keyout", file(`${name}.key`), "-out", file(`${name}.crt`)],
      ...["-days", "2", "-subj", subject, "-sha256"],
      ...["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
    ]);
  const suffix = `${process.pid}-${Date.now().toString(36)}`;
  await ca("ca", `/CN=Roost test CA ${suffix}`);
  await ca("other-ca", `/CN=Roost unrelated test CA ${suffix}`);
  const leaf = async (name: string, subject: string, extensions: string[]) => {
    await run("openssl", [
      "req",
      "-new",
      ...key,
      "-keyout",
      file(`${name}.key`),
      "-out",
      file(`${name}.csr`),
      "-subj",
      subject,
    ]);
    writeFileSync(file(`${name}.ext`), `${extensions.join("\n")}\n`);
    await run("openssl", [
      ...["x509", "-req", "-in", file(`${name}.csr`), "-CA", file("ca.crt"), "-CAkey", file("ca.key")],
      ...["-CAcreateserial", "-out", file(`${name}.crt`), "-days", "2", "-sha256", "-extfile", file(`${name}.ext`)],
    ]);
  };
  const common = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment"];
  // The server's certificate names `localhost` only: verify-full to 127.0.0.1 must fail on the name.
  await leaf("server", "/CN=localhost", [...common, "extendedKeyUsage=serverAuth", "subjectAltName=DNS:localhost"]);
  // The same CA's certificate for a name that is not the host connected to: verify-full must fail on the name.
  const elsewhere = "db.roost.invalid";
  await leaf("elsewhere", `/CN=${elsewhere}`, [
    ...common,
    "extendedKeyUsage=serverAuth",
    `subjectAltName=DNS:${elsewhere}`,
  ]);
  await leaf("client", `/CN=${CERT_USER}`, [...common, "extendedKeyUsage=clientAuth"]);
}

/** Creates and starts the server. Throws an Error saying which step failed (with the tool's stderr). */
export async function startTlsServer(): Promise<TlsServer> {
  const bin = binaries();
  const pgCtl = join(bin, "pg_ctl");
  removeOrphans(PREFIX, (dir) => removeNow(pgCtl, dir));
  const ids = asRoot ? osUserIds("postgres") : undefined;
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), `${PREFIX}${process.pid}-`));
  const certs = join(dir, "certs");
  const data = join(dir, "data");
  const log = join(dir, "server.log");
  let destroyed = false;

  const onExit = () => {
    if (destroyed) return;
    destroyed = true;
    removeNow(pgCtl, dir);
  };
  // Node and Bun emit "exit"; `deno test` only dispatches "unload".
  process.on("exit", onExit);
  globalThis.addEventListener?.("unload", onExit);

  const server: TlsServer = {
    port,
    caFile: join(certs, "ca.crt"),
    otherCaFile: join(certs, "other-ca.crt"),
    clientCertFile: join(certs, "client.crt"),
    clientKeyFile: join(certs, "client.key"),
    serverCertFile: join(certs, "server.crt"),
    serverKeyFile: join(certs, "server.key"),
    async presentCertificateFor(name) {
      const source = name === "localhost" ? "server" : "elsewhere";
      const before = await rootSql("select pg_conf_load_time()");
      // Copied onto the presented files, which keep their owner (postgres) and mode (0600 for the key).
      for (const extension of ["crt", "key"]) {
        copyFileSync(join(certs, `${source}.${extension}`), join(certs, `presented.${extension}`));
      }
      await rootSql("select pg_reload_conf()");
      // A new session is forked by the postmaster, so it sees its load time: past `before` once the reload is done.
      await poll(
        "the server to reload its certificate",
        30_000,
        async () => (await rootSql(`select pg_conf_load_time() > '${before}'::timestamptz`)) === "t",
      );
    },
    url(host, options = {}, user = "postgres") {
      const query = Object.entries(options).map(([key, value]) => `${key}=${encodeURIComponent(value)}`).join("&");
      return `postgres://${user}@${host}:${port}/postgres${query ? `?${query}` : ""}`;
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      process.off("exit", onExit);
      globalThis.removeEventListener?.("unload", onExit);
      await run(pgCtl, ["-D", data, "-m", "immediate", "-w", "stop"], { postgres: true }).catch(() => {});
      await fsp.rm(dir, { recursive: true, force: true }).catch(() => {});
    },
  };

  /** Runs SQL as postgres over the server's Unix socket; resolves to psql's unaligned output. */
  const rootSql = (text: string) =>
    run(existsSync(join(bin, "psql")) ? join(bin, "psql") : "psql", [
      ...[
        "-X",
        "-A",
        "-t",
        "-h",
        data,
        "-p",
        String(port),
        "-U",
        "postgres",
        "-d",
        "postgres",
        "-v",
        "ON_ERROR_STOP=1",
      ],
      ...["-c", text],
    ], { postgres: true });

  const step = async <T>(name: string, fn: () => T | Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (error) {
      throw new Error(`startTlsServer: ${name} failed: ${messageOf(error)}`, { cause: error });
    }
  };

  try {
    await step("generating certificates", async () => {
      mkdirSync(certs, { mode: 0o700 });
      await certificates(certs);
      for (const extension of ["crt", "key"]) {
        copyFileSync(join(certs, `server.${extension}`), join(certs, `presented.${extension}`));
      }
      // The server reads its key and the CA; Postgres refuses a key others can read.
      for (const name of readdirSync(certs)) {
        chmodSync(join(certs, name), name.endsWith(".key") ? 0o600 : 0o644);
        own(join(certs, name), ids);
      }
      chmodSync(certs, 0o700);
      own(certs, ids);
      chmodSync(dir, 0o700);
      own(dir, ids);
    });
    await step("initdb", async () => {
      mkdirSync(data, { mode: 0o700 });
      own(data, ids);
      await run(join(bin, "initdb"), [
        ...["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
      ], { postgres: true, timeout: 60_000 });
    });
    await step("writing the configuration", () => {
      const conf = [
        "# Written by Roost's tests/support/tls_server.ts",
        `port = ${port}`,
        "listen_addresses = '127.0.0.1'",
        `unix_socket_directories = '${data}'`,
        "max_connections = 50",
        "shared_buffers = '16MB'",
        "fsync = off",
        "ssl = on",
        `ssl_cert_file = '${join(certs, "presented.crt")}'`,
        `ssl_key_file = '${join(certs, "presented.key")}'`,
        `ssl_ca_file = '${join(certs, "ca.crt")}'`,
      ];
      const hba = [
        "local all all trust",
        `hostssl all ${CERT_USER} 127.0.0.1/32 cert`,
        `host all ${CERT_USER} 127.0.0.1/32 reject`,
        `hostnossl all ${TLS_ONLY_USER} 127.0.0.1/32 reject`,
        "hostssl all all 127.0.0.1/32 trust",
        "host all all 127.0.0.1/32 trust",
      ];
      writeFileSync(join(data, "postgresql.auto.conf"), `${conf.join("\n")}\n`, { mode: 0o600 });
      writeFileSync(join(data, "pg_hba.conf"), `${hba.join("\n")}\n`, { mode: 0o600 });
      own(join(data, "postgresql.auto.conf"), ids);
      own(join(data, "pg_hba.conf"), ids);
    });
    await step("starting the server", async () => {
      try {
        await run(pgCtl, ["-D", data, "-l", log, "-w", "-t", "60", "start"], { postgres: true, timeout: 90_000 });
      } catch (error) {
        throw new Error(`${messageOf(error)}\n${tail(log)}`);
      }
    });
    await step(
      "creating the users",
      () => rootSql(`create role ${CERT_USER} login; create role ${TLS_ONLY_USER} login`),
    );
    return server;
  } catch (error) {
    await server.destroy();
    throw error;
  }
}
