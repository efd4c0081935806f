/**
 * Where the postgres-js driver's password comes from: the URL's, or, for a
 * URL without one, `PGPASSWORD` as libpq and postgres.js read it. The local
 * Postgres trusts every connection and never asks for a password, so a small
 * server of this file's own asks for it in clear text, as a server with
 * `password` authentication does, records what arrives and refuses it.
 */
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import process from "node:process";
import { after, describe, test } from "node:test";
import { Database, sql } from "../../mod.ts";
import { assertHidden } from "../support/support.ts";

/** A Postgres-speaking listener that asks each connection for its password and refuses it. */
class PasswordAsker {
  readonly received: string[] = [];
  readonly #server: Server = createServer((socket) => this.#serve(socket));

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    return (this.#server.address() as { port: number }).port;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  #serve(socket: Socket): void {
    let buffered = new Uint8Array(0);
    let started = false;
    socket.on("error", () => {});
    socket.on("data", (chunk: Uint8Array) => {
      const joined = new Uint8Array(buffered.length + chunk.length);
      joined.set(buffered);
      joined.set(chunk, buffered.length);
      buffered = joined;
      for (;;) {
        const view = new DataView(buffered.buffer, buffered.byteOffset, buffered.byteLength);
        if (!started) {
          // The start-up (or an SSL request before it): a length, then a code, no type byte.
          if (buffered.length < 8) return;
          const length = view.getInt32(0);
          if (buffered.length < length) return;
          const code = view.getInt32(4);
          buffered = buffered.slice(length);
          if (code === 80877103) {
            socket.write("N"); // no TLS here
            continue;
          }
          started = true;
          socket.write(new Uint8Array([0x52, 0, 0, 0, 8, 0, 0, 0, 3])); // AuthenticationCleartextPassword
          continue;
        }
        if (buffered.length < 5) return;
        const length = view.getInt32(1);
        if (buffered.length < length + 1) return;
        if (buffered[0] === 0x70) {
          this.received.push(new TextDecoder().decode(buffered.slice(5, length + 1 - 1)));
          socket.end(refusal());
        }
        buffered = buffered.slice(length + 1);
      }
    });
  }
}

/** A FATAL ErrorResponse: 28P01, password authentication failed. */
function refusal(): Uint8Array {
  const fields = "SFATAL\0C28P01\0Mpassword authentication failed\0\0";
  const body = new TextEncoder().encode(fields);
  const message = new Uint8Array(5 + body.length);
  message[0] = 0x45;
  new DataView(message.buffer).setInt32(1, 4 + body.length);
  message.set(body, 5);
  return message;
}

describe("postgres-js: the password of a URL without one is PGPASSWORD's", () => {
  const saved = process.env.PGPASSWORD;
  after(() => {
    if (saved === undefined) delete process.env.PGPASSWORD;
    else process.env.PGPASSWORD = saved;
  });

  /**
   * Connects to an asker of its own (a late attempt of an earlier one cannot
   * mix in), checks the password every connection attempt sent (the pool may
   * try more than once) and returns the error (the asker refuses every
   * password).
   */
  async function attempt(userinfo: string, expected: string): Promise<Error> {
    const server = new PasswordAsker();
    const port = await server.listen();
    const db = new Database(`postgres://${userinfo}@127.0.0.1:${port}/app?sslmode=disable&connect_timeout=10`, {
      driver: "postgres-js",
      pool: { acquireTimeout: 20_000 },
    });
    try {
      await db.fetchVal(sql`select 1`);
      throw new Error("the asker refuses every password");
    } catch (error) {
      assert.ok(server.received.length > 0, "the asker got a password");
      assert.deepEqual(new Set(server.received), new Set([expected]));
      return error as Error;
    } finally {
      await db.close();
      await server.close();
    }
  }

  test("a URL's password is sent; without one, PGPASSWORD's; with neither, an empty one", async () => {
    process.env.PGPASSWORD = "env-secret-3gq9";
    const fromUrl = await attempt("app:url-secret-8kd2", "url-secret-8kd2");
    const fromEnv = await attempt("app", "env-secret-3gq9");
    delete process.env.PGPASSWORD;
    await attempt("app", "");
    for (const error of [fromUrl, fromEnv]) {
      assert.match(error.message, /password authentication failed/);
      assertHidden(error, ["url-secret-8kd2", "env-secret-3gq9"], "the refused connection");
    }
  });
});
