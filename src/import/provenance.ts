/**
 * Provenance of imported attributes: for every (subject, attribute) pair, the value and where it
 * came from — the file, the field inside it (a register, a key, a line) and, when it was not
 * read directly, how it was obtained. Several sources of one machine can be merged; every
 * record is kept, the first one recorded for a pair is the one the fabric uses.
 *
 * Subjects are BDFs (`0000:00:02.0`), host bridges (`pci0000:00`), `cpu` or `fabric`.
 */

export interface ProvenanceSource {
  /** A path on disk, or `archive:path/inside` for a file read from an archive. */
  file: string;
  /** The field, register or key inside the file ("LnkSta @0x52", "vendor_id", "BAR2"). */
  field?: string;
  /** 1-based line inside the file, where the value sits on one line. */
  line?: number;
  /** How the value was obtained when it was not read as is ("derived from the sysfs path"). */
  note?: string;
}

export interface ProvenanceRecord {
  subject: string;
  attribute: string;
  value: unknown;
  source: ProvenanceSource;
}

/** JSON-safe copy of a value: bigints become `0x…` strings, typed arrays their length. */
function jsonSafe(v: unknown): unknown {
  if (typeof v === "bigint") return `0x${v.toString(16)}`;
  if (v instanceof Uint8Array) return { bytes: v.length };
  if (Array.isArray(v)) return v.map(jsonSafe);
  if (v && typeof v === "object") {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = jsonSafe(x);
    return o;
  }
  return v;
}

export class Provenance {
  private readonly bySubject = new Map<string, Map<string, ProvenanceRecord[]>>();

  /** Records that `subject.attribute = value`, read from `source`. */
  record(subject: string, attribute: string, value: unknown, source: ProvenanceSource): void {
    let attrs = this.bySubject.get(subject);
    if (!attrs) {
      attrs = new Map();
      this.bySubject.set(subject, attrs);
    }
    const list = attrs.get(attribute);
    const rec = { subject, attribute, value, source };
    if (list) list.push(rec);
    else attrs.set(attribute, [rec]);
  }

  /** The record the fabric uses (the first one) for this pair. */
  get(subject: string, attribute: string): ProvenanceRecord | undefined {
    return this.bySubject.get(subject)?.get(attribute)?.[0];
  }

  /** Every record for this pair, in the order they were recorded. */
  all(subject: string, attribute: string): ProvenanceRecord[] {
    return this.bySubject.get(subject)?.get(attribute) ?? [];
  }

  value<T = unknown>(subject: string, attribute: string): T | undefined {
    return this.get(subject, attribute)?.value as T | undefined;
  }

  has(subject: string, attribute: string): boolean {
    return this.get(subject, attribute) !== undefined;
  }

  subjects(): string[] {
    return [...this.bySubject.keys()];
  }

  attributes(subject: string): string[] {
    return [...(this.bySubject.get(subject)?.keys() ?? [])];
  }

  /** Adds every record of `other` after this one's (this one's records stay first). */
  merge(other: Provenance): void {
    for (const r of other.records()) this.record(r.subject, r.attribute, r.value, r.source);
  }

  records(): ProvenanceRecord[] {
    const out: ProvenanceRecord[] = [];
    for (const attrs of this.bySubject.values()) for (const list of attrs.values()) out.push(...list);
    return out;
  }

  /** "file:line (field)" for a pair, for messages; undefined when nothing was recorded. */
  describe(subject: string, attribute: string): string | undefined {
    const r = this.get(subject, attribute);
    if (!r) return undefined;
    const s = r.source;
    return `${s.file}${s.line ? `:${s.line}` : ""}${s.field ? ` (${s.field})` : ""}${s.note ? ` — ${s.note}` : ""}`;
  }

  toJSON(): { subject: string; attribute: string; value: unknown; source: ProvenanceSource }[] {
    return this.records().map((r) => ({ ...r, value: jsonSafe(r.value) }));
  }
}
