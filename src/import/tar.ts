/**
 * A small, safe tar reader for sysfs snapshots: ustar, GNU (long names and link names) and pax
 * (`path`, `linkpath`, `size`) headers; regular files, folders, symbolic links (kept as links,
 * never followed here) and hard links. Names that would leave the archive's root are refused.
 * The archive may be plain, gzip (node:zlib) or bzip2 (the pure-JS `seek-bzip` decoder).
 *
 * Every failure is an {@link InputError} naming the file and the byte offset, in the
 * compressed stream or in the tar data after decompression.
 */
import { createRequire } from "node:module";
import { gunzipSync, constants as zc } from "node:zlib";
import { InputError } from "../core/errors.js";

export type TarEntryType = "file" | "dir" | "symlink" | "hardlink";

export interface TarEntry {
  /** Normalised path inside the archive (no leading `/` or `./`). */
  path: string;
  type: TarEntryType;
  /** File content (files only). */
  data?: Uint8Array;
  /** Link target as stored (symbolic and hard links). */
  linkTarget?: string;
  /** Offset of the entry's header in the tar data. */
  offset: number;
}

/** Largest archive content accepted after decompression (sysfs snapshots are a few MiB). */
export const MAX_UNPACKED_BYTES = 512 * 1024 * 1024;

export type Compression = "gzip" | "bzip2" | "none";

/** Which compression `bytes` starts with. */
export function compressionOf(bytes: Uint8Array): Compression {
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) return "gzip";
  if (bytes.length >= 3 && bytes[0] === 0x42 && bytes[1] === 0x5a && bytes[2] === 0x68) return "bzip2";
  return "none";
}

/** True when `bytes` look like a tar archive, possibly compressed. */
export function looksLikeArchive(bytes: Uint8Array): boolean {
  if (compressionOf(bytes) !== "none") return true;
  return bytes.length >= 512 && ascii(bytes, 257, 5) === "ustar";
}

/** Decompresses gzip or bzip2 data; anything else is returned as is. */
export function decompress(bytes: Uint8Array, file: string): Uint8Array {
  const c = compressionOf(bytes);
  if (c === "gzip") return gunzip(bytes, file);
  if (c === "bzip2") return bunzip2(bytes, file);
  return bytes;
}

/** Reads a (possibly compressed) tar archive. */
export function readArchive(bytes: Uint8Array, file: string): TarEntry[] {
  return readTar(decompress(bytes, file), file);
}

function gunzipPrefix(bytes: Uint8Array, n: number): void {
  gunzipSync(bytes.subarray(0, n), { finishFlush: zc.Z_SYNC_FLUSH, maxOutputLength: MAX_UNPACKED_BYTES });
}

export function gunzip(bytes: Uint8Array, file: string): Uint8Array {
  try {
    return new Uint8Array(gunzipSync(bytes, { maxOutputLength: MAX_UNPACKED_BYTES }));
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    if (e instanceof RangeError)
      throw new InputError(`gzip data unpacks to more than ${MAX_UNPACKED_BYTES} bytes`, file);
    // zlib does not say where it failed: find the shortest prefix that already fails.
    let lo = 0;
    let hi = bytes.length;
    let truncated = false;
    try {
      gunzipPrefix(bytes, bytes.length);
      truncated = true; // every prefix decodes: the data simply stops early
    } catch {
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        try {
          gunzipPrefix(bytes, mid);
          lo = mid;
        } catch {
          hi = mid;
        }
      }
    }
    if (truncated)
      throw new InputError(
        `gzip data is truncated: the file ends at byte ${bytes.length} before the compressed stream does (${why})`,
        file,
      );
    throw new InputError(
      `gzip data is corrupt (detected at byte ${hi - 1} of the compressed file: ${why})`,
      file,
    );
  }
}

interface BunzipApi {
  decode(input: unknown, output: unknown, multistream?: boolean): unknown;
}
let bunzipApi: BunzipApi | undefined;
function seekBzip(): BunzipApi {
  bunzipApi ??= createRequire(import.meta.url)("seek-bzip") as BunzipApi;
  return bunzipApi;
}

class EndOfInput extends Error {}
class TooLarge extends Error {}

export function bunzip2(bytes: Uint8Array, file: string): Uint8Array {
  // Our own streams: the input one knows where the decoder is and stops at the end instead of
  // reading `undefined`; the output one bounds the size.
  const input = {
    pos: 0,
    readByte(): number {
      if (this.pos >= bytes.length) throw new EndOfInput();
      return bytes[this.pos++];
    },
    read(buf: Uint8Array, at: number, n: number): number {
      if (this.pos >= bytes.length) return -1;
      const k = Math.min(n, bytes.length - this.pos);
      buf.set(bytes.subarray(this.pos, this.pos + k), at);
      this.pos += k;
      return k;
    },
    seek(p: number): void {
      this.pos = p;
    },
    eof(): boolean {
      return this.pos >= bytes.length;
    },
  };
  let out = new Uint8Array(Math.min(Math.max(bytes.length * 8, 1 << 16), MAX_UNPACKED_BYTES));
  let len = 0;
  const output = {
    writeByte(b: number): void {
      if (len === out.length) {
        if (out.length >= MAX_UNPACKED_BYTES) throw new TooLarge();
        const bigger = new Uint8Array(Math.min(out.length * 2, MAX_UNPACKED_BYTES));
        bigger.set(out);
        out = bigger;
      }
      out[len++] = b;
    },
    flush(): void {},
  };
  try {
    seekBzip().decode(input, output, true);
  } catch (e) {
    if (e instanceof EndOfInput)
      throw new InputError(
        `bzip2 data is truncated: the file ends at byte ${bytes.length} before the compressed stream does`,
        file,
      );
    if (e instanceof TooLarge)
      throw new InputError(`bzip2 data unpacks to more than ${MAX_UNPACKED_BYTES} bytes`, file);
    const why = e instanceof Error ? e.message : String(e);
    throw new InputError(
      `bzip2 data is corrupt (detected at byte ${Math.max(0, input.pos - 1)} of the compressed file: ${why})`,
      file,
    );
  }
  return out.slice(0, len);
}

function ascii(b: Uint8Array, off: number, len: number): string {
  let s = "";
  for (let i = off; i < off + len && i < b.length; i++) s += String.fromCharCode(b[i]);
  return s;
}

/** A NUL-terminated field, decoded as UTF-8. */
function field(b: Uint8Array, off: number, len: number): string {
  let end = off;
  while (end < off + len && b[end] !== 0) end++;
  return new TextDecoder().decode(b.subarray(off, end));
}

/** An octal number field (or GNU base-256 when the top bit is set); null when malformed. */
function numberField(b: Uint8Array, off: number, len: number): number | null {
  if (b[off] & 0x80) {
    // GNU base-256: big-endian two's complement in the remaining bits.
    let v = b[off] & 0x3f;
    if (b[off] & 0x40) return null; // negative
    for (let i = 1; i < len; i++) {
      v = v * 256 + b[off + i];
      if (v > Number.MAX_SAFE_INTEGER) return null;
    }
    return v;
  }
  const s = field(b, off, len).trim();
  if (s === "") return 0;
  if (!/^[0-7]+$/.test(s)) return null;
  return Number.parseInt(s, 8);
}

function headerChecksumOk(b: Uint8Array, off: number): boolean {
  const stored = numberField(b, off + 148, 8);
  if (stored === null) return false;
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < 512; i++) {
    const v = i >= 148 && i < 156 ? 0x20 : b[off + i];
    unsigned += v;
    signed += v > 127 ? v - 256 : v;
  }
  return stored === unsigned || stored === signed;
}

function isZeroBlock(b: Uint8Array, off: number): boolean {
  for (let i = off; i < off + 512; i++) if (b[i] !== 0) return false;
  return true;
}

/** pax extended header records: "<len> key=value\n". */
function paxRecords(data: Uint8Array, where: string): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  while (i < data.length) {
    let j = i;
    while (j < data.length && data[j] >= 0x30 && data[j] <= 0x39) j++;
    const len = Number(ascii(data, i, j - i));
    if (j === i || data[j] !== 0x20 || !Number.isFinite(len) || len <= j - i || i + len > data.length)
      throw new InputError('malformed pax extended header record; expected "<length> key=value\\n"', where);
    const rec = new TextDecoder().decode(data.subarray(j + 1, i + len - 1));
    const eq = rec.indexOf("=");
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    i += len;
  }
  return out;
}

/** Normalises an entry name; refuses `..` that would leave the archive root. */
function safePath(name: string, where: string): string {
  const out: string[] = [];
  for (const part of name.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (!out.length)
        throw new InputError(`entry "${name}" points outside the archive (".." above its root)`, where);
      out.pop();
    } else out.push(part);
  }
  return out.join("/");
}

/** Reads uncompressed tar data. */
export function readTar(tar: Uint8Array, file: string): TarEntry[] {
  const entries: TarEntry[] = [];
  let off = 0;
  let longName: string | null = null;
  let longLink: string | null = null;
  let pax: Map<string, string> | null = null;
  const at = (o: number) => `${file} (tar offset ${o})`;
  while (off + 512 <= tar.length) {
    if (isZeroBlock(tar, off)) {
      // End of archive (two zero blocks; one is accepted too, as GNU tar does).
      return entries;
    }
    if (!headerChecksumOk(tar, off))
      throw new InputError("bad tar header checksum; expected a ustar/GNU header block", at(off));
    const typeflag = String.fromCharCode(tar[off + 156] || 0x30);
    const size = pax?.has("size") ? Number(pax.get("size")) : numberField(tar, off + 124, 12);
    if (size === null || !Number.isSafeInteger(size) || size < 0)
      throw new InputError("bad size field in tar header; expected an octal number", at(off));
    const dataStart = off + 512;
    const dataEnd = dataStart + size;
    // Links, devices, FIFOs and folders carry no data whatever their size field says.
    const hasData = !"123456".includes(typeflag);
    if (hasData && dataEnd > tar.length)
      throw new InputError(
        `tar entry needs ${size} bytes of data but the archive ends ${tar.length - dataStart} bytes after its header — truncated`,
        at(off),
      );
    const data = hasData ? tar.subarray(dataStart, dataEnd) : new Uint8Array(0);
    const next = hasData ? dataStart + Math.ceil(size / 512) * 512 : dataStart;
    if (typeflag === "L") {
      longName = field(data, 0, data.length);
      off = next;
      continue;
    }
    if (typeflag === "K") {
      longLink = field(data, 0, data.length);
      off = next;
      continue;
    }
    if (typeflag === "x") {
      pax = paxRecords(data, at(off));
      off = next;
      continue;
    }
    if (typeflag === "g") {
      off = next;
      continue;
    }
    const magic = ascii(tar, off + 257, 6);
    let name = field(tar, off, 100);
    const prefix = magic === "ustar\0" ? field(tar, off + 345, 155) : "";
    if (prefix) name = `${prefix}/${name}`;
    name = pax?.get("path") ?? longName ?? name;
    const link = pax?.get("linkpath") ?? longLink ?? field(tar, off + 157, 100);
    longName = longLink = null;
    pax = null;
    const path = safePath(name, at(off));
    const base = { path, offset: off };
    if (typeflag === "0" || typeflag === "7") entries.push({ ...base, type: "file", data: data.slice() });
    else if (typeflag === "5") entries.push({ ...base, type: "dir" });
    else if (typeflag === "2") entries.push({ ...base, type: "symlink", linkTarget: link });
    else if (typeflag === "1") entries.push({ ...base, type: "hardlink", linkTarget: link });
    // character/block devices, FIFOs and other types carry nothing a sysfs import needs
    off = next;
  }
  if (off < tar.length)
    throw new InputError(
      `tar data ends inside a header block (${tar.length - off} of 512 bytes) — truncated`,
      at(off),
    );
  // Archives that simply stop after the last entry (no end blocks) are accepted, as GNU tar does.
  return entries;
}
