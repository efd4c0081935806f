/**
 * Calling a SQLite statement's methods with bound values held in an array.
 * Up to three values are passed as arguments one by one: a spread call into
 * the runtime's native method costs about 350 instructions more per call on
 * Bun (callgrind), a third of Roost's whole overhead on a point select.
 *
 * @module
 */

/** A statement method taking the bound values as arguments. */
type Method<R> = (...values: unknown[]) => R;

/** `statement.get(...values)`. */
export function getWith<R>(statement: { get: Method<R> }, values: readonly unknown[]): R {
  switch (values.length) {
    case 0:
      return statement.get();
    case 1:
      return statement.get(values[0]);
    case 2:
      return statement.get(values[0], values[1]);
    case 3:
      return statement.get(values[0], values[1], values[2]);
    default:
      return statement.get(...values);
  }
}

/** `statement.all(...values)`. */
export function allWith<R>(statement: { all: Method<R> }, values: readonly unknown[]): R {
  switch (values.length) {
    case 0:
      return statement.all();
    case 1:
      return statement.all(values[0]);
    case 2:
      return statement.all(values[0], values[1]);
    case 3:
      return statement.all(values[0], values[1], values[2]);
    default:
      return statement.all(...values);
  }
}

/** `statement.run(...values)`. */
export function runWith<R>(statement: { run: Method<R> }, values: readonly unknown[]): R {
  switch (values.length) {
    case 0:
      return statement.run();
    case 1:
      return statement.run(values[0]);
    case 2:
      return statement.run(values[0], values[1]);
    case 3:
      return statement.run(values[0], values[1], values[2]);
    default:
      return statement.run(...values);
  }
}
