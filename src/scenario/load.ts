/** Reading scenario files: YAML or JSON, validated, machine sources resolved next to the file. */
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { isMap, isSeq, LineCounter, parseDocument } from "yaml";
import { InputError } from "../core/errors.js";
import { loadSource } from "../import/source.js";
import { parseYamlText, validate } from "../import/yaml-source.js";
import type { Fabric } from "../pci/fabric.js";
import { runScenario, type ScenarioReport } from "./run.js";
import { Scenario, type ScenarioSpec } from "./schema.js";

export function parseScenarioText(text: string, file: string): ScenarioSpec {
  return validate(Scenario, parseYamlText(text, file), text, file);
}

/** Line numbers of the steps (for reports). */
function stepLines(text: string): (i: number) => number | undefined {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc });
  const root = doc.contents;
  const steps = isMap(root) ? root.get("steps", true) : null;
  return (i) => {
    if (!isSeq(steps)) return undefined;
    const n = steps.items[i] as { range?: [number, number, number] } | undefined;
    return n?.range ? lc.linePos(n.range[0]).line : undefined;
  };
}

export function runScenarioFile(file: string): ScenarioReport {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new InputError("cannot read the scenario file", file);
  }
  const spec = parseScenarioText(text, file);
  const base = dirname(file);
  const loadFabric = (source: string): Fabric => {
    const path = source.startsWith("builtin:") || isAbsolute(source) ? source : resolve(base, source);
    return loadSource(path).fabric;
  };
  return runScenario(spec, { loadFabric, lineOfStep: stepLines(text) });
}
