/** Turns `<source…>` and `--cpu` into a Machine. */
import { loadSources, parseCpuOption } from "../import/source.js";
import { Machine } from "../machine/machine.js";

export interface SourceOptions {
  cpu?: string;
}

export function machineFromArgs(sources: string[], opts: SourceOptions) {
  const loaded = loadSources(sources);
  const machine = new Machine(loaded.fabric, { cpu: opts.cpu ? parseCpuOption(opts.cpu) : undefined });
  return { machine, loaded };
}

/** A line saying which CPU the P2P verdicts assume, and where that came from. */
export function cpuNote(m: Machine): string {
  const c = m.cpu;
  const what = `${c.vendor} family 0x${c.family.toString(16)}${c.modelName ? ` (${c.modelName})` : ""}`;
  return m.cpuAssumed
    ? `CPU: not stated by the source; assumed ${what} (not AMD Zen). Use --cpu amd-zen or --cpu intel to say.`
    : `CPU: ${what} (from ${c.source})`;
}
