/**
 * A private MariaDB server with TLS, for tests/behaviour/mysql_tls.test.ts,
 * the MySQL-dialect twin of tests/support/tls_server.ts. Not a test file:
 * the test imports `startMariaDbTls`.
 *
 * It generates, with the `openssl` CLI, a CA, a server certificate for the
 * DNS name `localhost` only (not for the IP 127.0.0.1) signed by that CA, a
 * client certificate for {@linkcode CERT_USER}, and an unrelated second CA;
 * makes a data directory with `mariadb-install-db` in a temporary directory;
 * and starts `mariadbd` on a free port of 127.0.0.1 with `ssl_cert`,
 * `ssl_key` and `ssl_ca`. Three users log in with {@linkcode TLS_PASSWORD}:
 * {@linkcode PLAIN_USER} (no requirement), {@linkcode TLS_ONLY_USER}
 * (`REQUIRE SSL`) and {@linkcode CERT_USER} (`REQUIRE X509`: a client
 * certificate signed by the CA). Run as root,
 * mariadbd drops to the `mysql` OS user (`--user=mysql`), as in
 * tests/support/mariadb_replica.ts. `destroy()` stops the server and removes
 * the directory; so does process exit, and the next start removes servers
 * whose process died without either.
 */
import { spawn } from "node:child_process";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  promises as fsp,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { alive, findTool, freePort, osUserIds, poll, removeOrphans, runTool, tail } from "./local_server.ts";

/** A user with no TLS requirement. */
export const PLAIN_USER = "roost_tls_plain";
/** The user the server refuses without TLS (`REQUIRE SSL`). */
export const TLS_ONLY_USER = "roost_tls_only";
/** The user that must present a client certificate signed by the CA (`REQUIRE X509`). */
export const CERT_USER = "roost_tls_cert";
/** Both users' password: a `+` and a `/`, so its percent-encoded form differs from the raw one. */
export const TLS_PASSWORD = "Roost+TLS/s3cret";

/** A running private MariaDB server with TLS. */
export interface MariaDbTls {
  /** The TCP port it listens on (127.0.0.1). */
  readonly port: number;
  /** PEM file of the CA that signed the server's (and the client's) certificate. */
  readonly caFile: string;
  /** PEM file of a CA that signed nothing this server uses. */
  readonly otherCaFile: string;
  /** PEM certificate and key of {@linkcode CERT_USER}, signed by `caFile`'s CA. */
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
  /**
   * Makes the server present the certificate for `localhost` (as it starts)
   * or one signed by the same CA for another name only (`db.roost.invalid`):
   * its files are swapped and `FLUSH SSL` reloads them for new connections.
   */
  presentCertificateFor(name: "localhost" | "another host"): Promise<void>;
  /** `mysql://<user>:<password>@<host>:<port>/test?<options>`, the password and options percent-encoded. */
  url(host: string, options?: Record<string, string>, user?: string): string;
  /** Stops the server at once and removes its directory. Idempotent; never throws. */
  destroy(): Promise<void>;
}

const asRoot = process.getuid?.() === 0;
/** Directories are named `roost-mariadb-tls-<pid of the owning process>-XXXXXX`. */
const PREFIX = "roost-mariadb-tls-";
const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** Kills the server of a directory at once and removes it, synchronously (for exit handlers). */
function removeNow(dir: string): void {
  try {
    const pid = Number(readFileSync(join(dir, "server.pid"), "utf8").trim());
    if (Number.isInteger(pid) && pid > 0 && alive(pid)) process.kill(pid, "SIGKILL");
  } catch {
    // no pid file: no server
  }
  rmSync(dir, { recursive: true, force: true });
}

/** Generates the CAs and certificates into `dir` with the openssl CLI. */
async function certificates(openssl: string, dir: string): Promise<void> {
  const file = (name: string) => join(dir, name);
  const key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const ca = (name: string, subject: string) =>
    runTool(openssl, [
      ...["req", "-x509", ...key, "-keyout", file(`${name}.key`), "-out", file(`${name}.crt`)],
      ...["-days", "2", "-subj", subject, "-sha256"],
      ...["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
    ]);
  const suffix = `${process.pid}-${Date.now().toString(36)}`;
  await ca("ca", `/CN=Roost MariaDB test CA ${suffix}`);
  await ca("other-ca", `/CN=Roost unrelated MariaDB test CA ${suffix}`);
  const leaf = async (name: string, subject: string, extensions: string[]) => {
    await runTool(openssl, [
      ...["req", "-new", ...key, "-keyout", file(`${name}.key`), "-out", file(`${name}.csr`), "-subj", subject],
    ]);
    writeFileSync(file(`${name}.ext`), `${extensions.join("\n")}\n`);
    await runTool(openssl, [
      ...["x509", "-req", "-in", file(`${name}.csr`), "-CA", file("ca.crt"), "-CAkey", file("ca.key")],
      ...["-CAcreateserial", "-out", file(`${name}.crt`), "-days", "2", "-sha256", "-extfile", file(`${name}.ext`)],
    ]);
  };
  const common = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment"];
  // The server's certificate names `localhost` only: verify_identity to 127.0.0.1 must fail on the name.
  await leaf("server", "/CN=localhost", [...common, "extendedKeyUsage=serverAuth", "subjectAltName=DNS:localhost"]);
  // The same CA's certificate for a name that is not the host connected to: verify_identity must fail on the name.
  const elsewhere = "db.roost.invalid";
  await leaf("elsewhere", `/CN=${elsewhere}`, [
    ...common,
    "extendedKeyUsage=serverAuth",
    `subjectAltName=DNS:${elsewhere}`,
  ]);
  await leaf("client", `/CN=${CERT_USER}`, [...common, "extendedKeyUsage=clientAuth"]);
}

/** Creates and starts the server. Throws an Error saying which step failed (with the tool's stderr or the log). */
export async function startMariaDbTls(): Promise<MariaDbTls> {
  const sbin = ["/usr/sbin", "/usr/local/sbin", "/usr/bin"];
  const bin = ["/usr/bin", "/usr/local/bin"];
  const step = async <T>(name: string, fn: () => T | Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (error) {
      throw new Error(`startMariaDbTls: ${name} failed: ${messageOf(error)}`, { cause: error });
    }
  };
  const [mariadbd, installDb, client, openssl, ids] = await step("finding the tools", () =>
    [
      findTool(["mariadbd", "mysqld"], sbin),
      findTool(["mariadb-install-db", "mysql_install_db"], bin),
      findTool(["mariadb", "mysql"], bin),
      findTool(["openssl"], bin),
      asRoot ? osUserIds("mysql") : undefined,
    ] as const);
  removeOrphans(PREFIX, removeNow);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), `${PREFIX}${process.pid}-`));
  const certs = join(dir, "certs");
  const data = join(dir, "data");
  const tmp = join(dir, "tmp");
  const log = join(dir, "server.err");
  const user = asRoot ? ["--user=mysql"] : [];
  let destroyed = false;
  let child: { pid: number; exit: Promise<void> } | undefined;

  const onExit = () => {
    if (destroyed) return;
    destroyed = true;
    removeNow(dir);
  };
  // Node and Bun emit "exit"; `deno test` only dispatches "unload".
  process.on("exit", onExit);
  globalThis.addEventListener?.("unload", onExit);

  const server: MariaDbTls = {
    port,
    caFile: join(certs, "ca.crt"),
    otherCaFile: join(certs, "other-ca.crt"),
    clientCertFile: join(certs, "client.crt"),
    clientKeyFile: join(certs, "client.key"),
    async presentCertificateFor(name) {
      const source = name === "localhost" ? "server" : "elsewhere";
      for (const extension of ["crt", "key"]) {
        copyFileSync(join(certs, `${source}.${extension}`), join(certs, `presented.${extension}`));
      }
      await rootSql("flush ssl");
    },
    url(host, options = {}, login = TLS_ONLY_USER) {
      const query = Object.entries(options).map(([key, value]) => `${key}=${encodeURIComponent(value)}`).join("&");
      const password = encodeURIComponent(TLS_PASSWORD);
      return `mysql://${login}:${password}@${host}:${port}/test${query ? `?${query}` : ""}`;
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      process.off("exit", onExit);
      globalThis.removeEventListener?.("unload", onExit);
      if (child && alive(child.pid)) {
        process.kill(child.pid, "SIGTERM");
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<void>((resolve) => timer = setTimeout(resolve, 30_000));
        await Promise.race([child.exit, late]).finally(() => clearTimeout(timer));
      }
      removeNow(dir); // kills what did not shut down
      await fsp.rm(dir, { recursive: true, force: true }).catch(() => {});
    },
  };
  const own = (path: string) => ids && chownSync(path, ...ids);
  const rootSql = (text: string) =>
    runTool(client, [`--socket=${join(dir, "server.sock")}`, "-uroot", "--connect-timeout=5", "-Nse", text], 15_000);

  try {
    await step("generating certificates", async () => {
      mkdirSync(certs, { mode: 0o700 });
      await certificates(openssl, certs);
      for (const extension of ["crt", "key"]) {
        copyFileSync(join(certs, `server.${extension}`), join(certs, `presented.${extension}`));
      }
      for (const name of readdirSync(certs)) {
        chmodSync(join(certs, name), name.endsWith(".key") ? 0o600 : 0o644);
        own(join(certs, name));
      }
      own(certs);
      own(dir);
    });
    await step("mariadb-install-db", () => {
      for (const sub of [data, tmp]) {
        mkdirSync(sub);
        own(sub);
      }
      return runTool(installDb, [
        ...["--no-defaults", `--datadir=${data}`, `--tmpdir=${tmp}`, ...user],
        ...["--auth-root-authentication-method=socket", "--skip-test-db", "--skip-name-resolve"],
        ...["--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M"],
      ], 120_000);
    });
    await step("starting mariadbd", async () => {
      const spawned = spawn(mariadbd, [
        ...["--no-defaults", `--datadir=${data}`, `--port=${port}`, `--socket=${join(dir, "server.sock")}`],
        ...[`--pid-file=${join(dir, "server.pid")}`, `--log-error=${log}`, `--tmpdir=${tmp}`, ...user],
        ...["--bind-address=127.0.0.1", "--skip-name-resolve", "--innodb-buffer-pool-size=16M"],
        ...["--innodb-log-file-size=8M", "--performance-schema=OFF", "--character-set-server=utf8mb4"],
        ...[`--ssl-cert=${join(certs, "presented.crt")}`, `--ssl-key=${join(certs, "presented.key")}`],
        `--ssl-ca=${join(certs, "ca.crt")}`,
      ], { cwd: "/", stdio: "ignore", detached: true });
      spawned.unref();
      let exited: string | undefined;
      const exit = new Promise<void>((resolve) =>
        spawned.once("exit", (code, signal) => {
          exited = `mariadbd exited with ${code ?? signal}`;
          resolve();
        })
      );
      if (spawned.pid === undefined) throw new Error(`could not start ${mariadbd}`);
      child = { pid: spawned.pid, exit };
      try {
        await poll("mariadbd to accept connections", 60_000, async () => {
          if (exited) throw new Error(exited);
          return (await rootSql("select 1")) === "1";
        });
      } catch (error) {
        throw new Error(`${messageOf(error)}\n${tail(log)}`);
      }
      const ssl = await rootSql("select @@have_ssl");
      if (ssl !== "YES") throw new Error(`have_ssl is ${ssl}\n${tail(log)}`);
    });
    await step("creating the users", () => {
      const password = TLS_PASSWORD.replaceAll("'", "''");
      return rootSql(
        `create user ${PLAIN_USER}@'127.0.0.1' identified by '${password}'; ` +
          `create user ${TLS_ONLY_USER}@'127.0.0.1' identified by '${password}' require ssl; ` +
          `create user ${CERT_USER}@'127.0.0.1' identified by '${password}' require x509; ` +
          "create database test; " +
          [PLAIN_USER, TLS_ONLY_USER, CERT_USER].map((name) => `grant select on test.* to ${name}@'127.0.0.1'`)
            .join("; "),
      );
    });
    return server;
  } catch (error) {
    await server.destroy();
    throw error;
  }
}
