/**
 * Whether a MySQL or MariaDB server offers TLS, read from the greeting it
 * sends every new connection: the CLIENT_SSL bit of its capability flags.
 * For a driver whose error does not tell a server without TLS from other
 * failures: Bun.SQL's MySQL adapter calls a server without TLS
 * `ERR_MYSQL_AUTHENTICATION_FAILED` ("Authentication failed", no server
 * error number), a code it also gives when its own TLS upgrade or a
 * `caching_sha2_password` exchange fails.
 *
 * @module
 */
import { builtinModule } from "../../runtime.ts";

/** CLIENT_SSL in the lower two bytes of the greeting's capability flags. */
const clientSsl = 0x800;

/** The part of a `node:net` socket the greeting is read with. */
interface GreetingSocket {
  on(event: "data", listener: (chunk: Uint8Array) => void): void;
  on(event: "error" | "close", listener: () => void): void;
  setTimeout(ms: number, listener: () => void): void;
  destroy(): void;
}

type Net = { connect(port: number, host: string): GreetingSocket };

/**
 * The CLIENT_SSL bit of a greeting (protocol 10: packet header, protocol
 * version, server version ending in NUL, connection id, 8 bytes of
 * scramble, a filler, then the flags' lower two bytes); `undefined` while
 * `bytes` are too few, and for anything else (an error packet: too many
 * connections, a blocked host).
 */
export function greetingOffersTls(bytes: Uint8Array): boolean | undefined {
  if (bytes[4] !== 10) return undefined;
  const end = bytes.indexOf(0, 5);
  const flags = end + 14;
  if (end < 0 || bytes.length < flags + 2) return undefined;
  return ((bytes[flags] | bytes[flags + 1] << 8) & clientSsl) !== 0;
}

/**
 * Opens a connection to `host`:`port`, reads the server's greeting and
 * closes: true when the server offers TLS, false when it does not, and
 * `undefined` when it could not be told (no `node:net`, no answer within
 * `seconds`, a greeting that is no protocol-10 handshake). The server counts
 * the closed connection as an aborted connect.
 */
export function serverOffersTls(host: string, port: number, seconds: number): Promise<boolean | undefined> {
  const net = builtinModule<Net>("node:net");
  if (net === undefined) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    let read = new Uint8Array(0);
    const done = (answer: boolean | undefined) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(seconds * 1000, () => done(undefined));
    socket.on("error", () => done(undefined));
    socket.on("close", () => done(undefined));
    socket.on("data", (chunk) => {
      const joined = new Uint8Array(read.length + chunk.length);
      joined.set(read);
      joined.set(chunk, read.length);
      read = joined;
      const answer = greetingOffersTls(read);
      // A full header says how long the greeting is: past it, nothing more will tell.
      const whole = read.length >= 4 && read.length >= 4 + (read[0] | read[1] << 8 | read[2] << 16);
      if (answer !== undefined || whole) done(answer);
    });
  });
}
