/**
 * A read-only file system view for importers: a directory on disk or the entries of an
 * archive, behind one small interface. Paths are relative, `/`-separated and never leave the
 * root. Symbolic links are reported as links and only followed on request, with a hop limit,
 * because sysfs links form loops (`subsystem -> bus/pci -> devices -> …`).
 */
import { closeSync, lstatSync, openSync, readdirSync, readlinkSync, readSync } from "node:fs";
import { join } from "node:path";
import type { TarEntry } from "./tar.js";

export type VfsKind = "file" | "dir" | "symlink";

export interface ReadOnlyFs {
  /** The archive file or directory, for messages. */
  readonly label: string;
  /** What `path` is, without following a final link; null when absent. */
  kind(path: string): VfsKind | null;
  /** A regular file's bytes; null when absent, not a file, or unreadable. */
  readFile(path: string): Uint8Array | null;
  /** A link's target as stored; null when `path` is not a link. */
  readlink(path: string): string | null;
  /** Names inside a directory (sorted); null when `path` is not a directory. */
  list(path: string): string[] | null;
  /** How to name `path` in a message: `archive:path` or an absolute path. */
  where(path: string): string;
}

/**
 * Normalises a relative path: drops empty and `.` parts, applies `..`. Returns null when the
 * path would climb above the root.
 */
export function normalizePath(path: string): string | null {
  if (isNormal(path)) return path;
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (!out.length) return null;
      out.pop();
    } else out.push(part);
  }
  return out.join("/");
}

/** Already normal: no empty, `.` or `..` part (the common case, checked without splitting). */
function isNormal(path: string): boolean {
  let partStart = 0;
  for (let i = 0; i <= path.length; i++) {
    if (i < path.length && path.charCodeAt(i) !== 0x2f) continue;
    const len = i - partStart;
    if (len === 0 && path.length > 0) return false;
    if (len === 1 && path.charCodeAt(partStart) === 0x2e) return false;
    if (len === 2 && path.charCodeAt(partStart) === 0x2e && path.charCodeAt(partStart + 1) === 0x2e)
      return false;
    partStart = i + 1;
  }
  return true;
}

export function dirnameOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "" : path.slice(0, i);
}

export function basenameOf(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

export function joinPath(...parts: string[]): string {
  return parts.filter((p) => p !== "").join("/");
}

/** Where a link at `linkPath` with `target` points, as a root-relative path (null if outside). */
export function linkDestination(linkPath: string, target: string): string | null {
  if (target.startsWith("/")) return normalizePath(target.slice(1));
  return normalizePath(joinPath(dirnameOf(linkPath), target));
}

/** One buffer for every file {@link DiskFs} reads (copied out per read). */
const READ_BUF = new Uint8Array(64 * 1024);

/** Linux's limit on links followed while resolving one path. */
const MAX_LINK_HOPS = 40;

/**
 * Resolves every link along `path` (like realpath). Null when a part is missing, a link
 * leaves the root, or more than 40 links are followed (a loop).
 */
export function resolvePath(fs: ReadOnlyFs, path: string): string | null {
  const start = normalizePath(path);
  if (start === null) return null;
  let pending = start ? start.split("/") : [];
  let done = "";
  let hops = 0;
  while (pending.length) {
    const part = pending.shift()!;
    const next = joinPath(done, part);
    const k = fs.kind(next);
    if (k === null) return null;
    if (k === "symlink") {
      if (++hops > MAX_LINK_HOPS) return null;
      const target = fs.readlink(next);
      if (target === null) return null;
      const dest = linkDestination(next, target);
      if (dest === null) return null;
      pending = [...(dest ? dest.split("/") : []), ...pending];
      done = "";
      continue;
    }
    done = next;
  }
  return done;
}

interface MemNode {
  kind: VfsKind;
  data?: Uint8Array;
  target?: string;
  children?: Map<string, MemNode>;
}

/** An in-memory tree built from archive entries. */
export class MemFs implements ReadOnlyFs {
  private readonly root: MemNode = { kind: "dir", children: new Map() };

  constructor(readonly label: string) {}

  static fromTar(entries: TarEntry[], label: string): MemFs {
    const fs = new MemFs(label);
    const byPath = new Map<string, TarEntry>();
    for (const e of entries) {
      if (e.type === "hardlink") {
        // A hard link names an earlier entry; it shares that entry's bytes.
        const t = e.linkTarget !== undefined ? normalizePath(e.linkTarget) : null;
        const src = t !== null ? byPath.get(t) : undefined;
        if (src?.type === "file") fs.add(e.path, "file", src.data);
        continue;
      }
      byPath.set(e.path, e);
      if (e.type === "file") fs.add(e.path, "file", e.data);
      else if (e.type === "dir") fs.add(e.path, "dir");
      else if (e.type === "symlink") fs.add(e.path, "symlink", undefined, e.linkTarget);
    }
    return fs;
  }

  /** Adds (or replaces) an entry; parent folders are created as needed. */
  add(path: string, kind: VfsKind, data?: Uint8Array, target?: string): void {
    const norm = normalizePath(path);
    if (!norm) return;
    const parts = norm.split("/");
    let node = this.root;
    for (let i = 0; i < parts.length - 1; i++) {
      let child = node.children!.get(parts[i]);
      if (child?.kind !== "dir") {
        child = { kind: "dir", children: new Map() };
        node.children!.set(parts[i], child);
      }
      node = child;
    }
    const name = parts[parts.length - 1];
    const existing = node.children!.get(name);
    if (kind === "dir") {
      if (existing?.kind !== "dir") node.children!.set(name, { kind: "dir", children: new Map() });
      return;
    }
    node.children!.set(name, { kind, data, target });
  }

  private node(path: string): MemNode | null {
    const norm = normalizePath(path);
    if (norm === null) return null;
    let node: MemNode | undefined = this.root;
    if (!norm) return node;
    for (const part of norm.split("/")) {
      if (node?.kind !== "dir") return null;
      node = node.children!.get(part);
      if (!node) return null;
    }
    return node;
  }

  kind(path: string): VfsKind | null {
    return this.node(path)?.kind ?? null;
  }
  readFile(path: string): Uint8Array | null {
    const n = this.node(path);
    return n?.kind === "file" ? (n.data ?? new Uint8Array(0)) : null;
  }
  readlink(path: string): string | null {
    const n = this.node(path);
    return n?.kind === "symlink" ? (n.target ?? "") : null;
  }
  list(path: string): string[] | null {
    const n = this.node(path);
    return n?.kind === "dir" ? [...n.children!.keys()].sort() : null;
  }
  where(path: string): string {
    return `${this.label}:${path}`;
  }
}

/**
 * A directory on disk (a copy of /sys, or / itself for the live system). Read as a snapshot:
 * a folder's listing (names and kinds, one `readdir`) is kept, and the kind of anything in a
 * listed folder comes from it, so a walk costs one call per folder instead of one per entry.
 */
export class DiskFs implements ReadOnlyFs {
  private readonly listings = new Map<string, Map<string, VfsKind | null>>();
  /** `join(label, x)` without `x`: what a normal relative path is appended to. */
  private readonly prefix: string;

  constructor(readonly label: string) {
    this.prefix = join(label, "x").slice(0, -1);
  }

  private abs(path: string): string | null {
    const norm = normalizePath(path);
    return norm === null ? null : norm === "" ? join(this.label, norm) : this.prefix + norm;
  }
  kind(path: string): VfsKind | null {
    const norm = normalizePath(path);
    if (norm === null) return null;
    if (norm !== "") {
      const parent = this.listings.get(dirnameOf(norm));
      if (parent) return parent.get(basenameOf(norm)) ?? null;
    }
    const p = norm === "" ? join(this.label, norm) : this.prefix + norm;
    try {
      const st = lstatSync(p);
      return st.isSymbolicLink() ? "symlink" : st.isDirectory() ? "dir" : st.isFile() ? "file" : null;
    } catch {
      return null;
    }
  }
  readFile(path: string): Uint8Array | null {
    const p = this.abs(path);
    if (p === null || this.kind(path) !== "file") return null;
    let fd = -1;
    try {
      // sysfs attributes report a size of 4096 whatever they hold; read what is there, in
      // chunks until the end (no stat: one open, the reads, one close)
      fd = openSync(p, "r");
      const parts: Uint8Array[] = [];
      let total = 0;
      for (;;) {
        const n = readSync(fd, READ_BUF, 0, READ_BUF.length, null);
        if (n === 0) break;
        parts.push(READ_BUF.slice(0, n));
        total += n;
      }
      if (parts.length === 1) return parts[0];
      const out = new Uint8Array(total);
      let at = 0;
      for (const part of parts) {
        out.set(part, at);
        at += part.length;
      }
      return out;
    } catch {
      return null;
    } finally {
      if (fd >= 0)
        try {
          closeSync(fd);
        } catch {
          // nothing to do: the bytes are read
        }
    }
  }
  readlink(path: string): string | null {
    const p = this.abs(path);
    if (p === null) return null;
    const norm = normalizePath(path);
    // known from a listing not to be a link: no call needed
    if (norm && this.listings.has(dirnameOf(norm)) && this.kind(norm) !== "symlink") return null;
    try {
      return readlinkSync(p);
    } catch {
      return null;
    }
  }
  list(path: string): string[] | null {
    const norm = normalizePath(path);
    if (norm === null) return null;
    const cached = this.listings.get(norm);
    if (cached) return [...cached.keys()];
    if (this.kind(norm) !== "dir") return null;
    try {
      const entries = readdirSync(join(this.label, norm), { withFileTypes: true });
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      const kinds = new Map<string, VfsKind | null>();
      for (const e of entries)
        kinds.set(
          e.name,
          e.isSymbolicLink() ? "symlink" : e.isDirectory() ? "dir" : e.isFile() ? "file" : null,
        );
      this.listings.set(norm, kinds);
      return [...kinds.keys()];
    } catch {
      return null;
    }
  }
  where(path: string): string {
    return this.abs(path) ?? path;
  }
}
