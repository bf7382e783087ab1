/**
 * The TLPs a transfer put on the links it crossed, as wire bytes and decoded headers, in the
 * order they were sent. Exported as text that `peerdma tlp decode <file>` reads: one TLP per line
 * (AER header-log form, which names the mode, by default), each preceded by a `#` comment line.
 */
import { formatAer, formatWire, summaryLine, type Tlp, type TlpMode } from "../tlp/index.js";

export interface TlpTraceEntry {
  /** Number of the request within its transfer; completions carry their request's number. */
  request: number;
  /** Link name: `<port BDF>↔<device BDF>`. */
  link: string;
  direction: "up" | "down";
  mode: TlpMode;
  /** Prefixes, header and payload, byte 0 first. */
  bytes: Uint8Array;
  /** The decoded TLP. */
  header: Tlp;
}

export interface TraceTextOptions {
  /** `aer` (default): `TLP Header: 0x…` lines, header only, mode explicit; `wire`: every byte incl. payload. */
  form?: "aer" | "wire";
  /** Comment line before each TLP (default true). */
  comments?: boolean;
}

export class TlpTrace {
  readonly entries: TlpTraceEntry[] = [];

  get length(): number {
    return this.entries.length;
  }

  add(e: TlpTraceEntry): void {
    this.entries.push(e);
  }

  /** Entries on one link (in order). */
  onLink(link: string): TlpTraceEntry[] {
    return this.entries.filter((e) => e.link === link);
  }

  /** Distinct link names in first-use order. */
  links(): string[] {
    return [...new Set(this.entries.map((e) => e.link))];
  }

  toLines(opts: TraceTextOptions = {}): string[] {
    const out: string[] = [];
    for (const [i, e] of this.entries.entries()) {
      if (opts.comments ?? true)
        out.push(`# ${i} req ${e.request} ${e.direction} ${e.link} ${e.mode}: ${summaryLine(e.header)}`);
      out.push(opts.form === "wire" ? formatWire(e.bytes) : formatAer(e.header));
    }
    return out;
  }

  toText(opts: TraceTextOptions = {}): string {
    const lines = this.toLines(opts);
    return lines.length ? `${lines.join("\n")}\n` : "";
  }
}
