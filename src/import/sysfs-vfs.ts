/**
 * A read-only file system view for importers: a directory on disk or the entries of an
 * archive, behind one small interface. Paths are relative, `/`-separated and never leave the
 * root. Symbolic links are reported as links and only followed on request, with a hop limit,
 * because sysfs links form loops (`subsystem -> bus/pci -> devices -> …`).
 */
import { closeSync, type Dirent, lstatSync, openSync, readdirSync, readlinkSync, readSync } from "node:fs";
import { join } from "node:path";
import type { TarEntry } from "./tar.js";

export type VfsKind = "file" | "dir" | "symlink";

export interface ReadOnlyFs {
  /** The archive file or directory, for messages. */
  readonly label: string;
  /** What `path` is, without following a final link; null when absent. */
  kind(path: string): VfsKind | null;
  /**
   * A regular file's bytes (at most `limit`, the first ones, when given), in a buffer of their
   * own that the caller may keep and change; null when absent, not a file, or unreadable.
   */
  readFile(path: string, limit?: number): Uint8Array | null;
  /** A link's target as stored; null when `path` is not a link. */
  readlink(path: string): string | null;
  /** Names inside a directory (sorted); null when `path` is not a directory. */
  list(path: string): string[] | null;
  /** How to name `path` in a message: `archive:path` or an absolute path. */
  where(path: string): string;
  /** `path` as a directory, to read many of its entries by name. */
  folder(path: string): FolderView;
}

/** A directory's entries: their names, sorted (as `<` orders strings), and each one's kind. */
export interface Listing {
  readonly names: readonly string[];
  readonly kinds: readonly (VfsKind | null)[];
}

/** The kind of `name` in a listing, found by bisection of the sorted names; null when absent. */
function kindIn(listing: Listing, name: string): VfsKind | null {
  const { names } = listing;
  let lo = 0;
  let hi = names.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const n = names[mid];
    if (n === name) return listing.kinds[mid];
    if (n < name) lo = mid + 1;
    else hi = mid;
  }
  return null;
}

/**
 * One directory of a {@link ReadOnlyFs}. Each method answers as the file system's own does for
 * `${path}/${name}`, where `name` is an entry's name (not empty, `.`, `..`, no `/`); a view can
 * answer from the directory's listing, without a path to normalise and look up per call (a path
 * that is not a directory answers as its paths do: null, mostly).
 */
export interface FolderView {
  /** As given to {@link ReadOnlyFs.folder}. */
  readonly path: string;
  kind(name: string): VfsKind | null;
  readFile(name: string, limit?: number): Uint8Array | null;
  /** A file's text: its bytes as a {@link TextDecoder} (UTF-8) decodes them; null as for readFile. */
  readText(name: string): string | null;
  readlink(name: string): string | null;
  /** The entries and their kinds; null when not listable. */
  entries(): Listing | null;
  /** How messages name an entry (`where(path/name)`) or, without a name, the folder itself. */
  where(name?: string): string;
}

/** A folder answered by its file system's path methods (for folders with no listing at hand). */
class PathFolder implements FolderView {
  constructor(
    private readonly fs: ReadOnlyFs,
    readonly path: string,
  ) {}
  kind(name: string): VfsKind | null {
    return this.fs.kind(`${this.path}/${name}`);
  }
  readFile(name: string, limit?: number): Uint8Array | null {
    return this.fs.readFile(`${this.path}/${name}`, limit);
  }
  readText(name: string): string | null {
    const bytes = this.readFile(name);
    return bytes && utf8.decode(bytes);
  }
  readlink(name: string): string | null {
    return this.fs.readlink(`${this.path}/${name}`);
  }
  entries(): Listing | null {
    const names = this.fs.list(this.path);
    return names && { names, kinds: names.map((name) => this.kind(name)) };
  }
  where(name?: string): string {
    return this.fs.where(name === undefined ? this.path : `${this.path}/${name}`);
  }
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

/**
 * The smallest page size Linux runs with. A sysfs attribute read never returns less than this
 * (or than was asked for) unless the attribute ends there: a text attribute is printed whole
 * into one page, a binary one is read up to a page per call and only comes up short at its
 * end. A regular file only comes up short at its end. So a short read of an attribute ends it,
 * and the read that would return nothing is saved (one call per attribute, ~50,000 on a big
 * machine). Not so for procfs, whose seq_file reads may stop at any record: files read by path
 * ({@link DiskFs.readFile}) keep reading until a read returns nothing.
 */
const PAGE_SIZE = 4096;

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
  /** A folder's sorted listing, made when first asked for; dropped when its children change. */
  listing?: Listing;
}

/** A file node's bytes (the first `limit`), copied: the caller may change them. */
function copyOut(n: MemNode, limit?: number): Uint8Array {
  const data = n.data ?? new Uint8Array(0);
  // a copy: the next import of this tree must read the original
  return limit !== undefined && data.length > limit ? data.slice(0, limit) : data.slice();
}

/** A folder node's entries, sorted as `<` orders strings, with their kinds. */
function listingOf(n: MemNode): Listing {
  if (!n.listing) {
    const names = [...n.children!.keys()].sort();
    n.listing = { names, kinds: names.map((name) => n.children!.get(name)!.kind) };
  }
  return n.listing;
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
        node.listing = undefined;
      }
      node = child;
    }
    const name = parts[parts.length - 1];
    const existing = node.children!.get(name);
    if (kind === "dir" && existing?.kind === "dir") return;
    node.children!.set(name, kind === "dir" ? { kind: "dir", children: new Map() } : { kind, data, target });
    node.listing = undefined;
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
  readFile(path: string, limit?: number): Uint8Array | null {
    const n = this.node(path);
    return n?.kind === "file" ? copyOut(n, limit) : null;
  }
  readlink(path: string): string | null {
    const n = this.node(path);
    return n?.kind === "symlink" ? (n.target ?? "") : null;
  }
  list(path: string): string[] | null {
    const n = this.node(path);
    return n?.kind === "dir" ? [...listingOf(n).names] : null;
  }
  where(path: string): string {
    return `${this.label}:${path}`;
  }
  folder(path: string): FolderView {
    const n = this.node(path);
    return n?.kind === "dir" ? new MemFolder(this, path, n) : new PathFolder(this, path);
  }
}

/** A {@link MemFs} folder: its entries answer by name from its node, with no path to look up. */
class MemFolder implements FolderView {
  constructor(
    private readonly fs: MemFs,
    readonly path: string,
    private readonly node: MemNode,
  ) {}
  kind(name: string): VfsKind | null {
    return this.node.children!.get(name)?.kind ?? null;
  }
  readFile(name: string, limit?: number): Uint8Array | null {
    const n = this.node.children!.get(name);
    return n?.kind === "file" ? copyOut(n, limit) : null;
  }
  readText(name: string): string | null {
    const n = this.node.children!.get(name);
    return n?.kind === "file" ? utf8.decode(n.data ?? new Uint8Array(0)) : null;
  }
  readlink(name: string): string | null {
    const n = this.node.children!.get(name);
    return n?.kind === "symlink" ? (n.target ?? "") : null;
  }
  entries(): Listing {
    return listingOf(this.node);
  }
  where(name?: string): string {
    return this.fs.where(name === undefined ? this.path : `${this.path}/${name}`);
  }
}

/** A decode without `stream` keeps no state between calls: one decoder serves every file. */
const utf8 = new TextDecoder();

/**
 * Reads an open file from its start until its end or `limit` bytes, into {@link READ_BUF} (grown
 * for a bigger file), and returns a view of the bytes, valid until the next read: copied or
 * decoded at once. No stat: sysfs attributes report a size of 4096 whatever they hold, so the
 * reads go on until one returns nothing or, for an attribute (`shortReadEnds`), until one comes
 * up short (see {@link PAGE_SIZE}).
 */
function readUpTo(fd: number, limit: number, shortReadEnds: boolean): Uint8Array {
  let buf = READ_BUF;
  let total = 0;
  while (total < limit) {
    if (total === buf.length) {
      const bigger = new Uint8Array(buf.length * 2);
      bigger.set(buf);
      buf = bigger;
    }
    const want = Math.min(buf.length, limit) - total;
    const n = readSync(fd, buf, total, want, null);
    if (n === 0) break;
    total += n;
    if (shortReadEnds && n < want && n < PAGE_SIZE) break;
  }
  return buf.subarray(0, total);
}

/**
 * A directory on disk (a copy of /sys, or / itself for the live system). Read as a snapshot:
 * a folder's listing (names and kinds, one `readdir`) is kept, and the kind of anything in a
 * listed folder comes from it, so a walk costs one call per folder instead of one per entry.
 */
export class DiskFs implements ReadOnlyFs {
  private readonly listings = new Map<string, Listing>();
  /** `join(label, x)` without `x`: what a normal relative path is appended to. */
  private readonly prefix: string;

  constructor(readonly label: string) {
    this.prefix = join(label, "x").slice(0, -1);
  }

  /** The absolute path of a normalised relative one. */
  private absOf(norm: string): string {
    return norm === "" ? join(this.label, norm) : this.prefix + norm;
  }
  /** A normalised path's kind from its folder's listing; undefined when that was not read. */
  private listedKind(norm: string): VfsKind | null | undefined {
    if (norm === "") return undefined;
    const slash = norm.lastIndexOf("/");
    const parent = this.listings.get(slash < 0 ? "" : norm.slice(0, slash));
    return parent === undefined ? undefined : kindIn(parent, norm.slice(slash + 1));
  }
  kind(path: string): VfsKind | null {
    const norm = normalizePath(path);
    return norm === null ? null : this.kindOf(norm);
  }
  private kindOf(norm: string): VfsKind | null {
    const listed = this.listedKind(norm);
    if (listed !== undefined) return listed;
    try {
      const st = lstatSync(this.absOf(norm));
      return st.isSymbolicLink() ? "symlink" : st.isDirectory() ? "dir" : st.isFile() ? "file" : null;
    } catch {
      return null;
    }
  }
  readFile(path: string, limit = Number.POSITIVE_INFINITY): Uint8Array | null {
    const norm = normalizePath(path);
    if (norm === null || this.kindOf(norm) !== "file") return null;
    return readAbsolute(this.absOf(norm), limit, false)?.slice() ?? null;
  }
  readlink(path: string): string | null {
    const norm = normalizePath(path);
    if (norm === null) return null;
    const listed = this.listedKind(norm);
    // known from a listing not to be a link: no call needed
    if (listed !== undefined && listed !== "symlink") return null;
    return readlinkAbsolute(this.absOf(norm));
  }
  /** A folder's listing, read once; null when `norm` is not a readable folder. */
  private listing(norm: string): Listing | null {
    const cached = this.listings.get(norm);
    if (cached) return cached;
    if (this.kindOf(norm) !== "dir") return null;
    let entries: Dirent[];
    try {
      entries = readdirSync(this.absOf(norm), { withFileTypes: true });
    } catch {
      return null;
    }
    // readdir's names come in byte order, which `<` agrees with for ASCII names: sort only if not
    if (!entries.every((e, i) => i === 0 || entries[i - 1].name < e.name))
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const names: string[] = new Array(entries.length);
    const kinds: (VfsKind | null)[] = new Array(entries.length);
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      names[i] = e.name;
      kinds[i] = e.isSymbolicLink() ? "symlink" : e.isDirectory() ? "dir" : e.isFile() ? "file" : null;
    }
    const listing = { names, kinds };
    this.listings.set(norm, listing);
    return listing;
  }
  list(path: string): string[] | null {
    const norm = normalizePath(path);
    const listing = norm === null ? null : this.listing(norm);
    return listing ? [...listing.names] : null;
  }
  where(path: string): string {
    const norm = normalizePath(path);
    return norm === null ? path : this.absOf(norm);
  }
  folder(path: string): FolderView {
    const norm = normalizePath(path);
    const listing = norm === null ? null : this.listing(norm);
    if (norm !== null && listing)
      return new ListedFolder(
        path,
        this.absOf(norm),
        norm === "" ? this.prefix : `${this.prefix}${norm}/`,
        listing,
      );
    // not a listable folder (a link to one, no read permission, …): answered path by path
    return new PathFolder(this, path);
  }
}

/**
 * A {@link DiskFs} folder whose listing was read: kinds come from it, files from `${abs}${name}`,
 * read as sysfs attributes (a short read ends them, see {@link PAGE_SIZE}).
 */
class ListedFolder implements FolderView {
  constructor(
    readonly path: string,
    /** The folder's absolute path. */
    private readonly self: string,
    /** What an entry's name is appended to: the absolute path with a trailing `/`. */
    private readonly abs: string,
    private readonly listing: Listing,
  ) {}
  kind(name: string): VfsKind | null {
    return kindIn(this.listing, name);
  }
  readFile(name: string, limit = Number.POSITIVE_INFINITY): Uint8Array | null {
    if (kindIn(this.listing, name) !== "file") return null;
    return readAbsolute(this.abs + name, limit, true)?.slice() ?? null;
  }
  readText(name: string): string | null {
    if (kindIn(this.listing, name) !== "file") return null;
    // decoded from the shared buffer: no copy of the bytes (most attributes are a few bytes)
    const bytes = readAbsolute(this.abs + name, Number.POSITIVE_INFINITY, true);
    return bytes && utf8.decode(bytes);
  }
  readlink(name: string): string | null {
    return kindIn(this.listing, name) === "symlink" ? readlinkAbsolute(this.abs + name) : null;
  }
  entries(): Listing {
    return this.listing;
  }
  where(name?: string): string {
    return name === undefined ? this.self : this.abs + name;
  }
}

/**
 * A file's bytes (at most `limit`) as a view of the shared read buffer, valid until the next
 * read; null when it cannot be opened or read.
 */
function readAbsolute(path: string, limit: number, shortReadEnds: boolean): Uint8Array | null {
  let fd = -1;
  try {
    fd = openSync(path, "r");
    return readUpTo(fd, limit, shortReadEnds);
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

function readlinkAbsolute(path: string): string | null {
  try {
    return readlinkSync(path);
  } catch {
    return null;
  }
}
