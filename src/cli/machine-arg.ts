/** Turns `<source…>` and `--cpu` into a Machine. */
import { loadSources, parseCpuOption } from "../import/source.js";
import { Machine } from "../machine/machine.js";

export interface SourceOptions {
  cpu?: string;
}

export function machineFromArgs(sources: string[], opts: SourceOptions) {
  const cpu = opts.cpu ? parseCpuOption(opts.cpu) : undefined;
  const loaded = loadSources(sources, { cpu });
  const machine = new Machine(loaded.fabric, { cpu });
  return { machine, loaded };
}

/** What the sources did not state and the model assumed — shown, never hidden. */
export function assumptionsNote(loaded: {
  unknowns: { subject: string; attribute: string; assumed: unknown; note: string }[];
  conflicts: unknown[];
}): string {
  if (!loaded.unknowns.length && !loaded.conflicts.length) return "";
  const byAttr = new Map<string, number>();
  for (const u of loaded.unknowns) {
    const key = `${u.attribute}: ${u.note || JSON.stringify(u.assumed)}`;
    byAttr.set(key, (byAttr.get(key) ?? 0) + 1);
  }
  const lines = [...byAttr].slice(0, 6).map(([k, n]) => `  ${k} (${n}×)`);
  return [
    `Not stated by the sources (${loaded.unknowns.length} attributes), assumed:`,
    ...lines,
    ...(byAttr.size > 6 ? [`  … and ${byAttr.size - 6} more (see --json)`] : []),
    ...(loaded.conflicts.length
      ? [`Sources disagree on ${loaded.conflicts.length} attribute(s); the first source won (see --json).`]
      : []),
  ].join("\n");
}

/** A line saying which CPU the P2P verdicts assume, and where that came from. */
export function cpuNote(m: Machine): string {
  const c = m.cpu;
  const what = `${c.vendor} family 0x${c.family.toString(16)}${c.modelName ? ` (${c.modelName})` : ""}`;
  return m.cpuAssumed
    ? `CPU: not stated by the source; assumed ${what} (not AMD Zen). Use --cpu amd-zen or --cpu intel to say.`
    : `CPU: ${what} (from ${c.source})`;
}
