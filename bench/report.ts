/**
 * Turns the workers' figures into the Markdown tables and SVG charts under
 * bench/results/: every figure with its ratio to the raw driver under it,
 * measured in the same run (above 1 is faster than the raw driver). On Bun
 * two raw drivers run per server dialect: "raw" (postgres.js, mysql2) and
 * "raw-bun-sql" (Bun.SQL); a contender on Bun.SQL is measured against the
 * latter, every other one against "raw".
 *
 * @module
 */
import type { BenchRuntime } from "./contenders/contender.ts";
import {
  type CaseName,
  caseNames,
  type CaseResult,
  type ContenderName,
  contenderNames,
  type WorkerReport,
} from "./worker.ts";

/** Where and when a run happened. */
export interface Machine {
  /** The day of the run (YYYY-MM-DD). */
  date: string;
  /** The CPU model. */
  cpu: string;
  /** Logical cores. */
  cores: number;
  /** Memory, rounded to GiB. */
  memoryGiB: number;
  /** Kernel name and release. */
  os: string;
  /** Each server's version, by dialect. */
  servers: Record<string, string>;
}

/** A whole run: the machine and every worker's report. */
export interface RunResults {
  /** Where and when. */
  machine: Machine;
  /**
   * Rounds per contender and workload, seconds per round, and the order the
   * workloads ran in (`given`, `reverse`, `shuffle:<seed>`; runs before it was recorded ran as given).
   */
  settings: { rounds: number; seconds: number; order?: string };
  /** One per runtime and dialect. */
  reports: WorkerReport[];
  /** Runtime/dialect pairs that produced no report, and why. */
  failures: { runtime: BenchRuntime; dialect: string; error: string }[];
}

/** How each workload is named in the tables. */
export const caseLabels: Record<CaseName, string> = {
  "point-1": "point select, 1 in flight",
  "point-50": "point select, 50 in flight",
  "select-100": "100-row select",
  "insert": "single-row insert",
  "transaction": "10-statement transaction",
  "execute-many": "executeMany, 1,000 rows",
  "iterate": "iterate 1,000,000 rows",
};

/** How each contender is named in the tables' headers and notes. */
export const contenderLabels: Record<ContenderName, string> = {
  raw: "raw driver",
  "raw-bun-sql": "raw Bun.SQL",
  roost: "Roost",
  "roost-bun-sql": "Roost on bun-sql",
  "roost-postgres-js": "Roost on postgres-js",
  "roost-baseline": "Roost (baseline checkout)",
  "roost-baseline-bun-sql": "Roost on bun-sql (baseline checkout)",
  kysely: "Kysely",
  "roost-kysely": "Kysely on Roost",
  drizzle: "Drizzle",
};

/** The contenders with a result in these reports, in {@linkcode contenderNames} order. */
function present(reports: readonly WorkerReport[]): ContenderName[] {
  const seen = new Set(reports.flatMap((report) => report.results.map((result) => result.contender)));
  return contenderNames.filter((name) => seen.has(name));
}

const grouped = (n: number) => Math.round(n).toLocaleString("en-US");

/** A figure as the tables show it. */
function figure(result: CaseResult): string {
  if (result.perSecond === undefined) return "—";
  if (result.case === "iterate") {
    return `${(1_000_000 / result.perSecond).toFixed(2)} s, +${Math.round((result.peakBytes ?? 0) / 2 ** 20)} MiB`;
  }
  if (result.case === "execute-many") return `${(1_000 / result.perSecond).toFixed(2)} ms`;
  return `${grouped(result.perSecond)}/s`;
}

/** The raw contenders: each shows its figure only, and is what the others' ratios are against. */
export const rawContenders: readonly ContenderName[] = ["raw", "raw-bun-sql"];

/**
 * The raw driver a contender's ratio is against, among one workload's
 * results: the raw contender on the same driver (raw Bun.SQL for Roost on
 * bun-sql), else "raw".
 */
export function rawFor(result: CaseResult | undefined, results: readonly CaseResult[]): CaseResult | undefined {
  const raws = results.filter((other) => rawContenders.includes(other.contender));
  return raws.find((raw) => raw.driver === result?.driver) ?? raws.find((raw) => raw.contender === "raw");
}

/** The contender's throughput over the raw driver's in the same run, or undefined. */
export function ratio(result: CaseResult | undefined, raw: CaseResult | undefined): number | undefined {
  if (result?.perSecond === undefined || raw?.perSecond === undefined) return undefined;
  return result.perSecond / raw.perSecond;
}

function cell(result: CaseResult | undefined, raw: CaseResult | undefined): string {
  if (result === undefined) return "";
  // Why there is no figure goes under the table, so one long reason does not widen a column.
  if (result.perSecond === undefined) return "—";
  if (result === raw || rawContenders.includes(result.contender)) return figure(result);
  const r = ratio(result, raw);
  return r === undefined ? figure(result) : `${figure(result)} (**${r.toFixed(2)}×**)`;
}

/**
 * The Markdown tables of a run: one per runtime, a row per dialect and
 * workload, a column per contender measured (in {@linkcode contenderNames}
 * order). A workload a contender has no figure for shows "—", and why is
 * listed under the table.
 */
export function markdownTables(run: RunResults): string {
  const lines: string[] = [];
  const runtimes = [...new Set(run.reports.map((report) => report.runtime))];
  for (const runtime of runtimes) {
    const reports = run.reports.filter((report) => report.runtime === runtime);
    const columns = present(reports);
    const headers = ["dialect (driver)", "workload", ...columns.map((name) => contenderLabels[name])];
    const notes = new Set<string>();
    lines.push(`### ${runtime} ${reports[0].runtimeVersion}`, "");
    lines.push(`| ${headers.join(" | ")} |`);
    lines.push(`| ${headers.map((header) => "-".repeat(header.length)).join(" | ")} |`);
    for (const report of reports) {
      for (const caseName of caseNames) {
        const results = report.results.filter((result) => result.case === caseName);
        if (results.length === 0) continue;
        const raw = results.find((result) => result.contender === "raw");
        const driver = raw?.driver ?? results[0].driver;
        const cells = columns.map((name) => {
          const result = results.find((result) => result.contender === name);
          if (result !== undefined && result.perSecond === undefined) {
            notes.add(`${contenderLabels[name]}, ${caseLabels[caseName]}: ${result.skipped ?? "no figure"}`);
          }
          return cell(result, rawFor(result, results));
        });
        lines.push(`| ${report.dialect} (${driver}) | ${caseLabels[caseName]} | ${cells.join(" | ")} |`);
      }
    }
    lines.push("");
    if (notes.size > 0) lines.push("Not measured (—):", "", ...[...notes].map((note) => `- ${note}`), "");
  }
  for (const failure of run.failures) {
    lines.push(`- ${failure.runtime} / ${failure.dialect}: no figures (${failure.error})`);
  }
  return lines.join("\n");
}

/** The machine line under the tables. */
export function machineLine(machine: Machine): string {
  const servers = Object.entries(machine.servers).map(([name, version]) => `${name} ${version}`).join(", ");
  const host = `${machine.date}: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}`;
  return servers === "" ? `${host}.` : `${host}; ${servers} on loopback.`;
}

/** A contender drawn as a bar: every one but the raw drivers. */
type Charted = Exclude<ContenderName, "raw" | "raw-bun-sql">;

const colors: Record<Charted, string> = {
  roost: "#2f6f4f",
  "roost-bun-sql": "#c2a83e",
  "roost-postgres-js": "#5f9ea0",
  "roost-baseline": "#8fbf9f",
  "roost-baseline-bun-sql": "#e3d59a",
  kysely: "#4a6fa5",
  "roost-kysely": "#7a5195",
  drizzle: "#b5703a",
};

const escapeXml = (text: string) => text.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * A horizontal bar chart for one runtime: per dialect and workload, each
 * contender's throughput as a ratio to the raw driver (the line at 1.0).
 */
export function svgChart(run: RunResults, runtime: BenchRuntime): string {
  const reports = run.reports.filter((report) => report.runtime === runtime);
  const others = present(reports).filter((name): name is Charted => !rawContenders.includes(name));
  const rows: { label: string; bars: { name: Charted; value: number | undefined }[] }[] = [];
  for (const report of reports) {
    for (const caseName of caseNames) {
      const results = report.results.filter((result) => result.case === caseName);
      if (results.length === 0) continue;
      rows.push({
        label: `${report.dialect}: ${caseLabels[caseName]}`,
        bars: others.map((name) => {
          const result = results.find((result) => result.contender === name);
          return { name, value: ratio(result, rawFor(result, results)) };
        }),
      });
    }
  }
  const left = 250, width = 420, bar = 7, gap = 10, top = 40;
  const rowHeight = others.length * bar + gap;
  const max = Math.max(1.25, ...rows.flatMap((row) => row.bars.map((b) => b.value ?? 0)));
  const x = (value: number) => left + (value / max) * width;
  const height = top + rows.length * rowHeight + 20;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${
      left + width + 60
    }" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="16" font-size="13" font-weight="bold">${
      escapeXml(`${runtime} ${reports[0]?.runtimeVersion ?? ""}: throughput relative to the raw driver under it (1.0)`)
    }</text>`,
  ];
  // The legend from the left edge, each name as wide as its text.
  let legendX = 10;
  for (const name of others) {
    out.push(`<rect x="${legendX}" y="24" width="10" height="10" fill="${colors[name]}"/>`);
    out.push(`<text x="${legendX + 14}" y="33">${name}</text>`);
    legendX += name.length * 6 + 24;
  }
  rows.forEach((row, r) => {
    const y = top + r * rowHeight;
    out.push(
      `<text x="${left - 6}" y="${y + (others.length * bar) / 2 + 4}" text-anchor="end">${escapeXml(row.label)}</text>`,
    );
    row.bars.forEach((b, i) => {
      if (b.value === undefined) return;
      out.push(
        `<rect x="${left}" y="${y + i * bar}" width="${(x(b.value) - left).toFixed(1)}" height="${bar - 1}" fill="${
          colors[b.name]
        }"><title>${b.name} ${b.value.toFixed(2)}×</title></rect>`,
      );
      out.push(
        `<text x="${(x(b.value) + 3).toFixed(1)}" y="${y + i * bar + bar - 1}" font-size="8">${
          b.value.toFixed(2)
        }</text>`,
      );
    });
  });
  out.push(
    `<line x1="${x(1)}" y1="${top - 4}" x2="${x(1)}" y2="${height - 16}" stroke="black" stroke-dasharray="3,2"/>`,
  );
  out.push(`<text x="${x(1)}" y="${height - 4}" text-anchor="middle">1.0 = raw driver</text>`);
  out.push(`</svg>`);
  return out.join("\n");
}
