/**
 * The WebSocket-to-TCP proxy program the neon driver's tests go through: a
 * Node process (started by tests/support/ws_proxy.ts from any runtime) that
 * listens on a free port of 127.0.0.1 and, for each WebSocket, opens a TCP
 * connection to the `address=<host>:<port>` its request names (the
 * convention of Neon's wsproxy) and copies binary frames both ways, with
 * backpressure. Only loopback addresses are served. It prints its port on
 * its first line, and exits when its standard input closes (its parent
 * ended) or on SIGTERM. Test support, not product; built on `ws`.
 *
 * @module
 */
import { connect, type Socket } from "node:net";
import process from "node:process";
import { pipeline } from "node:stream";
import { createWebSocketStream, type WebSocket, WebSocketServer } from "ws";

/** The loopback hosts the proxy connects to; anything else is refused. */
const loopback = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

/** `host:port` (IPv6 hosts bare or in brackets) to its parts, or undefined when it is not one. */
function target(address: string | null): { host: string; port: number } | undefined {
  if (address === null) return undefined;
  const colon = address.lastIndexOf(":");
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
  const port = Number(address.slice(colon + 1));
  return colon > 0 && Number.isInteger(port) && port > 0 && port < 65536 ? { host, port } : undefined;
}

const server = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });

server.on("connection", (socket: WebSocket, request: { url?: string }) => {
  const wanted = target(new URL(request.url ?? "/", "http://proxy").searchParams.get("address"));
  if (wanted === undefined || !loopback.has(wanted.host)) {
    socket.close(1008, "this proxy connects only to a loopback host:port");
    return;
  }
  const tcp: Socket = connect(wanted.port, wanted.host);
  tcp.setNoDelay(true);
  const frames = createWebSocketStream(socket);
  // Either side's end or failure ends the other: the server sees its client go, the client its server.
  pipeline(frames, tcp, frames, () => {
    tcp.destroy();
    socket.terminate();
  });
});

server.on("listening", () => {
  const address = server.address();
  process.stdout.write(`${typeof address === "object" && address !== null ? address.port : 0}\n`);
});

const stop = () => {
  for (const client of server.clients) client.terminate();
  server.close();
  process.exit(0);
};
// The parent holds the other end of standard input: when it ends, so does the proxy.
process.stdin.on("end", stop);
process.stdin.on("close", stop);
process.stdin.resume();
process.on("SIGTERM", stop);
