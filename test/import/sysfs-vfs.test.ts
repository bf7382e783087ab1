/**
 * The importers' read-only file systems: a folder view must answer exactly as its file system
 * answers for the same paths, whatever the tree and whenever it was asked (listings are kept,
 * so entries added after a listing was made must show in the next one).
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import fc from "fast-check";
import { DiskFs, MemFs, type ReadOnlyFs } from "../../src/import/sysfs-vfs.js";

type Op =
  | { kind: "file"; path: string; data: Uint8Array }
  | { kind: "dir"; path: string }
  | { kind: "symlink"; path: string; target: string };

const NAMES = ["a", "b", "config", "0000:00:01.0", "virtfn0", "Z"];
const pathArb = fc.array(fc.constantFrom(...NAMES), { minLength: 1, maxLength: 3 }).map((p) => p.join("/"));
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant("file" as const), path: pathArb, data: fc.uint8Array({ maxLength: 40 }) }),
  fc.record({ kind: fc.constant("dir" as const), path: pathArb }),
  fc.record({
    kind: fc.constant("symlink" as const),
    path: pathArb,
    target: fc.constantFrom("../a", "b", "/x"),
  }),
);

/** Every answer a folder view gives for every name, beside the answers its file system gives by path. */
function answers(fs: ReadOnlyFs, folder: string) {
  const view = fs.folder(folder);
  const names = [...NAMES, ...(view.entries()?.names ?? [])];
  const byView = names.map((n) => [
    n,
    view.kind(n),
    view.readFile(n),
    view.readFile(n, 3),
    view.readText(n),
    view.readlink(n),
    view.where(n),
  ]);
  const byPath = names.map((n) => {
    const p = `${folder}/${n}`;
    const bytes = fs.readFile(p);
    return [
      n,
      fs.kind(p),
      bytes,
      fs.readFile(p, 3),
      bytes && new TextDecoder().decode(bytes),
      fs.readlink(p),
      fs.where(p),
    ];
  });
  const listing = view.entries();
  return { byView, byPath, listed: listing && [...listing.names], listedByPath: fs.list(folder) };
}

test("sysfs vfs: a MemFs folder view answers as its paths do, before and after entries are added", () => {
  const build = (ops: Op[], fs = new MemFs("t.tar")) => {
    for (const op of ops)
      if (op.kind === "file") fs.add(op.path, "file", op.data);
      else if (op.kind === "dir") fs.add(op.path, "dir");
      else fs.add(op.path, "symlink", undefined, op.target);
    return fs;
  };
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 25 }), fc.array(opArb, { maxLength: 10 }), (first, later) => {
      const fs = build(first);
      const folders = ["a", "b", "a/b", "config", "0000:00:01.0"];
      for (const f of folders) fs.folder(f).entries(); // listings made, then the tree changes
      build(later, fs);
      // the same tree built in one go, never listed before: what every answer must be
      const fresh = build([...first, ...later]);
      for (const f of folders) {
        const got = answers(fs, f);
        assert.deepEqual(got.byView, got.byPath, f);
        assert.deepEqual(got, answers(fresh, f), f);
      }
    }),
    { numRuns: 300 },
  );
});

test("sysfs vfs: readFile hands out bytes of their own (changing them changes nothing stored)", () => {
  const fs = new MemFs("t.tar");
  fs.add("d/config", "file", Uint8Array.of(1, 2, 3, 4));
  for (const read of [() => fs.readFile("d/config")!, () => fs.folder("d").readFile("config")!]) {
    read().fill(9);
    assert.deepEqual(read(), Uint8Array.of(1, 2, 3, 4));
  }
  const dir = mkdtempSync(join(tmpdir(), "peerdma-vfs-"));
  try {
    mkdirSync(join(dir, "d"));
    writeFileSync(join(dir, "d/config"), Uint8Array.of(1, 2, 3, 4));
    symlinkSync("config", join(dir, "d/link"));
    const disk = new DiskFs(dir);
    const first = disk.folder("d").readFile("config")!;
    const second = disk.folder("d").readFile("config")!;
    first.fill(9);
    assert.deepEqual(second, Uint8Array.of(1, 2, 3, 4));
    assert.equal(disk.folder("d").readlink("link"), "config");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
