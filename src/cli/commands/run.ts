import type { Command } from "commander";
import { runScenarioFile } from "../../scenario/load.js";
import type { ScenarioReport } from "../../scenario/run.js";
import { EXIT_EXPECTATION, guard, print, printJson } from "../io.js";

const fmt = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));

export function renderScenario(r: ScenarioReport, file: string): string {
  const out = [`Scenario ${r.name || file} on ${r.machine}`, `  kernel: ${r.kernel}`, ""];
  for (const s of r.steps) {
    const res = s.result;
    const what = res.bug
      ? `KERNEL BUG: ${res.bug}`
      : res.errno
        ? `-${res.errno}${res.detail ? ` (${res.detail})` : ""}`
        : `ret ${res.ret}${res.fd !== undefined ? ` (fd ${res.fd})` : ""}`;
    const notes = Object.entries(s.move_notify)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${k}+${n}`);
    out.push(
      `${s.ok ? " ok " : "FAIL"} ${String(s.index + 1).padStart(2)}. ${s.op} → ${what}${notes.length ? `   move_notify: ${notes.join(" ")}` : ""}`,
    );
    if (res.map)
      out.push(
        `          ${res.map.mode} mode, ${res.map.nents} entries: ${res.map.entries.map(([a, l]) => `(${a}, ${l})`).join(" ")}`,
      );
    if (s.diagnostics.length) out.push(`          diagnostics: ${s.diagnostics.join(", ")}`);
    for (const e of s.expectations.filter((x) => !x.ok))
      out.push(`          expected ${e.what} ${fmt(e.want)}, got ${fmt(e.got)}`);
  }
  if (r.violations.length)
    out.push("", "Importer protocol violations:", ...r.violations.map((v) => `  ${v}`));
  const failed = r.steps.filter((s) => !s.ok).length;
  out.push(
    "",
    failed ? `${failed} step(s) failed their expectations` : `all ${r.steps.length} steps as expected`,
  );
  return out.join("\n");
}

export function registerRun(program: Command): void {
  program
    .command("run")
    .description("run a scenario file: a machine, uAPI calls and device events, with expected results")
    .argument("<scenario>", "YAML or JSON scenario file (schema: docs/scenario.schema.json)")
    .option("--json", "one object per step with its result and the move_notify calls it caused")
    .addHelpText(
      "after",
      `
A scenario names a machine, an optional kernel profile, and steps written with the kernel's uAPI:

  machine: builtin:spec-f
  kernel: { moveNotify: true }
  steps:
    - { open: "0000:03:00.0", as: dev }
    - { export: { fd: dev, region: 0, ranges: [[0, 0x1000]] }, as: buf, expect: { errno: 0 } }
    - { attach: buf, importer: { device: "0000:04:00.0" }, as: A }
    - { map: A, expect: { map: { mode: bus, entries: [[0x8000000000, 0x1000]] } } }
    - { event: memory-off, device: "0000:03:00.0", expect: { move_notify: { A: 1 } } }
    - { map: A, expect: { errno: ENODEV } }

Raw ioctls take the exact bytes a C program passes: { ioctl: VFIO_DEVICE_FEATURE, fd: dev,
arg: "<hex>", as: buf }. Exit 0 when every expectation holds, 1 when one fails, 2 on bad input.
Examples ship in scenarios/ (one per spec behaviour they reproduce).`,
    )
    .action((file: string, opts: { json?: boolean }) =>
      guard(() => {
        const r = runScenarioFile(file);
        if (opts.json) printJson(r);
        else print(renderScenario(r, file));
        return r.ok ? 0 : EXIT_EXPECTATION;
      }),
    );
}
