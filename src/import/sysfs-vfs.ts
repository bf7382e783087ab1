/**
 * A read-only file system view for importers: a directory on disk or the entries of an
 * archive, behind one small interface. Paths are relative, `/`-separated and never leave the
 * root. Symbolic links are reported as links and only followed on request, with a hop limit,
 * because sysfs links form loops (`subsystem -> bus/pci -> devices -> …`).
 */
import { lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
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

/** A directory on disk (a copy of /sys, or / itself for the live system). */
export class DiskFs implements ReadOnlyFs {
  constructor(readonly label: string) {}

  private abs(path: string): string | null {
    const norm = normalizePath(path);
    return norm === null ? null : join(this.label, norm);
  }
  kind(path: string): VfsKind | null {
    const p = this.abs(path);
    if (p === null) return null;
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
    try {
      // sysfs attributes report a size of 4096 whatever they hold; read what is there.
      return new Uint8Array(readFileSync(p));
    } catch {
      return null;
    }
  }
  readlink(path: string): string | null {
    const p = this.abs(path);
    if (p === null) return null;
    try {
      return readlinkSync(p);
    } catch {
      return null;
    }
  }
  list(path: string): string[] | null {
    const p = this.abs(path);
    if (p === null || this.kind(path) !== "dir") return null;
    try {
      return readdirSync(p).sort();
    } catch {
      return null;
    }
  }
  where(path: string): string {
    return this.abs(path) ?? path;
  }
}
