/** User memory as ioctl handlers read it: `copy_from_user` bounds and the struct reader. */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { KernelError } from "../../src/core/errors.js";
import { FdTable, KFile, UserBuffer } from "../../src/core/file.js";

test("copy_from_user: a struct not wholly readable is -EFAULT, naming the struct; a null pointer too", () => {
  const u = new UserBuffer(new Uint8Array(16));
  assert.throws(
    () => u.copyFromUser(8, 16, "struct x"),
    (e: unknown) => e instanceof KernelError && e.errnoName === "EFAULT" && /struct x/.test(e.message),
  );
  assert.throws(() => u.copyFromUser(-1, 4, "struct x"), KernelError);
  assert.throws(() => new UserBuffer(null).copyFromUser(0, 0, "struct x"), KernelError);
  assert.equal(u.copyFromUser(16, 0, "empty tail").byteLength, 0);
});

test("property: a struct read from user memory gives what a DataView of the same bytes gives, and a read past it is a RangeError", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 1, maxLength: 64 }),
      fc.nat(),
      fc.nat(),
      fc.nat(),
      fc.boolean(),
      (bytes, a, b, c, le) => {
        const offset = a % bytes.length;
        const len = b % (bytes.length - offset + 1);
        const s = new UserBuffer(bytes).copyFromUser(offset, len, "struct under test");
        const v = new DataView(bytes.buffer, bytes.byteOffset + offset, len);
        assert.equal(s.byteLength, v.byteLength);
        const at = len ? c % len : 0;
        const reads: [string, number, () => unknown, () => unknown][] = [
          ["getUint8", 1, () => s.getUint8(at), () => v.getUint8(at)],
          ["getUint16", 2, () => s.getUint16(at, le), () => v.getUint16(at, le)],
          ["getUint32", 4, () => s.getUint32(at, le), () => v.getUint32(at, le)],
          ["getInt32", 4, () => s.getInt32(at, le), () => v.getInt32(at, le)],
          ["getBigUint64", 8, () => s.getBigUint64(at, le), () => v.getBigUint64(at, le)],
        ];
        for (const [name, size, ours, dataView] of reads) {
          if (at + size <= len) assert.equal(ours(), dataView(), `${name} at ${at}`);
          else assert.throws(ours, RangeError, `${name} at ${at} of a ${len}-byte struct`);
        }
      },
    ),
  );
});

test("a struct copied from a buffer whose bytes the caller replaced reads the new bytes", () => {
  const u = new UserBuffer(Uint8Array.of(1, 0, 0, 0));
  assert.equal(u.copyFromUser(0, 4, "x").getUint32(0, true), 1);
  u.bytes = Uint8Array.of(2, 0, 0, 0);
  assert.equal(u.copyFromUser(0, 4, "x").getUint32(0, true), 2);
  assert.deepEqual([...u.copyBytesFromUser(1, 2, "x")], [0, 0]);
});

test("the descriptor table hands out the lowest free number, after any mix of closes, and -EMFILE when full", () => {
  const fds = new FdTable(4);
  const file = () => new KFile("test", {}, 0, null);
  assert.deepEqual([fds.install(file()), fds.install(file()), fds.install(file())], [0, 1, 2]);
  fds.close(1);
  assert.equal(fds.install(file()), 1);
  fds.close(2);
  fds.close(0);
  assert.deepEqual([fds.install(file()), fds.install(file()), fds.install(file())], [0, 2, 3]);
  assert.throws(
    () => fds.install(file()),
    (e: unknown) => e instanceof KernelError && e.errnoName === "EMFILE",
  );
  fds.close(3);
  assert.equal(fds.install(file()), 3);
});

test("a number that is not an open descriptor (negative, fractional, NaN, past the table) is -EBADF for fget and close", () => {
  const fds = new FdTable(4);
  fds.install(new KFile("test", {}, 0, null));
  for (const fd of [-1, 0.5, Number.NaN, 3, 1e9]) {
    assert.throws(
      () => fds.fget(fd),
      (e: unknown) => e instanceof KernelError && e.errnoName === "EBADF",
    );
    assert.throws(
      () => fds.close(fd),
      (e: unknown) => e instanceof KernelError && e.errnoName === "EBADF",
    );
    assert.equal(fds.cloexec(fd), false);
  }
  assert.equal(fds.size, 1);
  assert.deepEqual(
    fds.entries().map(([fd]) => fd),
    [0],
  );
});

test("ioctl on a descriptor: -EBADF when not open, -ENOTTY for a file without ioctls, else the file answers; the reference taken is always dropped", () => {
  const fds = new FdTable(8);
  const plain = new KFile("eventfd", {}, 0, null);
  const dev = new KFile(
    "test-device",
    {
      ioctl: (_f, cmd) => {
        if (cmd === 2) throw new KernelError("EINVAL", "bad command");
        return cmd * 10;
      },
    },
    0,
    null,
  );
  const a = fds.install(plain);
  const b = fds.install(dev);
  const errno = (f: () => unknown) => {
    try {
      f();
      return null;
    } catch (e) {
      return e instanceof KernelError ? e.errnoName : String(e);
    }
  };
  const arg = new UserBuffer(null);
  assert.equal(
    errno(() => fds.ioctl(7, 1, arg)),
    "EBADF",
  );
  assert.equal(
    errno(() => fds.ioctl(a, 1, arg)),
    "ENOTTY",
  );
  assert.equal(fds.ioctl(b, 1, arg), 10);
  assert.equal(
    errno(() => fds.ioctl(b, 2, arg)),
    "EINVAL",
  );
  assert.deepEqual([plain.refs, dev.refs], [1, 1]);
});
