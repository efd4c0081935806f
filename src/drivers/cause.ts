/**
 * The `cause` a Roost error carries for a driver error: a copy that keeps
 * the server's useful fields and drops what could hold query parameters
 * (some drivers attach them and do not let them be deleted).
 *
 * @module
 */

/** Copies an error's name, message, stack and the listed fields; `redact` cleans the message and stack. */
export function sanitizedCause(
  error: unknown,
  fields: readonly string[],
  redact: (text: string) => string = (text) => text,
): unknown {
  if (!(error instanceof Error)) return error;
  const copy = new Error(redact(error.message));
  copy.name = error.name;
  const source = error as unknown as Record<string, unknown>;
  const target = copy as unknown as Record<string, unknown>;
  for (const field of fields) if (source[field] !== undefined) target[field] = source[field];
  copy.stack = error.stack === undefined ? undefined : redact(error.stack);
  return copy;
}
