/** Locating problems in YAML/JSON input: zod issue paths → file lines. */
import { isMap, isSeq, LineCounter, parseDocument } from "yaml";
import type { z } from "zod";
import { InputError } from "../core/errors.js";

/** The line a path inside the document starts on (the deepest node that exists). */
export function lineOf(text: string, path: PropertyKey[]): number | undefined {
  try {
    const lc = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lc });
    let node: unknown = doc.contents;
    let last = node;
    for (const k of path) {
      if (isMap(node)) node = node.get(k as string, true);
      else if (isSeq(node)) node = node.get(k as number, true);
      else break;
      if (node) last = node;
      else break;
    }
    const range = (last as { range?: [number, number, number] } | null)?.range;
    return range ? lc.linePos(range[0]).line : undefined;
  } catch {
    return undefined;
  }
}

export function formatPath(path: PropertyKey[]): string {
  return path.reduce<string>(
    (s, k) => (typeof k === "number" ? `${s}[${k}]` : s ? `${s}.${String(k)}` : String(k)),
    "",
  );
}

/** The most specific issue: unions report nested issues; the deepest path says most. */
export function deepestIssue(issues: z.core.$ZodIssue[]): z.core.$ZodIssue {
  let best = issues[0];
  for (const i of issues) if (i.path.length > best.path.length) best = i;
  return best;
}

/** Parses YAML (JSON is YAML) into plain data; syntax errors name file, line and column. */
export function parseYamlText(text: string, file: string): unknown {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true });
  if (doc.errors.length) {
    const e = doc.errors[0];
    const pos = e.linePos?.[0];
    throw new InputError(`${e.message.split("\n")[0]}`, pos ? `${file}:${pos.line}:${pos.col}` : file);
  }
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    // resolving aliases happens here, not in the parser: `*x` without `&x`, or an alias bomb
    if (e instanceof ReferenceError || e instanceof RangeError)
      throw new InputError(`YAML: ${e.message}`, file);
    throw e;
  }
}

/** Validates `raw` with `schema`; the error names the file, the line and the path. */
export function validate<T extends z.ZodType>(
  schema: T,
  raw: unknown,
  text: string,
  file: string,
): z.output<T> {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issue = deepestIssue(parsed.error.issues);
  const line = lineOf(text, issue.path);
  const p = formatPath(issue.path);
  throw new InputError(`${p ? `${p}: ` : ""}${issue.message}`, line ? `${file}:${line}` : file);
}
