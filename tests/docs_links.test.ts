/**
 * Every relative link in the documents (README, CONTRIBUTING, RELIABILITY,
 * docs/, bench/README.md) names a file that exists, and every `#anchor` a
 * heading of that file, slugged as GitHub and JSR do. Links to other sites
 * are not followed. No database: it runs once per runtime, in milliseconds.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** The Markdown files whose links are checked, relative to the repository root. */
function documents(): string[] {
  const docs = readdirSync(join(root, "docs")).filter((name) => name.endsWith(".md")).map((name) => `docs/${name}`);
  return ["README.md", "CONTRIBUTING.md", "RELIABILITY.md", "bench/README.md", ...docs];
}

/** Markdown without fenced blocks and inline code, where a `](…)` is not a link. */
function prose(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, "").replace(/`[^`\n]*`/g, "");
}

/** A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading.replace(/`/g, "").toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, "").replace(/\s/g, "-");
}

/** The anchors of a Markdown file's headings, with GitHub's -1, -2 … for repeats. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const found = new Set<string>();
  for (const [, heading] of markdown.replace(/^```[\s\S]*?^```/gm, "").matchAll(/^#{1,6} (.+)$/gm)) {
    const base = slug(heading.trim());
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    found.add(count === 0 ? base : `${base}-${count}`);
  }
  return found;
}

describe("links between the documents", () => {
  test("every relative link and anchor in README, CONTRIBUTING, RELIABILITY, docs/ and bench/README resolves", () => {
    const broken: string[] = [];
    let checked = 0;
    for (const file of documents()) {
      const text = readFileSync(join(root, file), "utf8");
      for (const [, target] of prose(text).matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/i.test(target)) continue;
        checked++;
        const [path, anchor] = target.split("#") as [string, string | undefined];
        const resolved = path === "" ? join(root, file) : join(root, dirname(file), path);
        if (!existsSync(resolved)) {
          broken.push(`${file}: ${target} (no ${relative(root, resolved)})`);
          continue;
        }
        if (anchor !== undefined && resolved.endsWith(".md") && !anchors(readFileSync(resolved, "utf8")).has(anchor)) {
          broken.push(`${file}: ${target} (no heading #${anchor} in ${relative(root, resolved)})`);
        }
      }
    }
    assert.deepEqual(broken, [], `broken links:\n${broken.join("\n")}`);
    assert.ok(checked > 50, `only ${checked} links found: is the pattern still right?`);
  });
});
