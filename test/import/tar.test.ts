/**
 * The tar reader: ustar prefixes, GNU long names and link names, pax paths, symbolic and hard
 * links, names that try to leave the root, and truncated or corrupt archives (plain, gzip,
 * bzip2) — each failure an InputError naming the file and the offset.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { InputError } from "../../src/core/errors.js";
import { MemFs, resolvePath } from "../../src/import/sysfs-vfs.js";
import { compressionOf, readArchive, readTar } from "../../src/import/tar.js";

const REAL = fileURLToPath(new URL("../../../shared/fixtures/real/", import.meta.url));
const enc = new TextEncoder();

interface Spec {
  name: string;
  type?: string;
  data?: string;
  link?: string;
  prefix?: string;
  gnu?: boolean;
}

/** A minimal tar writer for tests (ustar, or GNU magic when asked). */
function header(s: Spec, size: number): Uint8Array {
  const h = new Uint8Array(512);
  const put = (off: number, str: string) => h.set(enc.encode(str).subarray(0, str.length), off);
  put(0, s.name.slice(0, 100));
  put(100, "0000644\0");
  put(108, "0000000\0");
  put(116, "0000000\0");
  put(124, `${size.toString(8).padStart(11, "0")}\0`);
  put(136, "00000000000\0");
  put(156, s.type ?? "0");
  if (s.link) put(157, s.link.slice(0, 100));
  if (s.gnu) put(257, "ustar  \0");
  else {
    put(257, "ustar\0");
    put(263, "00");
  }
  if (s.prefix) put(345, s.prefix);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  put(148, `${sum.toString(8).padStart(6, "0")}\0 `);
  return h;
}

function tar(specs: Spec[], end = true): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const s of specs) {
    const data = enc.encode(s.data ?? "");
    parts.push(header(s, data.length));
    const padded = new Uint8Array(Math.ceil(data.length / 512) * 512);
    padded.set(data);
    parts.push(padded);
  }
  if (end) parts.push(new Uint8Array(1024));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const longName = `sys/devices/${"pci0000:00/0000:00:01.0/".repeat(6)}config`;

test("tar: ustar prefix, GNU long names and link names, pax path, folders, symlinks and hard links", () => {
  const t = tar([
    { name: "./sys/", type: "5" },
    { name: "config", prefix: "sys/devices/pci0000:00/0000:00:00.0", data: "abc" },
    { name: "././@LongLink", type: "L", data: `${longName}\0`, gnu: true },
    { name: longName.slice(0, 100), data: "long", gnu: true },
    {
      name: "././@LongLink",
      type: "K",
      data: "../../../bus/pci/drivers/a-very-long-driver-name".padEnd(120, "x"),
      gnu: true,
    },
    { name: "sys/devices/pci0000:00/0000:00:00.0/driver", type: "2", link: "short", gnu: true },
    { name: "PaxHeader", type: "x", data: "31 path=sys/pax/named/file.txt\n" },
    { name: "ignored-name", data: "pax" },
    { name: "sys/hard", type: "1", link: "sys/pax/named/file.txt" },
    { name: "/sys/abs", data: "leading slash dropped" },
  ]);
  const entries = readTar(t, "t.tar");
  const byPath = new Map(entries.map((e) => [e.path, e]));
  assert.equal(
    new TextDecoder().decode(byPath.get("sys/devices/pci0000:00/0000:00:00.0/config")!.data),
    "abc",
  );
  assert.equal(new TextDecoder().decode(byPath.get(longName)!.data), "long");
  assert.match(
    byPath.get("sys/devices/pci0000:00/0000:00:00.0/driver")!.linkTarget!,
    /^\.\.\/\.\.\/\.\.\/bus\/pci\/drivers\/a-very-long-driver-name/,
  );
  assert.equal(new TextDecoder().decode(byPath.get("sys/pax/named/file.txt")!.data), "pax");
  assert.equal(byPath.get("sys/hard")!.type, "hardlink");
  assert.ok(byPath.has("sys/abs"));
  assert.equal(byPath.get("sys")!.type, "dir");
  const fs = MemFs.fromTar(entries, "t.tar");
  assert.equal(
    new TextDecoder().decode(fs.readFile("sys/hard")!),
    "pax",
    "a hard link shares its target's bytes",
  );
  assert.equal(fs.kind("sys/devices/pci0000:00/0000:00:00.0/driver"), "symlink");
  assert.deepEqual(fs.list("sys/devices/pci0000:00"), ["0000:00:00.0", "0000:00:01.0"]);
});

test("tar: a name that climbs above the archive root is refused with its offset", () => {
  const t = tar([
    { name: "sys/ok", data: "x" },
    { name: "sys/../../etc/passwd", data: "x" },
  ]);
  assert.throws(
    () => readTar(t, "evil.tar"),
    (e: unknown) =>
      e instanceof InputError &&
      /^evil\.tar \(tar offset 1024\): entry "sys\/\.\.\/\.\.\/etc\/passwd" points outside the archive/.test(
        e.message,
      ),
  );
});

test("tar: symlinks stay links; resolving them stops at loops and at the root", () => {
  const fs = MemFs.fromTar(
    readTar(
      tar([
        { name: "sys/a", type: "2", link: "b" },
        { name: "sys/b", type: "2", link: "a" },
        { name: "sys/up", type: "2", link: "../../../outside" },
        { name: "sys/dir/file", data: "1" },
        { name: "sys/to-dir", type: "2", link: "dir" },
      ]),
      "l.tar",
    ),
    "l.tar",
  );
  assert.equal(resolvePath(fs, "sys/a"), null, "a loop ends after 40 links");
  assert.equal(resolvePath(fs, "sys/up"), null, "a link may not leave the root");
  assert.equal(resolvePath(fs, "sys/to-dir/file"), "sys/dir/file");
  assert.equal(fs.readFile("sys/to-dir"), null, "readFile does not follow links");
});

test("tar: truncated and corrupt tar data name the offset", () => {
  const t = tar([
    { name: "sys/f", data: "x".repeat(2000) },
    { name: "sys/g", data: "y" },
  ]);
  assert.throws(
    () => readTar(t.subarray(0, 1000), "cut.tar"),
    (e: unknown) =>
      e instanceof InputError &&
      /^cut\.tar \(tar offset 0\): tar entry needs 2000 bytes of data but the archive ends 488 bytes after its header — truncated/.test(
        e.message,
      ),
  );
  assert.throws(
    () => readTar(t.subarray(0, 2560 + 100), "cut.tar"),
    (e: unknown) =>
      e instanceof InputError &&
      /^cut\.tar \(tar offset 2560\): tar data ends inside a header block/.test(e.message),
  );
  const bad = t.slice();
  bad[2560 + 10] ^= 0x41;
  assert.throws(
    () => readTar(bad, "bad.tar"),
    (e: unknown) =>
      e instanceof InputError && /^bad\.tar \(tar offset 2560\): bad tar header checksum/.test(e.message),
  );
  // An archive that stops after its last entry, without end blocks, is accepted (as GNU tar does).
  assert.equal(readTar(tar([{ name: "sys/f", data: "x" }], false), "noend.tar").length, 1);
});

test("tar: gzip archives (truncated or corrupt) give the byte offset in the compressed file", () => {
  const t = tar([{ name: "sys/f", data: "hello ".repeat(500) }]);
  const gz = gzipSync(t);
  assert.equal(compressionOf(gz), "gzip");
  assert.equal(readArchive(gz, "a.tar.gz").length, 1);
  assert.throws(
    () => readArchive(gz.subarray(0, gz.length - 6), "a.tar.gz"),
    (e: unknown) =>
      e instanceof InputError &&
      /^a\.tar\.gz: gzip data is truncated: the file ends at byte \d+/.test(e.message),
  );
  const bad = new Uint8Array(gz);
  bad[gz.length - 6] ^= 0xff; // CRC32 of the trailer
  assert.throws(
    () => readArchive(bad, "a.tar.gz"),
    (e: unknown) =>
      e instanceof InputError &&
      /^a\.tar\.gz: gzip data is corrupt \(detected at byte \d+ of the compressed file: incorrect data check\)/.test(
        e.message,
      ),
  );
});

test("tar: bzip2 archives (hwloc's dumps) decode; truncated or corrupt ones give the offset", () => {
  const file = `${REAL}hwloc/kvm-vm-pcidomain32bits/2pa-pcidomain32bits.tar.bz2`;
  const bz = new Uint8Array(readFileSync(file));
  assert.equal(compressionOf(bz), "bzip2");
  assert.equal(readArchive(bz, file).length, 2316);
  assert.throws(
    () => readArchive(bz.subarray(0, 5000), "k.tar.bz2"),
    (e: unknown) =>
      e instanceof InputError &&
      /^k\.tar\.bz2: bzip2 data is truncated: the file ends at byte 5000/.test(e.message),
  );
  const bad = bz.slice();
  bad[3000] ^= 0x10;
  assert.throws(
    () => readArchive(bad, "k.tar.bz2"),
    (e: unknown) =>
      e instanceof InputError &&
      /^k\.tar\.bz2: bzip2 data is corrupt \(detected at byte \d+ of the compressed file/.test(e.message),
  );
  assert.throws(
    () => readArchive(enc.encode("BZh9 not really"), "k.tar.bz2"),
    (e: unknown) => e instanceof InputError && /^k\.tar\.bz2: bzip2 data/.test(e.message),
  );
});
