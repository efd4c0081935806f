/**
 * The address of a module beside another, with the other's extension: `.ts`
 * when Roost runs from its TypeScript sources (Deno, Bun, JSR), `.js` once
 * compiled (the npm package, or a 1:1 transpile such as JSR's npm layer).
 * Built at run time, so a bundler never follows it.
 *
 * @module
 */

/** The module `stem` (a file name without extension) in the directory of `base` (an `import.meta.url`). */
export function siblingModule(stem: string, base: string): URL {
  const extension = /\.[cm]?[jt]s$/.exec(new URL(base).pathname)?.[0] ?? ".js";
  return new URL(`./${stem}${extension}`, base);
}
