/**
 * Listening to the signal with which a closing pool gives up a connect under
 * way (`Driver.connect(url, signal)`), the same way in every driver.
 *
 * @module
 */

/**
 * Runs `action` once when `signal` aborts, at once if it already has.
 * Returns the function that stops listening: call it when the connect ends,
 * whichever way, so a later abort touches nothing.
 */
export function onAbort(signal: AbortSignal | undefined, action: () => void): () => void {
  if (signal === undefined) return () => {};
  if (signal.aborted) {
    action();
    return () => {};
  }
  signal.addEventListener("abort", action, { once: true });
  return () => signal.removeEventListener("abort", action);
}
