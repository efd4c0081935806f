/**
 * Stands in for `node:stream` in a Worker bundled without `nodejs_compat`:
 * postgres.js needs Node streams only for COPY, which these tests do not use.
 *
 * @module
 */
class Unavailable {
  constructor() {
    throw new Error("Node streams are not available without nodejs_compat");
  }
}

export default { Readable: Unavailable, Writable: Unavailable, Duplex: Unavailable };
